"""The verifier's PostgreSQL access: the mapper's links (read only) and its own verdict rows.

The verifier reads ``mapper_links`` (the link state documents, exactly as the mapper wrote them)
and the open items of ``mapper_review_items``; it writes only ``mapper_verification`` (created by
the mapper's migration 3, which the mapper/migrate Job applies — the verifier never migrates).
Every row of a cycle is written in one transaction; rows of links that this cycle did not check
any more (no longer active) are removed in the same transaction.

Imports: psycopg, the mapper's pure domain (``Link``) and the verifier's ``compare``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import psycopg

from services.mapper.domain import Link
from services.verify.compare import Status, Verdict

ACTIVE_LINKS = "SELECT state::text FROM mapper_links WHERE tenant = %s AND status = 'active'"
OPEN_REVIEWS = """
SELECT link_id, property FROM mapper_review_items
WHERE tenant = %s AND resolved_at IS NULL AND link_id IS NOT NULL
"""
UPSERT_VERDICT = """
INSERT INTO mapper_verification AS v
    (link_id, tenant, flow, status, properties, detail, repairs, cycle_id, divergent_since,
     verified_at)
VALUES (%(link_id)s, %(tenant)s, %(flow)s, %(status)s, %(properties)s, %(detail)s,
        %(repairs)s::jsonb, %(cycle_id)s, CASE WHEN %(divergent)s THEN %(now)s END, %(now)s)
ON CONFLICT (link_id) DO UPDATE SET
    tenant = EXCLUDED.tenant, flow = EXCLUDED.flow, status = EXCLUDED.status,
    properties = EXCLUDED.properties, detail = EXCLUDED.detail, repairs = EXCLUDED.repairs,
    cycle_id = EXCLUDED.cycle_id, verified_at = EXCLUDED.verified_at,
    divergent_since = CASE WHEN %(divergent)s THEN COALESCE(v.divergent_since, %(now)s) END
"""
DROP_UNCHECKED = "DELETE FROM mapper_verification WHERE tenant = %s AND cycle_id <> %s"


def active_links(conn: psycopg.Connection[Any], tenant: str) -> list[Link]:
    return [Link.from_json(row[0]) for row in conn.execute(ACTIVE_LINKS, (tenant,)).fetchall()]


def open_reviews(conn: psycopg.Connection[Any], tenant: str) -> dict[str, set[str | None]]:
    """link id -> properties named by its open review items (None: about the whole link)."""
    found: dict[str, set[str | None]] = defaultdict(set)
    for link_id, prop in conn.execute(OPEN_REVIEWS, (tenant,)).fetchall():
        found[str(link_id)].add(prop)
    return dict(found)


def save_verdicts(
    conn: psycopg.Connection[Any],
    tenant: str,
    cycle_id: str,
    verdicts: Iterable[Verdict],
    repairs: Mapping[str, list[dict[str, str]]],
    now: datetime,
) -> None:
    """Upsert one row per verdict (``repairs``: link id -> the events emitted for it) and drop
    the rows of links this cycle did not check, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            UPSERT_VERDICT,
            [
                {
                    "link_id": v.link_id,
                    "tenant": tenant,
                    "flow": v.flow,
                    "status": v.status.value,
                    "properties": list(v.properties),
                    "detail": v.detail,
                    "repairs": json.dumps(repairs.get(v.link_id, [])),
                    "cycle_id": cycle_id,
                    "divergent": v.divergent or v.status is Status.DIVERGENT,
                    "now": now,
                }
                for v in verdicts
            ],
        )
        cur.execute(DROP_UNCHECKED, (tenant, cycle_id))
