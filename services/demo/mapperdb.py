"""Read-only views of the mapper's PostgreSQL state for the demo's progress and report.

The demo is an operator tool: it reads the mapper's tables (services/mapper/migrations) the way
an operator's SQL would, and never writes them. Before the mapper has migrated its database the
views answer "nothing yet" instead of failing.

Imports: psycopg and the demo's own verify module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

from services.demo.verify import LinkView

# PENDING, IN_REVIEW and FAILED are written so that PostgreSQL answers them from indexes (the
# benchmarks run them twice a second while the pipeline works, on the same CPUs): the
# flags are migration 8's generated columns ``in_flight``/``failed`` (partial indexes; a member's
# ``pending``/``last_error`` is an object or absent), and a review item finds its record's
# member by the member table's primary key (tenant first). Before, IN_REVIEW scanned every
# member per open review item (~1 s per call at 10k links, 50 items) and PENDING/FAILED
# unnested every link's members.
PENDING = """
    SELECT count(*) FROM mapper_links l
    WHERE l.status = 'active' AND l.in_flight
"""
LINKED = """
    SELECT count(*) FROM mapper_link_members m JOIN mapper_links l USING (link_id)
    WHERE m.system = 'poweroffice' AND l.status = 'active' AND l.hub_record_id IS NOT NULL
"""
IN_REVIEW = """
    SELECT count(DISTINCT (r.resource, r.record_id)) FROM mapper_review_items r
    WHERE r.resolved_at IS NULL AND r.system = 'poweroffice' AND NOT EXISTS (
        SELECT 1 FROM mapper_link_members m JOIN mapper_links l USING (link_id)
        WHERE m.tenant = r.tenant AND m.system = r.system AND m.resource = r.resource
          AND m.record_id = r.record_id AND l.status = 'active' AND l.hub_record_id IS NOT NULL)
"""
UNPRODUCED = "SELECT count(*) FROM mapper_outbox WHERE produced_at IS NULL"
FAILED = """
    SELECT count(*) FROM mapper_links l WHERE l.failed
"""


@dataclass(frozen=True)
class SyncState:
    linked: int = 0
    in_review: int = 0
    pending_commands: int = 0
    unproduced_outbox: int = 0
    failed_commands: int = 0


def _count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def sync_state(dsn: str) -> SyncState:
    try:
        with psycopg.connect(dsn) as conn:
            return SyncState(
                linked=_count(conn, LINKED),
                in_review=_count(conn, IN_REVIEW),
                pending_commands=_count(conn, PENDING),
                unproduced_outbox=_count(conn, UNPRODUCED),
                failed_commands=_count(conn, FAILED),
            )
    except (errors.UndefinedTable, errors.UndefinedColumn):
        return SyncState()


def tenant_sync_states(dsn: str) -> dict[str, SyncState]:
    """``sync_state`` per tenant (one grouped query per count; tenants with no link are absent)."""
    counts: dict[str, dict[str, int]] = {}
    queries = {
        "linked": LINKED.replace("SELECT count(*)", "SELECT m.tenant, count(*)")
        + " GROUP BY m.tenant",
        "in_review": IN_REVIEW.replace(
            "SELECT count(DISTINCT (r.resource, r.record_id))",
            "SELECT r.tenant, count(DISTINCT (r.resource, r.record_id))",
        )
        + " GROUP BY r.tenant",
        "pending_commands": PENDING.replace("SELECT count(*)", "SELECT l.tenant, count(*)")
        + " GROUP BY l.tenant",
        "unproduced_outbox": UNPRODUCED.replace("SELECT count(*)", "SELECT tenant, count(*)")
        + " GROUP BY tenant",
        "failed_commands": FAILED.replace("SELECT count(*)", "SELECT l.tenant, count(*)")
        + " GROUP BY l.tenant",
    }
    try:
        with psycopg.connect(dsn) as conn:
            for field, query in queries.items():
                for tenant, count in conn.execute(query):
                    counts.setdefault(tenant, {})[field] = int(count)
    except (errors.UndefinedTable, errors.UndefinedColumn):
        return {}
    return {tenant: SyncState(**fields) for tenant, fields in counts.items()}


def links(dsn: str, tenant: str | None = None) -> list[LinkView]:
    """Every link (of ``tenant``, when given) with its PowerOffice members."""
    where, params = ("AND tenant = %s", (tenant,)) if tenant is not None else ("", ())
    with psycopg.connect(dsn) as conn:
        members: dict[str, list[tuple[str, str]]] = {}
        for link_id, resource, record_id in conn.execute(
            "SELECT link_id, resource, record_id FROM mapper_link_members "
            f"WHERE system = 'poweroffice' {where} ORDER BY link_id, resource, record_id",
            params,
        ):
            members.setdefault(link_id, []).append((resource, record_id))
        return [
            LinkView(link_id, status, contact_id, tuple(members.get(link_id, ())))
            for link_id, status, contact_id in conn.execute(
                f"SELECT link_id, status, hub_record_id FROM mapper_links WHERE true {where} "
                "ORDER BY link_id",
                params,
            )
        ]


def review_records(dsn: str, tenant: str | None = None) -> set[tuple[str, str]]:
    where, params = ("AND tenant = %s", (tenant,)) if tenant is not None else ("", ())
    with psycopg.connect(dsn) as conn:
        return {
            (resource, record_id)
            for resource, record_id in conn.execute(
                "SELECT resource, record_id FROM mapper_review_items "
                f"WHERE resolved_at IS NULL AND system = 'poweroffice' {where}",
                params,
            )
        }


def review_items(dsn: str, tenant: str | None = None) -> list[dict[str, Any]]:
    where, params = ("AND tenant = %s", (tenant,)) if tenant is not None else ("", ())
    with psycopg.connect(dsn) as conn:
        return [
            {
                "system": system,
                "resource": resource,
                "record_id": record_id,
                "reason": reason,
                "detail": detail,
            }
            for system, resource, record_id, reason, detail in conn.execute(
                "SELECT system, resource, record_id, reason, detail FROM mapper_review_items "
                f"WHERE resolved_at IS NULL {where} ORDER BY first_seen",
                params,
            )
        ]


BUSIEST_LINK = """
    SELECT h.link_id FROM mapper_history h JOIN mapper_links l USING (link_id)
    WHERE l.status = 'active' GROUP BY h.link_id ORDER BY count(*) DESC, h.link_id LIMIT 1
"""


def busiest_link(dsn: str) -> str | None:
    """The active link with the most history rows (the richest timeline to show), if any."""
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(BUSIEST_LINK).fetchone()
    except errors.UndefinedTable:
        return None
    return str(row[0]) if row else None
