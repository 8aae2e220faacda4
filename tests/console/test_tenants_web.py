"""The tenants page and the tenant selector of the web console, over real HTTP and real Kafka.

Server-side: what the page shows each role (operators get pause/resume forms, readers none and
are refused a change), that a change made from the page is on the registry when the page is
shown again, and that the selector switches the tenant every page shows (and only to a tenant it
offers, and only back to a path of this site).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from services.core.codec import default_codec
from services.core.kafka import provision_topics
from services.tenants.model import Tenant
from services.tenants.registry import TenantDirectory, TenantRegistry
from tests.console import support
from tests.console.support import OPERATOR_TOKEN, READER_TOKEN
from tests.console.test_web import csrf_of, login

pytestmark = pytest.mark.integration

SEEDED_LINKS = 5


@pytest.fixture
def web(pg_dsn: str, kafka_bootstrap: str, topic_prefix: str) -> Iterator[support.Served]:
    options: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "topic_partitions": 1,
        "console_tenants_refresh_seconds": 0.2,
    }
    settings = support.settings(pg_dsn, **options)
    provision_topics(settings)
    registry = TenantRegistry(settings, default_codec())
    try:
        registry.add(Tenant(tenant="acme", updated_by="ops"))
        registry.add(Tenant(tenant="globex", state="paused", updated_by="ops"))
    finally:
        registry.close()
    support.migrate(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        support.seed(conn, SEEDED_LINKS)  # all for the console's own tenant, "default"
    with support.serve(pg_dsn, kafka=True, **options) as served:
        assert served.console.tenants is not None
        served.console.tenants.directory.refresh()  # the follower's first read, done now
        yield served


def rows(html: str) -> dict[str, str]:
    return dict(
        re.findall(r'data-testid="tenant-row" data-tenant="([^"]+)" data-state="(\w+)"', html)
    )


def test_operators_see_the_registry_and_pause_and_resume_tenants(web: support.Served) -> None:
    session = login(web, OPERATOR_TOKEN)
    page = web.http.get("/ui/tenants", headers=session)
    assert page.status_code == 200 and rows(page.text) == {"acme": "active", "globex": "paused"}
    assert 'action="/ui/tenants/acme/pause"' in page.text
    assert 'action="/ui/tenants/globex/resume"' in page.text
    assert 'action="/ui/tenants/acme/resume"' not in page.text

    refused = web.http.post("/ui/tenants/acme/pause", headers=session, data={"reason": "x"})
    assert refused.status_code == 403  # no CSRF token
    csrf = csrf_of(page.text)
    paused = web.http.post(
        "/ui/tenants/acme/pause", headers=session, data={"csrf": csrf, "reason": "dispute"}
    )
    assert paused.status_code == 303 and paused.headers["location"] == "/ui/tenants"
    resumed = web.http.post("/ui/tenants/globex/resume", headers=session, data={"csrf": csrf})
    assert resumed.status_code == 303
    again = web.http.get("/ui/tenants", headers=session)
    assert rows(again.text) == {"acme": "paused", "globex": "active"}
    assert "dispute" in again.text
    unknown = web.http.post("/ui/tenants/ghost/pause", headers=session, data={"csrf": csrf})
    assert unknown.status_code == 404
    not_offered = web.http.post("/ui/tenants/acme/remove", headers=session, data={"csrf": csrf})
    assert not_offered.status_code == 404

    directory = TenantDirectory(web.console.settings, default_codec())
    try:
        directory.refresh()
        acme = directory.get("acme")
        assert acme is not None
        assert (acme.state, acme.updated_by, acme.reason) == ("paused", "alice", "dispute")
    finally:
        directory.close()


def test_readers_see_the_registry_without_buttons_and_cannot_change_it(
    web: support.Served,
) -> None:
    session = login(web, READER_TOKEN)
    page = web.http.get("/ui/tenants", headers=session)
    assert rows(page.text) == {"acme": "active", "globex": "paused"}
    assert 'data-testid="tenant-pause' not in page.text
    assert 'data-testid="tenant-resume' not in page.text
    answer = web.http.post(
        "/ui/tenants/acme/pause", headers=session, data={"csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 403
    assert rows(web.http.get("/ui/tenants", headers=session).text)["acme"] == "active"


def test_the_selector_lists_the_registrys_tenants_and_switches_every_page(
    web: support.Served,
) -> None:
    session = login(web, OPERATOR_TOKEN)
    overview = web.http.get("/", headers=session)
    choices = re.findall(r'<option value="([^"]+)"', overview.text)
    assert choices == ["acme", "default", "globex"]
    assert 'data-testid="tenant">tenant default<' in overview.text
    assert re.search(rf'data-testid="overview-links-total">{SEEDED_LINKS}<', overview.text)

    csrf = csrf_of(overview.text)
    chosen = web.http.post(
        "/ui/tenant", headers=session, data={"csrf": csrf, "tenant": "acme", "back": "/ui/links"}
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/ui/links"
    cookie = chosen.headers["set-cookie"]
    assert cookie.startswith("tether_tenant=acme;") and "HttpOnly" in cookie
    with_tenant = {"cookie": f"{session['cookie']}; tether_tenant=acme"}
    acme = web.http.get("/", headers=with_tenant)
    assert 'data-testid="tenant">tenant acme<' in acme.text
    assert re.search(r'data-testid="overview-links-total">0<', acme.text)
    assert web.http.get("/ui/links", headers=with_tenant).text.count('data-testid="link-row"') == 0
    # ?tenant= names the tenant of one page, over the chosen one.
    named = web.http.get("/ui/links", headers=with_tenant, params={"tenant": "default"})
    assert named.text.count('data-testid="link-row"') == SEEDED_LINKS
    # An action's confirmation names the tenant it will act on, and the form carries it.
    confirm = web.http.get(
        "/ui/actions/new", headers=with_tenant, params={"kind": "UNLINK", "link_id": "l-000001"}
    )
    assert 'data-testid="confirm-tenant">acme<' in confirm.text
    assert '<input type="hidden" name="tenant" value="acme">' in confirm.text

    not_offered = web.http.post(
        "/ui/tenant", headers=session, data={"csrf": csrf, "tenant": "initech"}
    )
    assert not_offered.status_code == 400 and "set-cookie" not in not_offered.headers
    for elsewhere in ("//evil.example/x", "/\\evil.example/x", "https://evil.example/"):
        answer = web.http.post(
            "/ui/tenant",
            headers=session,
            data={"csrf": csrf, "tenant": "globex", "back": elsewhere},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/", elsewhere
    forged = web.http.post("/ui/tenant", headers=session, data={"tenant": "globex"})
    assert forged.status_code == 403
