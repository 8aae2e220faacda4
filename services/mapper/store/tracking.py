"""Tracking rows: the consumed positions (exactly-once input) and the change streams' starts.

``mapper_positions`` holds, per (consumer group, topic, partition), the next offset to process.
It is written in the same transaction as the effects of the messages below it, so a message
re-read after a crash or a rebalance is skipped (replay = no-op).

Locking: the batch's positions are locked ``FOR UPDATE`` (in (topic, partition) order, before
any advisory or link lock of the batch): a zombie consumer still holding a revoked partition
waits, then sees the advanced position and skips.

Imports: psycopg (via ``session``) only — not the domain, the link repository (``links``,
``batch``) nor the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from services.mapper.store.session import StoreSession

Position = tuple[str, int]

ENSURE_POSITIONS = """
INSERT INTO mapper_positions (group_id, topic, partition, next_offset, updated_at)
SELECT %s, t, p, 0, now() FROM unnest(%s::text[], %s::int[]) AS x(t, p)
ON CONFLICT DO NOTHING
"""
LOCK_POSITIONS = """
SELECT topic, partition, next_offset FROM mapper_positions
WHERE group_id = %s AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
ORDER BY topic, partition
FOR UPDATE
"""
SAVE_POSITION = """
UPDATE mapper_positions SET next_offset = %s, updated_at = %s
WHERE group_id = %s AND topic = %s AND partition = %s
"""
SELECT_POSITIONS = "SELECT topic, partition, next_offset FROM mapper_positions WHERE group_id = %s"

SELECT_STREAM_START = """
SELECT first_extracted_at FROM mapper_stream_starts
WHERE tenant = %s AND system = %s AND resource = %s
"""
INSERT_STREAM_START = """
INSERT INTO mapper_stream_starts (tenant, system, resource, first_extracted_at)
VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING
"""


class TrackingStore(StoreSession):
    """The tracking rows of the transaction's connection."""

    def lock_positions(self, group: str, positions: Iterable[Position]) -> dict[Position, int]:
        """The next offset to process per (topic, partition), locked for this transaction."""
        wanted = sorted(set(positions))
        topics = [t for t, _ in wanted]
        partitions = [p for _, p in wanted]
        self.conn.execute(ENSURE_POSITIONS, (group, topics, partitions))
        rows = self.conn.execute(LOCK_POSITIONS, (group, topics, partitions)).fetchall()
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def save_positions(self, group: str, positions: Mapping[Position, int], now: datetime) -> None:
        for (topic, partition), offset in sorted(positions.items()):
            self.conn.execute(SAVE_POSITION, (offset, now, group, topic, partition))

    def stream_start(
        self, tenant: str, system: str, resource: str, seen_at: datetime
    ) -> tuple[datetime, bool]:
        """When the mapper first saw this change stream; records ``seen_at`` for a new one.
        Returns (start, stored before this transaction)."""
        row = self.conn.execute(SELECT_STREAM_START, (tenant, system, resource)).fetchone()
        if row is not None:
            return row[0], True
        self.conn.execute(INSERT_STREAM_START, (tenant, system, resource, seen_at))
        return seen_at, False

    def positions(self, group: str) -> dict[Position, int]:
        rows = self.conn.execute(SELECT_POSITIONS, (group,)).fetchall()
        return {(str(t), int(p)): int(o) for t, p, o in rows}
