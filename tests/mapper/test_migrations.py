"""Migrations upgrade a running deployment in place: rows written by the previous release's schema
are read after the upgrade, through the mapper's store and the console's read model.

Migration 7 (the hub is a role: ``mapper_links.wix_contact_id`` -> ``hub_record_id``): the
database is migrated up to migration 6, links are written with that release's SQL and link-state
JSON, then migrated; the store finds the links by record and by id, counts them by state, updates
one (version check), the unique hub index still holds, and the console lists and shows them.

Migration 8 (the console's link filters on generated columns): the columns are computed for the
rows written before, the console's name search finds them, and a link update that keeps the name
and the flags is a HOT update (no index over the link document any more).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from services.console import readmodel
from services.mapper.migrations import MIGRATIONS, apply_migrations
from services.mapper.store import MapperStore
from services.mapper.store.batch import BatchStore
from services.mapper.store.links import StaleLinkError
from services.mapper.store.session import prepare_session

TENANT = "default"
AT = datetime(2025, 1, 1, tzinfo=UTC)

#: What the release before migration 7 wrote (store.INSERT_LINK of that release).
V006_INSERT_LINK = """
INSERT INTO mapper_links
    (link_id, tenant, status, wix_contact_id, version, state, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)
"""
V006_INSERT_MEMBER = """
INSERT INTO mapper_link_members (tenant, system, resource, record_id, link_id)
VALUES (%s, %s, %s, %s, %s)
"""


def _member(system: str, resource: str, record_id: str, keys: list[list[str]]) -> dict[str, Any]:
    """A member of a link-state document exactly as that release dumped it."""
    return {
        "ref": {
            "tenant": TENANT,
            "system": system,
            "resource": resource,
            "id": record_id,
            "parent_id": None,
        },
        "flow": resource if system == "poweroffice" else "wix",
        "status": "active",
        "status_reason": None,
        "observed": None,
        "pending": None,
        "written": None,
        "synced": [],
        "rejected": {},
        "created_by_engine": False,
        "last_error": None,
        "joined_at": "2025-01-01T00:00:00Z",
        "match_keys": keys,
    }


def _state(link_id: str, members: list[dict[str, Any]], version: int) -> str:
    return json.dumps(
        {
            "link_id": link_id,
            "tenant": TENANT,
            "status": "active",
            "status_reason": None,
            "members": members,
            "base": {"first_name": "Kari", "last_name": "Nordmann", "email": "kari@example.no"},
            "base_ts": {},
            "merged_into": None,
            "version": version,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
        }
    )


def _write_v006_links(conn: psycopg.Connection[Any]) -> None:
    """A linked pair (employee 101 + contact c-1) and a link whose contact is being created."""
    linked = _state(
        "L-1",
        [
            _member("poweroffice", "employees", "101", [["email", "kari@example.no"]]),
            _member("wix", "contacts", "c-1", []),
        ],
        3,
    )
    creating = _state("L-2", [_member("poweroffice", "employees", "102", [])], 1)
    with conn.transaction():
        conn.execute(V006_INSERT_LINK, ("L-1", TENANT, "active", "c-1", 3, linked, AT, AT))
        conn.execute(V006_INSERT_LINK, ("L-2", TENANT, "active", None, 1, creating, AT, AT))
        for system, resource, record_id, link_id in (
            ("poweroffice", "employees", "101", "L-1"),
            ("wix", "contacts", "c-1", "L-1"),
            ("poweroffice", "employees", "102", "L-2"),
        ):
            conn.execute(V006_INSERT_MEMBER, (TENANT, system, resource, record_id, link_id))


@pytest.fixture
def upgraded(pg_dsn: str) -> str:
    """A database at migration 6 holding that release's rows, then migrated to the latest."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert apply_migrations(conn, up_to=6) == [1, 2, 3, 4, 5, 6]
        _write_v006_links(conn)
        assert apply_migrations(conn) == [m.version for m in MIGRATIONS if m.version > 6]
    return pg_dsn


def test_the_hub_column_and_its_unique_index_are_renamed_in_place(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as conn:
        columns = {
            str(r[0])
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'mapper_links'"
            )
        }
        assert "hub_record_id" in columns
        assert "wix_contact_id" not in columns
        rows = conn.execute(
            "SELECT link_id, hub_record_id FROM mapper_links ORDER BY link_id"
        ).fetchall()
        assert rows == [("L-1", "c-1"), ("L-2", None)]
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'mapper_links_hub_record'"
        ).fetchone()
        assert index is not None
        assert "UNIQUE" in index[0] and "(tenant, hub_record_id)" in index[0]
        state = _state("L-3", [_member("wix", "contacts", "c-1", [])], 1)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO mapper_links (link_id, tenant, status, hub_record_id, version, state,"
                " created_at, updated_at) VALUES ('L-3', %s, 'active', 'c-1', 1, %s, %s, %s)",
                (TENANT, state, AT, AT),
            )


def test_the_store_reads_and_updates_links_written_before_the_upgrade(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as conn:
        prepare_session(conn)
        store = MapperStore(conn)
        with conn.transaction():
            link = store.link_for_record(TENANT, "poweroffice", "employees", "101")
            assert link is not None
            assert (link.link_id, link.version) == ("L-1", 3)
            assert [m.ref.id for m in link.members] == ["101", "c-1"]
            assert store.link_id_for_record(TENANT, "wix", "contacts", "c-1") == "L-1"
            assert store.link_states() == {(TENANT, "active"): 1, (TENANT, "creating"): 1}
        batch = BatchStore(conn)
        with conn.transaction():
            found = batch.links_for_records([(TENANT, "poweroffice", "employees", "102")])
            creating = found[(TENANT, "poweroffice", "employees", "102")]
            batch.save_link(creating.model_copy(update={"version": 2}), creating)()
            batch.flush()
        assert conn.execute(
            "SELECT version FROM mapper_links WHERE link_id = 'L-2'"
        ).fetchone() == (2,)
        stale = BatchStore(conn)
        with pytest.raises(StaleLinkError), conn.transaction():
            link_before = store.read_link("L-1")
            assert link_before is not None
            old = link_before.model_copy(update={"version": 2})  # not the stored version
            stale.save_link(link_before.model_copy(update={"version": 4}), old)()
            stale.flush()


def test_the_console_lists_and_shows_links_written_before_the_upgrade(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as conn:
        page = readmodel.links(conn, TENANT)
        listed = {row["link_id"]: row for row in page.items}
        assert listed["L-1"]["wix_contact_id"] == "c-1"
        assert listed["L-2"]["wix_contact_id"] is None
        assert listed["L-1"]["name"] == "Kari Nordmann"
        shown = readmodel.link_page(conn, TENANT, "L-1")
        assert shown is not None
        assert shown["wix_contact_id"] == "c-1"
        assert [m["id"] for m in shown["members"]] == ["101", "c-1"]


def test_the_link_flags_are_generated_for_links_written_before_the_upgrade(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT link_id, search_name, in_flight, failed FROM mapper_links ORDER BY link_id"
        ).fetchall()
        assert rows == [
            ("L-1", "kari nordmann", False, False),
            ("L-2", "kari nordmann", False, False),
        ]
        found = readmodel.links(conn, TENANT, q="nordm")
        assert sorted(row["link_id"] for row in found.items) == ["L-1", "L-2"]


def test_a_link_update_that_keeps_its_name_and_flags_is_a_hot_update(upgraded: str) -> None:
    """Migration 8: no index is over the link document any more, and pages have room."""
    with psycopg.connect(upgraded, autocommit=True) as conn:
        store = MapperStore(conn)
        with conn.transaction():
            link = store.link_for_record(TENANT, "poweroffice", "employees", "101")
            assert link is not None
            base = {**link.base, "phone": "+4791234567"}
            changed = link.model_copy(update={"base": base, "version": link.version + 1})
            store.save_link(changed, link)()
            hot = conn.execute(
                "SELECT pg_stat_get_xact_tuples_updated('mapper_links'::regclass),"
                " pg_stat_get_xact_tuples_hot_updated('mapper_links'::regclass)"
            ).fetchone()
        assert hot == (1, 1)
