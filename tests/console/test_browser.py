"""The operator console in a real browser, against a running stack.

Debian's headless Chromium (``scripts/infra.py`` installs ``chromium`` and ``chromium-driver``;
the fixture runs ``infra.py browser`` itself when they are missing) is driven through
``/usr/bin/chromedriver`` (``services.demo.browser``) against the whole pipeline as real
processes: real Kafka and PostgreSQL, both simulators over HTTP, the extractor, mapper, loader
and ``tether console`` (``services.demo.stack.Stack``).

The seed makes one ambiguous match on purpose: two Wix contacts share the e-mail address of one
PowerOffice employee (the key employees are matched on), so the mapper links it to neither and
opens an ``ambiguous_match`` review item with both as candidates. Then, as an operator would:
sign in with a token, read the overview, open the review item, link the record to the candidate
whose name matches, confirm, wait for the mapper to apply the action, and find the record linked,
the chosen Wix contact updated *in the Wix simulator* (it gets the employee's phone number, which
it lacked), the other candidate untouched, and the action (actor, kind) on the link's timeline.
Screenshots of every page go to the test's tmp dir (printed at the end).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.core.topics import TopicLayout
from services.demo.main import wait_for_sync
from services.demo.seeding import seed_simulators
from services.demo.stack import Stack
from services.mapper.domain import read_hub
from services.mapper.domain.normalize import normalize_phone

# The stack's start and initial sync (the module fixture) count towards the first test's time:
# on the shared 2-core machine under load that took minutes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SHARED_EMAIL = "kari.deltaker@example.no"
EMPLOYEE = {
    "FirstName": "Kari",
    "LastName": "Deltaker",
    "EmailAddress": SHARED_EMAIL,
    "PhoneNumber": "+47 912 34 567",
    "IsArchived": False,
}
# The one to link to: the same person, without a phone. The other: an old duplicate import.
CONTACT_SAME_PERSON = {
    "name": {"first": "Kari", "last": "Deltaker"},
    "emails": {"items": [{"tag": "MAIN", "email": SHARED_EMAIL, "primary": True}]},
}
CONTACT_DUPLICATE = {
    "name": {"first": "K."},
    "emails": {"items": [{"tag": "WORK", "email": SHARED_EMAIL, "primary": True}]},
}


@dataclass
class Running:
    stack: Stack
    token: str
    viewer_token: str
    employee_id: str
    same_person_id: str
    duplicate_id: str


def _browser_installed() -> None:
    """Provision Debian's Chromium like the PostgreSQL packages (no-op when installed)."""
    from services.demo import browser

    if not (browser.CHROMIUM.exists() and browser.CHROMEDRIVER.exists()):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "infra.py"), "browser"], check=True)


@pytest.fixture(scope="module")
def running(
    infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    _browser_installed()
    stack = Stack(
        infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        infra_env["TETHER_POSTGRES_DSN"],
        tmp_path_factory.mktemp("console-stack"),
    )
    stack.create_database()
    try:
        stack.start_simulators()
        seeded = seed_simulators(generate(24, seed=13), stack.poweroffice_url, stack.wix_url)
        with PowerOfficeSimulatorAdmin(stack.poweroffice_url) as po:
            (employee,) = po.seed("employees", [{**EMPLOYEE, "Number": 9001}])
        wix = WixAdmin(stack.wix_url)
        try:
            same, duplicate = wix.seed(
                [{"info": CONTACT_SAME_PERSON}, {"info": CONTACT_DUPLICATE}], webhooks=False
            )
        finally:
            wix.close()
        stack.provision_topics()
        stack.start_services()
        tokens = stack.start_console({"operator": "operator", "viewer": "read"})
        counts = seeded.counts()
        total = counts["employees"] + counts["customers"] + counts["contact_persons"] + 1
        layout = TopicLayout(prefix=stack.topic_prefix, partitions=3)
        wait_for_sync(stack, layout, total, timeout=300)
        yield Running(
            stack,
            tokens["operator"],
            tokens["viewer"],
            str(employee["Id"]),
            str(same["id"]),
            str(duplicate["id"]),
        )
    finally:
        stack.stop()
        stack.drop_database()


def _phone(contact: dict[str, Any]) -> str | None:
    value = read_hub(contact).get("phone")
    return normalize_phone(value) if value else None


def test_an_operator_resolves_an_ambiguous_match_in_the_browser(
    running: Running, tmp_path: Path
) -> None:
    from services.demo.browser import Browser, testid

    url = running.stack.console_url
    shots = tmp_path / "screenshots"
    wix = WixAdmin(running.stack.wix_url)
    try:
        before_same = wix.contact(running.same_person_id)
        before_duplicate = wix.contact(running.duplicate_id)
    finally:
        wix.close()
    assert _phone(before_same) is None  # what the link will bring

    with Browser(tmp_path, shots) as b:
        # -- sign in ------------------------------------------------------------------------
        b.get(f"{url}/")
        b.by_testid("login-form")
        assert "/login" in b.url  # no session: the pages are behind the login
        b.screenshot("01-login")
        b.fill(testid("login-token"), running.token)
        b.click(b.by_testid("login-submit"))

        # -- the overview: the ambiguous match is counted ------------------------------------
        b.by_testid("overview-review-open")
        assert b.text(testid("whoami")) == "operator"
        assert b.text(testid("role")) == "operator"
        assert int(b.text(testid("overview-review-open"))) >= 1
        assert "ambiguous_match" in b.text(testid("overview-review-by-reason"))
        assert int(b.text(testid("overview-links-total"))) > 0
        b.screenshot("02-overview")

        # -- the review list, then the item --------------------------------------------------
        b.click(b.by_testid("nav-review"))
        b.by_testid("review-list")
        rows = [
            row
            for row in b.find_all('[data-testid="review-row"][data-reason="ambiguous_match"]')
            if f"employees/{running.employee_id}" in row.text
        ]
        assert len(rows) == 1, [row.text for row in b.find_all(testid("review-row"))]
        b.screenshot("03-review-list")
        b.click(rows[0].find_element("css selector", testid("review-open")))
        b.by_testid("review-item")
        assert "open" in b.text(testid("review-status"))
        candidates = {
            row.get_attribute("data-contact-id"): row for row in b.find_all(testid("candidate"))
        }
        assert set(candidates) == {running.same_person_id, running.duplicate_id}
        assert SHARED_EMAIL in candidates[running.same_person_id].text  # operators see who
        review_page = b.url
        b.screenshot("04-review-item")

        # -- link it to the candidate that is the same person, with a reason -----------------
        b.click(
            candidates[running.same_person_id].find_element(
                "css selector", testid("action-link-candidate")
            )
        )
        b.by_testid("confirm")
        assert running.same_person_id in b.text(testid("confirm-targets"))
        b.fill(testid("action-reason"), "Same person: name matches, the other is an old import")
        b.screenshot("05-confirm")
        b.click(b.by_testid("confirm-action"))
        action_id = b.attribute(testid("action"), "data-action-id")
        assert action_id
        # The page refreshes itself while the action is pending.
        status = b.reload_until(
            lambda: (s := b.attribute(testid("action"), "data-status")) != "pending" and s,
            "the mapper to apply the action",
            timeout=60,
        )
        assert status == "applied", b.text(testid("action-status"))
        b.screenshot("06-action-applied")

        # -- the record is linked to that contact --------------------------------------------
        b.click(b.by_testid("action-open-link"))
        assert b.attribute(testid("link"), "data-status") == "active"
        assert b.text(testid("link-contact")) == running.same_person_id
        members = [
            row.get_attribute("data-member") or "" for row in b.find_all(testid("member-row"))
        ]
        assert any(running.employee_id in m and "employees" in m for m in members), members
        link_page = b.url

        # -- the action is on the link's timeline (who, what), then the write it caused -----
        def action_entry() -> str | None:
            for entry in b.find_all('[data-testid="timeline-entry"][data-kind="action"]'):
                if entry.get_attribute("data-action-id") == action_id:
                    return str(entry.text)
            return None

        entry = b.reload_until(action_entry, "the action on the timeline", timeout=30)
        assert "LINK_TO_CANDIDATE" in entry
        assert "by operator" in entry
        b.reload_until(
            lambda: b.find_all('[data-testid="timeline-entry"][data-kind="command"]'),
            "the command the action caused on the timeline",
            timeout=30,
        )
        b.screenshot("07-link-timeline")

        # -- the links list finds it by the employee's record id -----------------------------
        b.click(b.by_testid("nav-links"))
        b.fill(testid("links-q"), running.employee_id)
        b.click(b.by_testid("links-submit"))
        b.by_testid("link-list")
        found = [r.get_attribute("data-link-id") for r in b.find_all(testid("link-row"))]
        assert link_page.rsplit("/", 1)[1] in found, found
        b.screenshot("08-links-search")

        # -- the review item is resolved; dead letters page renders ---------------------------
        b.get(review_page)
        assert "resolved" in b.text(testid("review-status"))
        b.screenshot("09-review-item-resolved")
        b.click(b.by_testid("nav-dead-letters"))
        b.by_testid("dead-letter-list")
        b.screenshot("10-dead-letters")

    # -- in Wix itself: the chosen contact got the employee's phone; the other is untouched -----
    wanted = normalize_phone(EMPLOYEE["PhoneNumber"])
    wix = WixAdmin(running.stack.wix_url)
    try:
        phone_arrived = _eventually(lambda: _phone(wix.contact(running.same_person_id)) == wanted)
        duplicate_after = wix.contact(running.duplicate_id)
    finally:
        wix.close()
    assert phone_arrived, "the Wix contact did not get the employee's phone"
    assert duplicate_after.get("revision") == before_duplicate.get("revision")
    assert read_hub(duplicate_after) == read_hub(before_duplicate)
    pngs = sorted(p.name for p in shots.glob("*.png"))
    assert len(pngs) == 10 and all((shots / p).stat().st_size > 5_000 for p in pngs), pngs
    print(f"\nscreenshots: {shots}")


def test_without_a_session_the_pages_and_the_api_refuse(running: Running) -> None:
    """The pages redirect to the login; the API answers 401 without a token and with a wrong
    one, and never shows a record (no personal data to strangers)."""
    url = running.stack.console_url
    page = httpx.get(f"{url}/ui/review", follow_redirects=False, timeout=10)
    assert page.status_code in (302, 303, 307) and "/login" in page.headers["location"]
    for headers in ({}, {"authorization": "Bearer not-a-valid-token-at-all"}):
        answer = httpx.get(f"{url}/api/v1/review-items", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert SHARED_EMAIL not in answer.text


def test_a_read_only_caller_sees_the_review_item_without_personal_data_or_actions(
    running: Running, tmp_path: Path
) -> None:
    """The same review item for a ``read`` caller: states, ids and reasons, but no name, e-mail or
    phone of the record or its candidates, and no action to take (the API refuses one: 403)."""
    from services.demo.browser import Browser, testid

    url = running.stack.console_url
    operator = {"authorization": f"Bearer {running.token}"}
    found = httpx.get(
        f"{url}/api/v1/review-items",
        params={"state": "all", "q": running.employee_id},
        headers=operator,
        timeout=30,
    ).json()["items"]
    (item,) = [i for i in found if i["reason"] == "ambiguous_match"]
    viewer = {"authorization": f"Bearer {running.viewer_token}"}
    answer = httpx.get(f"{url}/api/v1/review-items/{item['review_id']}", headers=viewer, timeout=30)
    assert answer.status_code == 200 and item["review_id"] in answer.text
    for personal in (SHARED_EMAIL, "Deltaker", "912 34 567", "91234567"):
        assert personal not in answer.text
    action = {
        "kind": "CREATE_NEW_CONTACT",
        "review_id": item["review_id"],
        "reason": "a viewer tries",
        "idempotency_key": "viewer-1",
    }
    refused = httpx.post(f"{url}/api/v1/actions", headers=viewer, json=action, timeout=30)
    assert refused.status_code == 403

    with Browser(tmp_path) as b:
        b.get(f"{url}/login")
        b.fill(testid("login-token"), running.viewer_token)
        b.click(b.by_testid("login-submit"))
        assert b.text(testid("role")) == "read"
        b.get(f"{url}/ui/review/{item['review_id']}")
        b.by_testid("review-item")
        page = b.driver.page_source
        assert {c.get_attribute("data-contact-id") for c in b.find_all(testid("candidate"))} == {
            running.same_person_id,
            running.duplicate_id,
        }
        for personal in (SHARED_EMAIL, "Deltaker", "912 34 567"):
            assert personal not in page
        assert not b.find_all(testid("action-link-candidate"))
        assert not b.find_all(testid("review-actions"))
        b.screenshot("review-item-as-viewer")


def test_an_operator_finds_a_registered_tenant_and_switches_to_it(
    running: Running, tmp_path: Path
) -> None:
    """A tenant registered with ``tether tenants`` (paused: nothing of it runs) is on the Tenants
    page with a Resume button; choosing it with the header's selector (a form, no script) makes
    every page show its data (none yet), and choosing the console's own tenant again shows the
    synced links."""
    from selenium.webdriver.support.select import Select

    from services.core.codec import default_codec
    from services.core.settings import TetherSettings
    from services.demo.browser import Browser, testid
    from services.tenants.model import Tenant
    from services.tenants.registry import TenantRegistry

    stack = running.stack
    settings = TetherSettings(
        kafka_bootstrap_servers=stack.kafka_bootstrap, topic_prefix=stack.topic_prefix
    )
    registry = TenantRegistry(settings, default_codec())
    try:
        registry.add(Tenant(tenant="acme", state="paused", updated_by="browser-test"))
    finally:
        registry.close()

    url = stack.console_url
    with Browser(tmp_path) as b:
        b.get(f"{url}/login")
        b.fill(testid("login-token"), running.token)
        b.click(b.by_testid("login-submit"))
        b.by_testid("overview-links-total")
        b.click(b.by_testid("nav-tenants"))
        b.reload_until(lambda: b.find_all('[data-tenant="acme"]'), "the registered tenant")
        assert b.attribute('[data-tenant="acme"]', "data-state") == "paused"
        assert b.find_all('[data-tenant="acme"] [data-testid="tenant-resume"]')
        b.screenshot("tenants")

        Select(b.by_testid("tenant-choice")).select_by_value("acme")
        b.click(b.by_testid("tenant-switch"))
        b.wait(lambda: b.text(testid("tenant")) == "tenant acme", "the tenant acme shown")
        b.click(b.by_testid("nav-overview"))
        b.wait(lambda: b.text(testid("overview-links-total")) == "0", "acme's overview")
        # The stack's services run as the settings' default tenant.
        Select(b.by_testid("tenant-choice")).select_by_value("default")
        b.click(b.by_testid("tenant-switch"))
        b.wait(lambda: b.text(testid("tenant")) == "tenant default", "the stack's tenant")
        assert int(b.text(testid("overview-links-total"))) > 0


def _eventually(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False
