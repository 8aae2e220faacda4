"""Screenshots of the operator console's pages, for ``tether demo`` (and people reading its output).

Signs in with a token, then saves a full-page PNG of: the overview, the review list, one review
item (an ambiguous match when there is one), the links list, one link with its timeline (a link
that has been edited when one is given), and the dead letters — through the same headless
Chromium driver as the browser test (``services.demo.browser``).

selenium is a development dependency: ``take`` reports why it took none (no selenium, no
browser) instead of failing the demo.

Imports: the standard library and ``services.demo.browser`` (imported when called).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Screenshots:
    directory: Path
    pages: dict[str, Path] = field(default_factory=dict)
    skipped: str | None = None


PAGES = (
    ("overview", "01-overview"),
    ("review list", "02-review-list"),
    ("review item", "03-review-item"),
    ("links list", "04-links"),
    ("link timeline", "05-link-timeline"),
    ("dead letters", "06-dead-letters"),
)


def take(url: str, token: str, directory: Path, link_id: str | None = None) -> Screenshots:
    """Save the console's pages as PNGs in ``directory``; ``link_id``: the link to show."""
    result = Screenshots(directory)
    try:
        from selenium.common.exceptions import WebDriverException

        from services.demo.browser import Browser, BrowserError, testid
    except ImportError as exc:  # selenium: a dev dependency (pip install -e '.[dev]')
        result.skipped = f"selenium is not installed ({exc.name})"
        return result
    names = dict(PAGES)
    try:
        with Browser(directory / "browser-log", directory) as b:
            b.get(f"{url}/login")
            b.fill(testid("login-token"), token)
            b.click(b.by_testid("login-submit"))
            b.by_testid("overview-review-open")
            result.pages["overview"] = b.screenshot(names["overview"])

            b.get(f"{url}/ui/review")
            b.by_testid("review-list")
            result.pages["review list"] = b.screenshot(names["review list"])
            rows = b.find_all('[data-testid="review-row"][data-reason="ambiguous_match"]')
            rows = rows or b.find_all('[data-testid="review-row"]')
            if rows:
                b.click(rows[0].find_element("css selector", testid("review-open")))
                b.by_testid("review-item")
                result.pages["review item"] = b.screenshot(names["review item"])

            b.get(f"{url}/ui/links")
            b.by_testid("link-list")
            result.pages["links list"] = b.screenshot(names["links list"])
            if link_id:
                b.get(f"{url}/ui/links/{link_id}")
            else:
                opened = b.find_all(testid("link-open"))
                if opened:
                    b.click(opened[0])
            if b.find_all(testid("timeline")):
                result.pages["link timeline"] = b.screenshot(names["link timeline"])

            b.get(f"{url}/ui/dead-letters")
            b.by_testid("dead-letter-list")
            result.pages["dead letters"] = b.screenshot(names["dead letters"])
    except (BrowserError, WebDriverException) as exc:
        result.skipped = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return result
