"""A headless Chromium driven through WebDriver, for the console's browser test and the demo's
screenshots.

Debian's ``chromium`` and ``chromium-driver`` packages (``scripts/infra.py browser`` installs them;
``infra.py up`` does too) are driven by selenium through ``/usr/bin/chromedriver``: the driver and
the browser are given by path, so selenium's own driver manager never runs and nothing is
downloaded. Pages are found by their ``data-testid`` attributes, never by layout or wording.

selenium is a development dependency (``pip install -e '.[dev]'``, which ``make demo`` and
``make test`` do): import this module only where a browser is wanted.

Imports: selenium and the standard library only (no service, no connector).
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path(os.environ.get("TETHER_CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("TETHER_CHROMEDRIVER", "/usr/bin/chromedriver"))
WINDOW = (1440, 1000)


class BrowserError(RuntimeError):
    """The browser or its driver is missing, or a page did not show what was waited for."""


def testid(name: str) -> str:
    """The CSS selector of an element by its ``data-testid``."""
    return f'[data-testid="{name}"]'


class Browser:
    """One headless Chromium session; ``with Browser(dir) as b: ...`` quits it afterwards.

    ``log_dir`` receives chromedriver's log; screenshots go to ``screenshot_dir`` (default: the
    same directory)."""

    def __init__(
        self, log_dir: Path, screenshot_dir: Path | None = None, timeout: float = 20.0
    ) -> None:
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            raise BrowserError(
                f"{CHROMIUM} and {CHROMEDRIVER} are needed: run `python3 scripts/infra.py browser`"
                " (Debian's chromium and chromium-driver packages)"
            )
        self.timeout = timeout
        self.screenshot_dir = screenshot_dir or log_dir
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in containers and CI has no user namespace sandbox
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
        ):
            options.add_argument(argument)
        # WARNING: at its default level chromedriver logs every command with its arguments —
        # the login token typed into the sign-in form among them.
        service = Service(
            executable_path=str(CHROMEDRIVER),
            service_args=["--log-level=WARNING"],
            log_output=str(log_dir / "chromedriver.log"),
        )
        self.driver = webdriver.Chrome(options=options, service=service)
        # A page that publishes an operator action waits for Kafka's acknowledgement (up to the
        # console's TETHER_CONSOLE_ACTION_ACK_TIMEOUT_SECONDS, 10 s) before it answers.
        self.driver.set_page_load_timeout(max(timeout, 45.0))

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.quit()

    def quit(self) -> None:
        with contextlib.suppress(WebDriverException):  # already gone: nothing left to close
            self.driver.quit()

    # -- navigation and reading ---------------------------------------------------------------
    def get(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    @property
    def title(self) -> str:
        return str(self.driver.title)

    def find(self, css: str) -> WebElement:
        found: WebElement = self.wait(lambda: self._first(css), f"an element {css} on {self.url}")
        return found

    def find_all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def by_testid(self, name: str) -> WebElement:
        return self.find(testid(name))

    def text(self, css: str) -> str:
        """The element's text; retried while the page is replaced under it (a refresh)."""

        def probe() -> tuple[str] | None:
            element = self._first(css)
            return (str(element.text),) if element is not None else None

        return str(self.wait(probe, f"the text of {css} on {self.url}")[0])

    def attribute(self, css: str, name: str) -> str:
        """An attribute of the element ("" when absent), retried like ``text``."""

        def probe() -> tuple[str] | None:
            element = self._first(css)
            return (str(element.get_attribute(name) or ""),) if element is not None else None

        return str(self.wait(probe, f"{name} of {css} on {self.url}")[0])

    def _first(self, css: str) -> WebElement | None:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def wait(self, probe: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """Poll ``probe`` until it returns something truthy (returned), or fail naming ``what``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = probe()
            except WebDriverException as error:  # e.g. a stale element while the page reloads
                last_error, value = error, None
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(f"timed out waiting for {what} (last error: {last_error!r})")

    def reload_until(self, probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        """Reload the page until ``probe`` is truthy: for state the pipeline changes behind it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = probe()
            except WebDriverException:
                value = None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise BrowserError(f"timed out reloading {self.url} for {what}")
            time.sleep(0.5)
            self.driver.refresh()

    # -- acting -------------------------------------------------------------------------------
    def click(self, element: WebElement) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def accept_dialog(self) -> str:
        """Accept a JavaScript ``confirm()``/``alert()``; returns its text."""
        alert = self.wait(lambda: self._alert(), "a confirmation dialog")
        message = str(alert.text)
        alert.accept()
        return message

    def _alert(self) -> Any:
        try:
            return self.driver.switch_to.alert
        except WebDriverException:
            return None

    # -- screenshots --------------------------------------------------------------------------
    def screenshot(self, name: str, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page, beyond the window, when ``full_page``)."""
        path = self.screenshot_dir / f"{name}.png"
        if full_page:
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            self.driver.save_screenshot(str(path))
        return path
