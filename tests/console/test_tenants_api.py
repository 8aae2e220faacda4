"""The tenant registry through the console's API, over real HTTP and the real Kafka.

An operator registers, re-configures, pauses, resumes and removes a tenant; every change is a
record on the compacted tenants topic naming the caller, read back by a directory of its own (as
the extractor reads it) and by ``tether tenants show``. Changes made elsewhere (the CLI, the
extractor's status) reach the console's reads through the directory it follows. Refusals:
unauthenticated callers (401), read-only callers' changes (403), the registry's rules (400 with
the rule's message, never a secret's value), an unknown tenant (404), an id in use (409); a
refused change writes nothing.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.core.codec import default_codec
from services.core.kafka import provision_topics
from services.tenants import cli
from services.tenants.model import Tenant, TenantStatus
from services.tenants.registry import TenantDirectory, TenantRegistry
from tests.console import support
from tests.console.support import OPERATOR_TOKEN, READER_TOKEN

pytestmark = pytest.mark.integration

SECRET_VALUE = "wix-key-that-must-not-come-back"


@pytest.fixture
def options(kafka_bootstrap: str, topic_prefix: str) -> dict[str, Any]:
    values = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "topic_partitions": 1,
        "tenant_partitions": 2,
        "console_tenants_refresh_seconds": 0.2,
    }
    provision_topics(support.settings("postgresql://unused/unused", **values))
    return values


@pytest.fixture
def api(pg_dsn: str, options: dict[str, Any]) -> Iterator[support.Served]:
    support.migrate(pg_dsn)
    with support.serve(pg_dsn, kafka=True, **options) as served:
        # The directory's first read (the answer is 503 ``tenants_loading`` until then).
        until(lambda: served.get("/api/v1/tenants", READER_TOKEN).status_code == 200)
        yield served


def until(condition: Any, timeout: float = 60.0) -> None:
    """Wait for ``condition()`` (a state reached through Kafka), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def patch(api: support.Served, path: str, token: str | None, body: Any) -> httpx.Response:
    headers = support.auth(token) if token else {}
    return api.http.patch(path, headers=headers, json=body)


def registry_read(options: dict[str, Any]) -> dict[str, Tenant]:
    directory = TenantDirectory(
        support.settings("postgresql://unused/unused", **options), default_codec()
    )
    try:
        directory.refresh()
        return directory.tenants()
    finally:
        directory.close()


def test_an_operator_registers_changes_pauses_resumes_and_removes_a_tenant(
    api: support.Served, options: dict[str, Any], tmp_path: Any
) -> None:
    added = api.post(
        "/api/v1/tenants",
        OPERATOR_TOKEN,
        json={
            "tenant": "acme",
            "settings": {"wix_site_id": "site-1", "poweroffice_requests_per_second": 5},
            "credentials_ref": "secret:tether-tenant-acme",
            "reason": "signed 2026-12-01",
        },
    )
    assert added.status_code == 201, added.text
    shown = added.json()
    assert (shown["tenant"], shown["state"], shown["version"]) == ("acme", "active", 1)
    assert (shown["updated_by"], shown["reason"]) == ("alice", "signed 2026-12-01")
    assert shown["settings"] == {"wix_site_id": "site-1", "poweroffice_requests_per_second": "5"}
    # A change answers once acknowledged and read back: the next read includes it.
    listed = api.get("/api/v1/tenants", READER_TOKEN).json()["items"]
    assert [(r["tenant"], r["state"], r["version"]) for r in listed] == [("acme", "active", 1)]

    changed = patch(
        api, "/api/v1/tenants/acme", OPERATOR_TOKEN, {"settings": {"wix_site_id": "site-2"}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"]["wix_site_id"] == "site-2"
    assert changed.json()["settings"]["poweroffice_requests_per_second"] == "5"
    paused = api.post("/api/v1/tenants/acme/pause", OPERATOR_TOKEN, json={"reason": "dispute"})
    assert (paused.json()["state"], paused.json()["version"]) == ("paused", 3)
    again = api.post("/api/v1/tenants/acme/pause", OPERATOR_TOKEN)  # a no-op, safe to repeat
    assert (again.status_code, again.json()["version"]) == (200, 3)
    resumed = api.post("/api/v1/tenants/acme/resume", OPERATOR_TOKEN)
    assert (resumed.json()["state"], resumed.json()["version"]) == ("active", 4)
    one = api.get("/api/v1/tenants/acme", READER_TOKEN).json()
    assert (one["state"], one["version"], one["updated_by"]) == ("active", 4, "alice")

    removed = api.post("/api/v1/tenants/acme/remove", OPERATOR_TOKEN, json={"reason": "churned"})
    assert (removed.json()["state"], removed.json()["version"]) == ("removed", 5)

    # What the services read: the records on the tenants topic, the caller named in each.
    stored = registry_read(options)["acme"]
    assert (stored.state, stored.version, stored.updated_by, stored.reason) == (
        "removed",
        5,
        "alice",
        "churned",
    )
    assert stored.credentials_ref == "secret:tether-tenant-acme"
    out = io.StringIO()
    settings = support.settings("postgresql://unused/unused", **options)
    assert cli.run(cli._parser().parse_args(["show", "acme"]), settings, out) == 0
    assert json.loads(out.getvalue())["state"] == "removed"


def test_changes_made_elsewhere_reach_the_consoles_reads(
    api: support.Served, options: dict[str, Any]
) -> None:
    settings = support.settings("postgresql://unused/unused", **options)
    registry = TenantRegistry(settings, default_codec())
    try:
        registry.add(Tenant(tenant="globex", updated_by="cli"))
        registry.put_status(TenantStatus(tenant="globex", phase="live", owner="extractor-1"))
    finally:
        registry.close()

    def shown() -> list[tuple[str, str | None, str | None]]:
        rows = api.get("/api/v1/tenants", READER_TOKEN).json()["items"]
        return [(r["tenant"], r["phase"], r["owner"]) for r in rows]

    until(lambda: shown() == [("globex", "live", "extractor-1")])
    one = api.get("/api/v1/tenants/globex", OPERATOR_TOKEN).json()
    assert (one["phase"], one["owner"], one["updated_by"]) == ("live", "extractor-1", "cli")

    # `tether tenants list --api URL` prints the same listing, read through the API.
    out = io.StringIO()
    assert cli.list_through_api(api.url, READER_TOKEN, as_json=True, out=out) == 0
    assert [(r["tenant"], r["phase"]) for r in json.loads(out.getvalue())] == [("globex", "live")]
    table = io.StringIO()
    assert cli.list_through_api(api.url, READER_TOKEN, as_json=False, out=table) == 0
    assert table.getvalue().splitlines()[1].split() == [
        "globex",
        "active",
        "live",
        "1",
        "extractor-1",
    ]
    assert cli.list_through_api(api.url, "not-a-valid-token", as_json=True, out=out) == 1


def test_refusals_write_nothing(api: support.Served, options: dict[str, Any]) -> None:
    body = {"tenant": "acme", "settings": {"wix_site_id": "site-1"}}
    assert api.post("/api/v1/tenants", OPERATOR_TOKEN, json=body).status_code == 201

    # Not authenticated: every route, reads included.
    for method, path in (
        ("GET", "/api/v1/tenants"),
        ("GET", "/api/v1/tenants/acme"),
        ("POST", "/api/v1/tenants"),
        ("PATCH", "/api/v1/tenants/acme"),
        ("POST", "/api/v1/tenants/acme/pause"),
        ("POST", "/api/v1/tenants/acme/remove"),
    ):
        answer = api.http.request(method, path, json={})
        assert answer.status_code == 401, (method, path)
        assert answer.headers["www-authenticate"] == "Bearer"
        wrong = api.http.request(method, path, json={}, headers=support.auth("not-a-valid-token"))
        assert wrong.status_code == 401, (method, path)

    # Read-only: reads yes, changes no.
    assert api.get("/api/v1/tenants/acme", READER_TOKEN).status_code == 200
    for answer in (
        api.post("/api/v1/tenants", READER_TOKEN, json={**body, "tenant": "initech"}),
        patch(api, "/api/v1/tenants/acme", READER_TOKEN, {"settings": {"wix_site_id": "x"}}),
        api.post("/api/v1/tenants/acme/pause", READER_TOKEN),
        api.post("/api/v1/tenants/acme/resume", READER_TOKEN),
        api.post("/api/v1/tenants/acme/remove", READER_TOKEN),
    ):
        assert answer.status_code == 403
        assert answer.json() == {
            "error": "forbidden",
            "detail": "changing the tenant registry needs the operator role",
        }

    # The registry's rules, with their messages.
    refused = {
        "a secret in the settings": (
            {"tenant": "initech", "settings": {"wix_api_key": SECRET_VALUE}},
            "wix_api_key is a secret",
        ),
        "an unknown setting": (
            {"tenant": "initech", "settings": {"wix_sight_id": "s"}},
            "unknown setting 'wix_sight_id'",
        ),
        "a bad id": ({"tenant": "Initech/1"}, "invalid tenant id"),
        "a bad credentials reference": (
            {"tenant": "initech", "credentials_ref": "vault:x"},
            "invalid credentials reference",
        ),
        "an unknown field": ({"tenant": "initech", "secrets": {}}, "unknown fields: secrets"),
        "a setting that is no text": (
            {"tenant": "initech", "settings": {"wix_site_id": {"id": 1}}},
            "settings.wix_site_id must be",
        ),
        "the tenant id as a setting": (
            {"tenant": "initech", "settings": {"tenant": "acme"}},
            "the tenant id is the registration's",
        ),
    }
    for what, (bad, message) in refused.items():
        answer = api.post("/api/v1/tenants", OPERATOR_TOKEN, json=bad)
        assert answer.status_code == 400, what
        assert answer.json()["error"] == "invalid_tenant" and message in answer.json()["detail"]
        assert SECRET_VALUE not in answer.text
    secret_patch = patch(
        api, "/api/v1/tenants/acme", OPERATOR_TOKEN, {"settings": {"wix_api_key": SECRET_VALUE}}
    )
    assert secret_patch.status_code == 400 and SECRET_VALUE not in secret_patch.text
    assert patch(api, "/api/v1/tenants/acme", OPERATOR_TOKEN, {}).status_code == 400
    not_json = api.post("/api/v1/tenants/acme/pause", OPERATOR_TOKEN, content=b"{reason")
    assert not_json.status_code == 400
    assert api.get("/api/v1/tenants/Not_An_Id", READER_TOKEN).status_code == 400

    # Unknown tenants, an id in use, a removed tenant.
    assert api.get("/api/v1/tenants/ghost", READER_TOKEN).status_code == 404
    for answer in (
        api.post("/api/v1/tenants/ghost/pause", OPERATOR_TOKEN),
        patch(api, "/api/v1/tenants/ghost", OPERATOR_TOKEN, {"settings": {"wix_site_id": "s"}}),
    ):
        assert answer.status_code == 404 and answer.json()["detail"] == "no tenant 'ghost'"
    exists = api.post("/api/v1/tenants", OPERATOR_TOKEN, json=body)
    assert exists.status_code == 409 and "change it instead" in exists.json()["detail"]
    assert api.post("/api/v1/tenants/acme/remove", OPERATOR_TOKEN).status_code == 200
    final = api.post("/api/v1/tenants/acme/resume", OPERATOR_TOKEN)
    assert final.status_code == 400 and "can only be erased" in final.json()["detail"]
    reused = api.post("/api/v1/tenants", OPERATOR_TOKEN, json=body)
    assert reused.status_code == 409 and "erase it first" in reused.json()["detail"]

    # Of all that, only the operator's add and remove were written.
    stored = registry_read(options)
    assert list(stored) == ["acme"]
    assert (stored["acme"].version, stored["acme"].state) == (2, "removed")
    assert stored["acme"].settings == {"wix_site_id": "site-1"}


def test_named_tenant_administrators_alone_register_reconfigure_and_remove(
    pg_dsn: str, options: dict[str, Any]
) -> None:
    settings = support.settings("postgresql://unused/unused", **options)
    registry = TenantRegistry(settings, default_codec())
    try:
        registry.add(Tenant(tenant="acme", updated_by="cli"))
    finally:
        registry.close()
    support.migrate(pg_dsn)
    with support.serve(pg_dsn, kafka=True, console_tenant_admins="carol, dave", **options) as api:
        until(lambda: api.get("/api/v1/tenants/acme", READER_TOKEN).status_code == 200)
        for answer in (
            api.post("/api/v1/tenants", OPERATOR_TOKEN, json={"tenant": "initech"}),
            patch(api, "/api/v1/tenants/acme", OPERATOR_TOKEN, {"settings": {"wix_site_id": "s"}}),
            api.post("/api/v1/tenants/acme/remove", OPERATOR_TOKEN),
        ):
            assert answer.status_code == 403
            assert "TETHER_CONSOLE_TENANT_ADMINS" in answer.json()["detail"]
        # alice is an operator, not a tenant administrator: pausing and resuming are hers.
        assert api.post("/api/v1/tenants/acme/pause", OPERATOR_TOKEN).status_code == 200
        assert api.post("/api/v1/tenants/acme/resume", OPERATOR_TOKEN).status_code == 200
    stored = registry_read(options)
    assert list(stored) == ["acme"]
    assert (stored["acme"].state, stored["acme"].version) == ("active", 3)


def test_a_console_without_kafka_has_no_tenant_registry(pg_dsn: str) -> None:
    support.migrate(pg_dsn)
    with support.serve(pg_dsn) as api:
        answer = api.get("/api/v1/tenants", OPERATOR_TOKEN)
        assert answer.status_code == 503 and answer.json()["error"] == "tenants_unavailable"
        add = api.post("/api/v1/tenants", OPERATOR_TOKEN, json={"tenant": "acme"})
        assert add.status_code == 503
