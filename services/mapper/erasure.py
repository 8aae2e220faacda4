"""Offboarding erasure (GDPR): delete every PostgreSQL row of one tenant, in one transaction.

``erase_tenant(conn, tenant)`` deletes the tenant's link state (links, members, match keys), its
hub-record index and last-known records (the personal data the loader writes from), its history,
review items, conflicts, outbox rows, operator actions (the audit trail) and ignored records, its
change-stream starts and its verification verdicts — every table of the mapper's migrations
that holds tenant data (``ERASED_TABLES``). ``count_tenant_rows`` is the dry run: the same
tables, counted.

What stays: the tables that hold no tenant data (``NOT_TENANT_DATA``: consumed positions per
consumer group and partition, the migration bookkeeping, the shared API budgets per hashed
credential key). The test
(``tests/mapper/test_erasure.py``) enumerates every table with a ``tenant`` column from
``information_schema``, every table referencing a covered one by a foreign key and every
``CREATE TABLE`` in the source tree, and fails when one is in neither list: a new table must be
added here (or declared as holding no tenant data) in the change that creates it.

Order: the caller stops the tenant's work and lets its topics drain first (docs/operations.md
"Erasing a tenant"); a change or outcome the mapper handles after the erasure recreates rows.

Imports: psycopg only (the mapper's store and migrations define the tables named here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

#: Rows of a table belong to the tenant when its ``tenant`` column is the tenant's id ...
BY_TENANT = "tenant = %(tenant)s"
#: ... and, for the tables that reference ``mapper_links``, also when they hang off one of its
#: links (a row must never keep a deleted link alive, whatever its own tenant column says).
BY_TENANT_OR_LINK = (
    "tenant = %(tenant)s OR link_id IN (SELECT link_id FROM mapper_links WHERE tenant = %(tenant)s)"
)


@dataclass(frozen=True)
class ErasedTable:
    name: str
    condition: str


#: Every table holding tenant data, in deletion order: a table is deleted from before the table
#: its foreign keys reference (members and keys before their link, contact keys before their
#: contact), so the one transaction never violates a constraint mid-way.
ERASED_TABLES: tuple[ErasedTable, ...] = (
    ErasedTable("mapper_link_members", BY_TENANT_OR_LINK),  # -> mapper_links
    ErasedTable("mapper_link_keys", BY_TENANT_OR_LINK),  # -> mapper_links
    ErasedTable("mapper_links", BY_TENANT),
    ErasedTable("mapper_contact_keys", BY_TENANT),  # -> mapper_contacts
    ErasedTable("mapper_contacts", BY_TENANT),
    ErasedTable("mapper_records", BY_TENANT),
    ErasedTable("mapper_outbox", BY_TENANT),
    ErasedTable("mapper_conflicts", BY_TENANT),
    ErasedTable("mapper_review_items", BY_TENANT),
    ErasedTable("mapper_history", BY_TENANT),
    ErasedTable("mapper_stream_starts", BY_TENANT),
    ErasedTable("mapper_verification", BY_TENANT),
    ErasedTable("mapper_operator_actions", BY_TENANT),
    ErasedTable("mapper_ignored_records", BY_TENANT),
)

#: Tables that hold no tenant data, with the reason (kept by an erasure).
NOT_TENANT_DATA: dict[str, str] = {
    "mapper_positions": "consumed offsets per consumer group, topic and partition",
    "mapper_schema_migrations": "the applied migrations",
    # services/core/shared_budget.py: soft state per credential key (a non-reversible hash),
    # which tenants of one integrator may share; no personal data.
    "tether_api_credentials": "budget state per hashed credential key (429 holds, rate factor)",
    "tether_api_buckets": "token buckets per hashed credential key and component",
}


def _check_tenant(tenant: str) -> None:
    if not tenant or tenant != tenant.strip():
        raise ValueError("a tenant id is a non-empty string without surrounding blanks")


def _statement(verb: str, table: ErasedTable) -> sql.Composed:
    return sql.SQL("{} {} WHERE {}").format(
        sql.SQL(verb), sql.Identifier(table.name), sql.SQL(table.condition)
    )


def count_tenant_rows(conn: psycopg.Connection[Any], tenant: str) -> dict[str, int]:
    """The dry run: table -> how many of its rows an erasure of ``tenant`` would delete."""
    _check_tenant(tenant)
    counts: dict[str, int] = {}
    with conn.transaction():
        for table in ERASED_TABLES:
            row = conn.execute(
                _statement("SELECT count(*) FROM", table), {"tenant": tenant}
            ).fetchone()
            counts[table.name] = int(row[0]) if row is not None else 0
    return counts


def erase_tenant(conn: psycopg.Connection[Any], tenant: str) -> dict[str, int]:
    """Delete every row of ``tenant`` from every table of ``ERASED_TABLES`` in one transaction;
    returns table -> rows deleted. Any failure rolls the whole erasure back (run it again)."""
    _check_tenant(tenant)
    deleted: dict[str, int] = {}
    with conn.transaction():
        for table in ERASED_TABLES:  # in order: children before the rows they reference
            cursor = conn.execute(_statement("DELETE FROM", table), {"tenant": tenant})
            deleted[table.name] = cursor.rowcount
    return deleted
