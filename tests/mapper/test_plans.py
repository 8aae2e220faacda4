"""Hot query plans do not depend on when a statement was prepared (issue 12).

The mapper's connection prepares its statements (psycopg prepares a query after a few
executions). A generic plan chosen while the tables were small stayed a sequential scan once they
held many rows (0.97 ms instead of 0.03 ms per candidate lookup). Here every hot read is prepared
and executed while the tables hold a few analyzed rows (so a generic plan would be built for small
tables and kept: it reproduced the seq scans of the issue), the tables then grow to tens of
thousands of rows without an ANALYZE, and ``EXPLAIN EXECUTE`` of the same
prepared statement must show no sequential scan of a big table.

Real PostgreSQL; the session is configured as the mapper configures it (``prepare_session``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from services.mapper.migrations import apply_migrations
from services.mapper.store import batch, links
from services.mapper.store.session import prepare_session

ROWS = 20_000
BIG_TABLES = (
    "mapper_links",
    "mapper_link_members",
    "mapper_link_keys",
    "mapper_contacts",
    "mapper_contact_keys",
    "mapper_records",
)

TENANTS = ["default", "default"]
KINDS = ["email", "phone"]
VALUES = ["p7@example.com", "+4790000007"]

#: (name, statement, parameters) of the reads a batch runs.
HOT: list[tuple[str, str, Any]] = [
    ("lock_keys", links.ADVISORY_LOCKS, ([1, 1], ["a", "b"])),
    (
        "candidates",
        batch.BATCH_CANDIDATES,
        (TENANTS, KINDS, VALUES),
    ),
    ("contact_rows", batch.CONTACT_ROWS, (["default", "default"], ["c7", "c8"], "wix", "contacts")),
    (
        "links_for_records",
        links.LINKS_FOR_RECORDS,
        (["default"], ["poweroffice"], ["employees"], ["7"]),
    ),
    ("links_by_id", links.LINKS_BY_ID, (["l7", "l8"],)),
    (
        "records",
        batch.SELECT_RECORDS,
        (["default"], ["poweroffice"], ["employees"], ["7"]),
    ),
]


def _fill(conn: psycopg.Connection[Any], rows: int, start: int = 1) -> None:
    """``rows`` links (ids from ``start``) with a member and a key each; as many contacts with
    keys, and records."""
    state = json.dumps({"placeholder": True})
    conn.execute(
        """
        INSERT INTO mapper_links
            (link_id, tenant, status, hub_record_id, version, state, created_at, updated_at)
        SELECT 'l' || i, 'default', 'active', 'c' || i, 1, %s::jsonb, now(), now()
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (state, start, start + rows - 1),
    )
    conn.execute(
        """
        INSERT INTO mapper_link_members (tenant, system, resource, record_id, link_id)
        SELECT 'default', 'poweroffice', 'employees', i::text, 'l' || i
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (start, start + rows - 1),
    )
    conn.execute(
        """
        INSERT INTO mapper_link_keys (tenant, kind, value, link_id)
        SELECT 'default', 'email', 'p' || i || '@example.com', 'l' || i
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (start, start + rows - 1),
    )
    conn.execute(
        """
        INSERT INTO mapper_contacts
            (tenant, contact_id, props, revision, source_ts, has_other_items, deleted,
             updated_at)
        SELECT 'default', 'c' || i, '{}'::jsonb, 1, now(), false, false, now()
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (start, start + rows - 1),
    )
    conn.execute(
        """
        INSERT INTO mapper_contact_keys (tenant, kind, value, contact_id)
        SELECT 'default', 'phone', '+479' || lpad(i::text, 7, '0'), 'c' || i
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (start, start + rows - 1),
    )
    conn.execute(
        """
        INSERT INTO mapper_records (tenant, system, resource, record_id, record, updated_at)
        SELECT 'default', 'poweroffice', 'employees', i::text, '{}'::jsonb, now()
        FROM generate_series(%s::int, %s::int) AS i
        """,
        (start, start + rows - 1),
    )


def _plan(conn: psycopg.Connection[Any], name: str, params: Any) -> str:
    placeholders = ", ".join(["%s"] * len(params))
    cursor = psycopg.ClientCursor(conn)  # literal parameters: EXECUTE's own are untyped
    rows = cursor.execute(f"EXPLAIN EXECUTE {name}({placeholders})", params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def _prepare(conn: psycopg.Connection[Any], name: str, statement: str) -> None:
    """PREPARE the statement as psycopg would (positional parameters)."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    text = re.sub(r"%[sb]", number, statement)
    conn.execute(f"PREPARE {name} AS {text}".replace("%", "%%"))


@pytest.fixture
def conn(pg_dsn: str) -> Any:
    with psycopg.connect(pg_dsn, autocommit=True) as connection:
        apply_migrations(connection)
        prepare_session(connection)
        yield connection


def test_hot_reads_use_the_indexes_after_the_tables_grew(conn: psycopg.Connection[Any]) -> None:
    _fill(conn, 30)
    conn.execute("ANALYZE")
    with conn.transaction():
        cursor = psycopg.ClientCursor(conn)
        for name, statement, params in HOT:
            _prepare(conn, name, statement)
            for _ in range(8):  # past the 5 custom plans after which a generic one may stick
                cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
        _fill(conn, ROWS, start=1000)
        scans: dict[str, list[str]] = {}
        for name, _statement, params in HOT:
            plan = _plan(conn, name, params)
            found = [t for t in BIG_TABLES if re.search(rf"Seq Scan on {t}\b", plan)]
            if found:
                scans[name] = found
        assert scans == {}, f"sequential scans of big tables: {scans}"
        raise psycopg.Rollback()
