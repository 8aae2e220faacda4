"""The console's API over real HTTP (uvicorn) and a real, migrated and seeded PostgreSQL.

Authentication and roles (unauthenticated and read-only callers are refused actions and personal
data), keyset pagination and filters, search, the overview's counts, the timeline (order, field
before/after values, its cursor), action results, rate limits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.console import support
from tests.console.support import OPERATOR_TOKEN, READER_TOKEN, T0, TENANT, person

pytestmark = pytest.mark.integration

N = 300
ERROR_LINKS = {7, 8, 250}
UNLINKED = {9}


@pytest.fixture(scope="module")
def seeded(infra_env: dict[str, str]) -> Iterator[str]:
    """One database for the module: migrated, ``N`` links, a timeline on link 5."""
    admin = infra_env["TETHER_POSTGRES_DSN"]
    name = f"test_console_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"{admin.rpartition('/')[0]}/{name}"
    support.migrate(dsn)
    statuses = dict.fromkeys(ERROR_LINKS, "error") | dict.fromkeys(UNLINKED, "unlinked")
    with psycopg.connect(dsn, autocommit=True) as conn:
        support.seed(conn, N, review_every=50, statuses=statuses)
        add_timeline(conn)
    yield dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


ACTION_ID = "a-0000-link-5"


def add_timeline(conn: psycopg.Connection[Any]) -> None:
    """Link 5: a change with field values, an operator action (history + audit), a command."""
    p = person(5)
    at = T0 + timedelta(hours=1)
    conn.execute(
        "INSERT INTO mapper_history (tenant, link_id, system, resource, record_id, source, "
        "event_id, decision, reason, commands, at, fields) VALUES "
        "(%s, %s, 'wix', 'contacts', %s, 'change', 'e-fields', 'mapped', 'newer', 1, %s, %s)",
        (
            TENANT,
            p.link_id,
            p.contact_id,
            at,
            json.dumps({"phone": {"before": p.phone, "after": "+4791111111"}}),
        ),
    )
    conn.execute(
        "INSERT INTO mapper_history (tenant, link_id, source, event_id, decision, reason, "
        "commands, at, fields, actor, action_kind) VALUES "
        "(%s, %s, 'operator_action', %s, 'mapped', 'resync from wix', 1, %s, %s, 'alice', "
        "'RESYNC')",
        (
            TENANT,
            p.link_id,
            ACTION_ID,
            at + timedelta(minutes=1),
            json.dumps({"first_name": {"before": p.first, "after": "Olav"}}),
        ),
    )
    conn.execute(
        "INSERT INTO mapper_operator_actions (action_id, tenant, kind, actor, role, reason, at, "
        "applied_at, status, result, detail, link_id, command_ids, action) VALUES "
        "(%s, %s, 'RESYNC', 'alice', 'operator', 'customer phoned: Olav is right', %s, %s, "
        "'applied', 'applied', 'pushed wix values', %s, '[\"cmd-r\"]', '{}')",
        (ACTION_ID, TENANT, at + timedelta(minutes=1), at + timedelta(minutes=1), p.link_id),
    )
    conn.execute(
        "INSERT INTO mapper_ignored_records (tenant, system, resource, record_id, action_id, "
        "actor, at) VALUES (%s, 'poweroffice', 'employees', %s, 'a-ignore', 'alice', %s)",
        (TENANT, person(6).employee_id, at),
    )
    conn.execute(
        "INSERT INTO mapper_verification (link_id, tenant, flow, status, properties, detail, "
        "cycle_id, divergent_since, verified_at) VALUES "
        "(%s, %s, 'employees', 'divergent', '{phone}', 'phone differs', 'cycle-1', %s, %s)",
        (p.link_id, TENANT, at, at + timedelta(minutes=2)),
    )


@pytest.fixture(scope="module")
def api(seeded: str) -> Iterator[support.Served]:
    with support.serve(seeded) as served:
        yield served


ROUTES = [
    "/api/v1/whoami",
    "/api/v1/overview",
    "/api/v1/review-items",
    "/api/v1/review-items/r-000000",
    "/api/v1/conflicts",
    "/api/v1/links",
    "/api/v1/links/l-000005",
    "/api/v1/links/l-000005/timeline",
    f"/api/v1/actions/{ACTION_ID}",
]


def personal_values(i: int) -> list[str]:
    p = person(i)
    return [p.email, p.phone, p.last]


# ------------------------------------------------------------------------------------------------
# Authentication and roles
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "not-a-valid-token-at-all", "Basic abc"])
def test_unauthenticated_callers_get_nothing(api: support.Served, token: str | None) -> None:
    for route in ROUTES:
        answer = api.get(route, token)
        assert answer.status_code == 401, route
        assert answer.headers["www-authenticate"] == "Bearer"
        assert set(answer.json()) <= {"error", "detail"}
    posted = api.post("/api/v1/actions", token, json={"kind": "UNLINK", "link_id": "l-000005"})
    assert posted.status_code == 401


def test_read_only_callers_see_ids_and_counts_not_personal_data(api: support.Served) -> None:
    for route in ROUTES:
        operator = api.get(route, OPERATOR_TOKEN)
        reader = api.get(route, READER_TOKEN)
        assert operator.status_code == reader.status_code == 200, route
        for value in personal_values(5) + personal_values(0) + personal_values(1):
            assert value not in reader.text, (route, value)
    # ... while the operator sees them (the test above is not vacuous).
    assert person(5).email in api.get("/api/v1/links/l-000005", OPERATOR_TOKEN).text
    assert person(0).email in api.get("/api/v1/links?limit=3", OPERATOR_TOKEN).text
    timeline = api.get("/api/v1/links/l-000005/timeline", OPERATOR_TOKEN).text
    assert person(5).phone in timeline and "customer phoned" in timeline
    reader_timeline = api.get("/api/v1/links/l-000005/timeline", READER_TOKEN).json()["items"]
    changed = [e for e in reader_timeline if e.get("fields")]
    assert changed and all(set(f) == {"property"} for e in changed for f in e["fields"])
    # Ids and counts are there for the reader.
    reader_links = api.get("/api/v1/links?limit=3", READER_TOKEN).json()["items"]
    assert [r["link_id"] for r in reader_links] == ["l-000000", "l-000001", "l-000002"]
    assert "email" not in reader_links[0] and "name" not in reader_links[0]
    assert api.get("/api/v1/overview", READER_TOKEN).json()["links"]["total"] == N


def test_read_only_callers_are_refused_actions_and_personal_searches(
    api: support.Served,
) -> None:
    body = {"kind": "UNLINK", "link_id": "l-000005", "reason": "test"}
    refused = api.post("/api/v1/actions", READER_TOKEN, json=body)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    refused = api.get("/api/v1/links", READER_TOKEN, params={"q": person(5).email})
    assert refused.status_code == 403
    # A phone number or a name is matched as an id only: no link is found through either.
    for q in (person(5).phone, "+47 900 00 005", person(5).last):
        answer = api.get("/api/v1/links", READER_TOKEN, params={"q": q})
        assert answer.status_code == 200 and answer.json()["items"] == [], q
        found = api.get("/api/v1/links", OPERATOR_TOKEN, params={"q": q}).json()["items"]
        assert person(5).link_id in [f["link_id"] for f in found], q  # "Andersen5" in "…53"
    by_id = api.get("/api/v1/links", READER_TOKEN, params={"q": person(5).employee_id})
    assert [r["link_id"] for r in by_id.json()["items"]] == [person(5).link_id]


def test_whoami_names_the_role(api: support.Served) -> None:
    assert api.get("/api/v1/whoami", OPERATOR_TOKEN).json() == {
        "name": "alice",
        "role": "operator",
        "method": "token",
    }
    assert api.get("/api/v1/whoami", READER_TOKEN).json()["role"] == "read"


def test_rate_limit_per_identity(seeded: str) -> None:
    with support.serve(seeded, console_rate_per_minute=3) as served:
        codes = [served.get("/api/v1/whoami", OPERATOR_TOKEN).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        # Another identity has its own budget.
        assert served.get("/api/v1/whoami", READER_TOKEN).status_code == 200
        families = served.console.metrics.requests.collect()[0].samples
        assert any(s.labels.get("status") == "429" for s in families)


# ------------------------------------------------------------------------------------------------
# Lists, pagination, filters, search
# ------------------------------------------------------------------------------------------------


def all_pages(api: support.Served, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        answer = api.get(path, OPERATOR_TOKEN, params={**params, "cursor": cursor or ""})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert pages < 100


def test_link_pages_cover_every_link_once_in_order(api: support.Served) -> None:
    items = all_pages(api, "/api/v1/links", limit=37)
    ids = [i["link_id"] for i in items]
    assert ids == sorted(person(i).link_id for i in range(N))
    first = api.get("/api/v1/links", OPERATOR_TOKEN, params={"limit": 37}).json()
    assert len(first["items"]) == 37 and first["next_cursor"]


def test_links_filtered_by_status(api: support.Served) -> None:
    errors = all_pages(api, "/api/v1/links", status="error", limit=2)
    assert {i["link_id"] for i in errors} == {person(i).link_id for i in ERROR_LINKS}
    assert api.get("/api/v1/links", OPERATOR_TOKEN, params={"status": "bogus"}).status_code == 400
    assert api.get("/api/v1/links", OPERATOR_TOKEN, params={"cursor": "!!"}).status_code == 400
    assert api.get("/api/v1/links", OPERATOR_TOKEN, params={"limit": 0}).status_code == 400


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (person(42).email.upper(), {person(42).link_id}),  # e-mails compare case-folded
        ("+47 900 00 042", {person(42).link_id}),  # phones compare as E.164
        (person(42).employee_id, {person(42).link_id}),  # a PowerOffice record id
        (person(42).contact_id, {person(42).link_id}),  # a Wix contact id
        (person(42).link_id, {person(42).link_id}),
        (person(42).last.upper(), {person(42).link_id}),  # a name, any case
        ("nordmann20", {person(i).link_id for i in range(N) if "Nordmann20" in person(i).last}),
        ("nobody-is-called-this", set()),
        ("sen1_0", set()),  # "_" is matched literally (as a wildcard: Larsen100, Olsen110...)
        ("sen1%", set()),
    ],
)
def test_link_search(api: support.Served, query: str, expected: set[str]) -> None:
    found = all_pages(api, "/api/v1/links", q=query, limit=5)
    assert {i["link_id"] for i in found} == expected


def test_review_items_filters_and_pages(api: support.Served, seeded: str) -> None:
    items = all_pages(api, "/api/v1/review-items", limit=2)
    assert len(items) == N // 50
    seen = [i["last_seen"] for i in items]
    assert seen == sorted(seen, reverse=True)
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(
            "UPDATE mapper_review_items SET resolved_at = now(), resolution = 'test' "
            "WHERE review_id = 'r-000100'"
        )
    try:
        open_ids = {i["review_id"] for i in all_pages(api, "/api/v1/review-items")}
        resolved = all_pages(api, "/api/v1/review-items", state="resolved")
        assert "r-000100" not in open_ids and [r["review_id"] for r in resolved] == ["r-000100"]
        assert len(all_pages(api, "/api/v1/review-items", state="all")) == N // 50
        assert all_pages(api, "/api/v1/review-items", reason="write_rejected") == []
        by_record = all_pages(api, "/api/v1/review-items", q="900050")
        assert [r["review_id"] for r in by_record] == ["r-000050"]
    finally:
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute(
                "UPDATE mapper_review_items SET resolved_at = NULL, resolution = NULL "
                "WHERE review_id = 'r-000100'"
            )


def test_review_item_shows_its_candidates(api: support.Served) -> None:
    item = api.get("/api/v1/review-items/r-000050", OPERATOR_TOKEN).json()
    candidates = {c["contact_id"]: c for c in item["candidate_contacts"]}
    assert set(candidates) == {person(50).contact_id, person(51).contact_id}
    assert candidates[person(50).contact_id]["link_id"] == person(50).link_id
    assert candidates[person(50).contact_id]["props"]["email"] == person(50).email
    reader = api.get("/api/v1/review-items/r-000050", READER_TOKEN).json()
    assert all("props" not in c for c in reader["candidate_contacts"])
    assert api.get("/api/v1/review-items/nope", OPERATOR_TOKEN).status_code == 404


def test_conflicts_list(api: support.Served) -> None:
    items = all_pages(api, "/api/v1/conflicts", limit=4)
    assert len(items) == N // 50
    one = all_pages(api, "/api/v1/conflicts", link_id=person(100).link_id)
    assert [c["conflict_id"] for c in one] == ["x-000100"]
    assert one[0]["winner"]["value"] == person(100).phone
    reader = api.get(
        "/api/v1/conflicts", READER_TOKEN, params={"link_id": person(100).link_id}
    ).json()
    assert "value" not in reader["items"][0]["winner"]


def test_overview_counts(api: support.Served) -> None:
    body = api.get("/api/v1/overview", OPERATOR_TOKEN).json()
    assert body["links"]["by_status"] == {
        "active": N - len(ERROR_LINKS) - len(UNLINKED),
        "error": len(ERROR_LINKS),
        "unlinked": len(UNLINKED),
    }
    assert body["review_items"] == {"open": N // 50, "by_reason": {"ambiguous_match": N // 50}}
    assert body["conflicts"]["total"] == N // 50
    assert body["commands"]["links_failed"] == len(ERROR_LINKS)
    employees = next(f for f in body["flows"] if f["resource"] == "employees")
    assert employees["records"] == N
    assert employees["by_link_status"]["error"] == len(ERROR_LINKS)
    assert body["dead_letters"] is None  # this console runs without Kafka
    assert body["verification"]["divergent"] == 1
    divergent = all_pages(api, "/api/v1/links", verification="divergent")
    assert [d["link_id"] for d in divergent] == [person(5).link_id]


# ------------------------------------------------------------------------------------------------
# One link and its timeline
# ------------------------------------------------------------------------------------------------


def test_link_page(api: support.Served) -> None:
    link = api.get("/api/v1/links/l-000005", OPERATOR_TOKEN).json()
    assert link["status"] == "active" and link["name"] == f"{person(5).first} {person(5).last}"
    keys = {m["key"] for m in link["members"]}
    assert keys == {
        f"poweroffice:employees:{person(5).employee_id}",
        f"wix:contacts:{person(5).contact_id}",
    }
    assert api.get("/api/v1/links/l-missing", OPERATOR_TOKEN).status_code == 404


def test_timeline_is_newest_first_with_field_values_and_actions(api: support.Served) -> None:
    entries = api.get("/api/v1/links/l-000005/timeline", OPERATOR_TOKEN).json()["items"]
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True)
    kinds = [e["kind"] for e in entries]
    assert kinds[:2] == ["verification", "action"] and "command" in kinds and "decision" in kinds
    assert entries[0]["status"] == "divergent" and entries[0]["properties"] == ["phone"]
    action = entries[1]
    assert action["action_id"] == ACTION_ID and action["actor"] == "alice"
    assert action["action_kind"] == "RESYNC" and action["status"] == "applied"
    assert action["fields"] == [{"property": "first_name", "before": "Nora", "after": "Olav"}]
    change = next(e for e in entries if e.get("event_id") == "e-fields")
    assert change["fields"] == [
        {"property": "phone", "before": person(5).phone, "after": "+4791111111"}
    ]


def test_timeline_pages_cover_every_entry_once(api: support.Served) -> None:
    whole = api.get("/api/v1/links/l-000005/timeline", OPERATOR_TOKEN).json()["items"]
    paged = all_pages(api, "/api/v1/links/l-000005/timeline", limit=2)
    assert paged == whole and len(whole) >= 5


def test_action_result(api: support.Served) -> None:
    done = api.get(f"/api/v1/actions/{ACTION_ID}", OPERATOR_TOKEN).json()
    assert done["status"] == "applied" and done["reason"].startswith("customer phoned")
    reader = api.get(f"/api/v1/actions/{ACTION_ID}", READER_TOKEN).json()
    assert reader["status"] == "applied" and "reason" not in reader
    pending = api.get("/api/v1/actions/not-yet", OPERATOR_TOKEN).json()
    assert pending == {"action_id": "not-yet", "status": "pending"}


# ------------------------------------------------------------------------------------------------
# CLI parity: the commands call the same API
# ------------------------------------------------------------------------------------------------


def test_cli_calls_the_api(
    api: support.Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import cli

    monkeypatch.setenv("TETHER_CONSOLE_URL", api.url)
    monkeypatch.setenv("TETHER_CONSOLE_TOKEN", OPERATOR_TOKEN)
    assert cli.main(["review", "list", "--all-pages", "--limit", "2"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == N // 50 and listed[0]["reason"] == "ambiguous_match"
    assert cli.main(["links", "show", "l-000005"]) == 0
    assert json.loads(capsys.readouterr().out)["base"]["email"] == person(5).email
    assert cli.main(["links", "show", "l-000005", "--timeline"]) == 0
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)["items"]]
    assert kinds[:2] == ["verification", "action"]
    assert cli.main(["links", "list", "--q", person(7).email, "--text"]) == 0
    out = capsys.readouterr().out
    assert person(7).link_id in out and out.splitlines()[0].startswith("link_id")
    assert cli.main(["actions", "show", ACTION_ID]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "applied"
    assert cli.main(["actions", "list", "--text"]) == 0
    assert ACTION_ID in capsys.readouterr().out
    # The same roles apply: a reader is refused the action (exit 1, the API's answer).
    monkeypatch.setenv("TETHER_CONSOLE_TOKEN", READER_TOKEN)
    assert cli.main(["links", "unlink", "l-000005", "--reason", "test"]) == 1
    assert "403" in capsys.readouterr().err
    monkeypatch.setenv("TETHER_CONSOLE_TOKEN", "")
    assert cli.main(["review", "list"]) == 2


def test_overview_counts_are_reused_for_the_cache_period(seeded: str) -> None:
    with support.serve(seeded, console_overview_cache_seconds=3600) as served:
        first = served.get("/api/v1/overview", OPERATOR_TOKEN).json()
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute(
                "UPDATE mapper_review_items SET resolved_at = now() WHERE review_id = 'r-000150'"
            )
        try:
            again = served.get("/api/v1/overview", OPERATOR_TOKEN).json()
            assert again["review_items"] == first["review_items"]  # the cached counts
        finally:
            with psycopg.connect(seeded, autocommit=True) as conn:
                conn.execute(
                    "UPDATE mapper_review_items SET resolved_at = NULL WHERE review_id = 'r-000150'"
                )
    with support.serve(seeded) as fresh:  # console_overview_cache_seconds=0: counted each time
        assert fresh.get("/api/v1/overview", OPERATOR_TOKEN).json()["review_items"]["open"] == 6


def test_audit_trail_and_ignored_records(api: support.Served) -> None:
    trail = api.get("/api/v1/actions", OPERATOR_TOKEN).json()["items"]
    assert [a["action_id"] for a in trail] == [ACTION_ID]
    assert trail[0]["reason"].startswith("customer phoned") and trail[0]["actor"] == "alice"
    reader = api.get("/api/v1/actions", READER_TOKEN).json()["items"]
    assert "reason" not in reader[0] and reader[0]["kind"] == "RESYNC"
    assert (
        api.get("/api/v1/actions", OPERATOR_TOKEN, params={"kind": "UNLINK"}).json()["items"] == []
    )
    ignored = api.get("/api/v1/ignored-records", READER_TOKEN).json()["items"]
    assert [(i["record_id"], i["link_id"]) for i in ignored] == [
        (person(6).employee_id, person(6).link_id)
    ]


def test_the_console_connections_cannot_write(api: support.Served) -> None:
    with (
        api.console.pool.connection() as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("DELETE FROM mapper_review_items")
