"""Test support for the console: a migrated database seeded with N synthetic links, and an app.

``seed(conn, n)`` writes ``n`` links the way the mapper stores them (``Link.model_dump`` of the
mapper's own domain model, member index, match keys), one open review item and one conflict for
every ``review_every``-th link, history rows and outbox rows; COPY keeps 100,000 links to a few
seconds. Names, e-mails and phones are derived from the index (``person(i)``), so tests can
search for them. Used by tests/console and by bench/console.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from prometheus_client import CollectorRegistry

from services.mapper.domain.identity import RecordRef
from services.mapper.domain.state import Link, Member, Snapshot
from services.mapper.migrations import apply_migrations

TENANT = "default"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
OPERATOR_TOKEN = "operator-token-0123456789abcdef"
READER_TOKEN = "reader-token-0123456789abcdefgh"
TOKENS = f"alice:operator:{OPERATOR_TOKEN}\nbob:read:{READER_TOKEN}"


@dataclass(frozen=True)
class Person:
    index: int
    first: str
    last: str
    email: str
    phone: str
    employee_id: str
    contact_id: str
    link_id: str


FIRST = ("Ola", "Kari", "Per", "Ingrid", "Lars", "Nora", "Erik", "Sofie", "Jonas", "Emma")
LAST = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Berg")


def person(i: int) -> Person:
    return Person(
        index=i,
        first=FIRST[i % len(FIRST)],
        last=f"{LAST[i % len(LAST)]}{i}",
        email=f"person{i}@example.no",
        phone=f"+479{i:07d}",
        employee_id=str(100000 + i),
        contact_id=f"c-{i:06d}",
        link_id=f"l-{i:06d}",
    )


def link_state(p: Person, at: datetime) -> dict[str, Any]:
    props = {"first_name": p.first, "last_name": p.last, "email": p.email, "phone": p.phone}
    po = Member(
        ref=RecordRef(tenant=TENANT, system="poweroffice", resource="employees", id=p.employee_id),
        flow="employees",
        observed=Snapshot(props=props, source_ts=at, revision=None),
        joined_at=at,
    )
    wix = Member(
        ref=RecordRef(tenant=TENANT, system="wix", resource="contacts", id=p.contact_id),
        flow="employees",
        observed=Snapshot(props=props, source_ts=at, revision=1),
        joined_at=at,
    )
    link = Link(
        link_id=p.link_id,
        tenant=TENANT,
        members=(po, wix),
        base=props,
        version=1,
        created_at=at,
        updated_at=at,
    )
    return link.model_dump(mode="json")


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: str, rows: list[tuple[Any, ...]]
) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed(
    conn: psycopg.Connection[Any],
    n: int,
    *,
    review_every: int = 50,
    history_per_link: int = 2,
    statuses: dict[int, str] | None = None,
) -> None:
    """Seed ``n`` links (see the module docstring); ``statuses`` overrides some links' status."""
    template = link_state(person(0), T0)
    template_json = json.dumps(template)
    links, members, keys, contacts, reviews, conflicts, history, outbox = ([] for _ in range(8))
    for i in range(n):
        p = person(i)
        at = T0 + timedelta(seconds=i)
        # The template's values replaced textually: 100k Link models would take a minute.
        state = (
            template_json.replace(person(0).employee_id, p.employee_id)
            .replace(person(0).contact_id, p.contact_id)
            .replace(person(0).link_id, p.link_id)
            .replace(person(0).email, p.email)
            .replace(person(0).phone, p.phone)
            .replace(f'"{person(0).last}"', f'"{p.last}"')
            .replace(f'"{person(0).first}"', f'"{p.first}"')
        )
        status = (statuses or {}).get(i, "active")
        if status != "active":
            doc = json.loads(state)
            doc["status"] = status
            state = json.dumps(doc)
        links.append((p.link_id, TENANT, status, p.contact_id, 1, state, at, at))
        members.append((TENANT, "poweroffice", "employees", p.employee_id, p.link_id))
        members.append((TENANT, "wix", "contacts", p.contact_id, p.link_id))
        keys.append((TENANT, "email", p.email, p.link_id))
        keys.append((TENANT, "phone", p.phone, p.link_id))
        contacts.append(
            (
                TENANT,
                p.contact_id,
                json.dumps({"first_name": p.first, "last_name": p.last, "email": p.email}),
                1,
                at,
            )
        )
        for h in range(history_per_link):
            history.append(
                (
                    TENANT,
                    p.link_id,
                    "poweroffice",
                    "employees",
                    p.employee_id,
                    "change",
                    f"e-{i}-{h}",
                    None,
                    "mapped" if h else "linked",
                    None,
                    1,
                    at + timedelta(milliseconds=h),
                )
            )
        outbox.append(
            (
                f"cmd-{i}",
                TENANT,
                p.link_id,
                "wix",
                "contacts",
                p.contact_id,
                "update",
                f"e-{i}-0",
                "t.commands.wix.contacts",
                p.link_id.encode(),
                b"x",
                at,
                at,
            )
        )
        if review_every and i % review_every == 0:
            reviews.append(
                (
                    f"r-{i:06d}",
                    TENANT,
                    "ambiguous_match",
                    "2 contacts match the phone number",
                    "poweroffice",
                    "employees",
                    str(900000 + i),
                    None,
                    None,
                    json.dumps([p.contact_id, person(i + 1).contact_id]),
                    at,
                    at,
                )
            )
            conflicts.append(
                (
                    f"x-{i:06d}",
                    TENANT,
                    p.link_id,
                    "phone",
                    "concurrent_edit",
                    "latest_wins",
                    json.dumps(
                        {
                            "member": "wix:contacts:" + p.contact_id,
                            "value": p.phone,
                            "changed_at": at.isoformat(),
                        }
                    ),
                    json.dumps(
                        [
                            {
                                "member": "poweroffice:employees:" + p.employee_id,
                                "value": "+4700000000",
                                "changed_at": at.isoformat(),
                            }
                        ]
                    ),
                    f"e-{i}-1",
                    at,
                )
            )
    _copy(
        conn,
        "mapper_links",
        "link_id, tenant, status, hub_record_id, version, state, created_at, updated_at",
        links,
    )
    _copy(conn, "mapper_link_members", "tenant, system, resource, record_id, link_id", members)
    _copy(conn, "mapper_link_keys", "tenant, kind, value, link_id", keys)
    _copy(conn, "mapper_contacts", "tenant, contact_id, props, revision, updated_at", contacts)
    _copy(
        conn,
        "mapper_history",
        "tenant, link_id, system, resource, record_id, source, "
        "event_id, command_id, decision, reason, commands, at",
        history,
    )
    _copy(
        conn,
        "mapper_outbox",
        "command_id, tenant, link_id, target_system, target_resource, "
        "target_id, action, caused_by, topic, key, payload, created_at, produced_at",
        outbox,
    )
    _copy(
        conn,
        "mapper_review_items",
        "review_id, tenant, reason, detail, system, resource, "
        "record_id, link_id, property, candidates, first_seen, last_seen",
        reviews,
    )
    _copy(
        conn,
        "mapper_conflicts",
        "conflict_id, tenant, link_id, property, kind, rule, winner, losers, cause, at",
        conflicts,
    )
    conn.execute("ANALYZE")


def migrate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        apply_migrations(conn)


def settings(dsn: str, **overrides: Any) -> Any:
    from services.console.settings import ConsoleSettings

    values: dict[str, Any] = {
        "postgres_dsn": dsn,
        "console_tokens": TOKENS,
        "console_kafka_cache_seconds": 0,
        "console_overview_cache_seconds": 0,
        **overrides,
    }
    return ConsoleSettings(**values)


@dataclass
class Served:
    url: str
    console: Any
    http: httpx.Client

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers=auth(token) if token else {}, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers=auth(token) if token else {}, **kwargs)


@contextmanager
def serve(
    dsn: str, *, kafka: bool = False, producer: Any | None = None, **overrides: Any
) -> Iterator[Served]:
    """The console's real server (uvicorn on an ephemeral port) over ``dsn``; ``kafka=False``:
    PostgreSQL only (no dead letters, no actions)."""
    from services.console.app import build_app
    from services.console.main import build_console
    from services.core.public_http import PublicServer

    console = build_console(
        settings(dsn, **overrides), CollectorRegistry(), kafka=kafka, producer=producer
    )
    server = PublicServer("127.0.0.1", 0, app=build_app(console)).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
            yield Served(url, console, http)
    finally:
        server.stop()
        if console.tenants is not None:
            console.tenants.close()
        if console.actions is not None and producer is None:
            close = getattr(console.actions.producer, "close", None)
            if close is not None:
                close(timeout=5)
        console.pool.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
