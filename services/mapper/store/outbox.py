"""The outbox: the commands a decision emits, stored with it, and their relay to Kafka.

A decision's commands are written to ``mapper_outbox`` (once per command id) in the
transaction that stores the decision; the relay then produces the unproduced rows in ``seq``
order and marks them produced (docs/mapper.md, "The loop" and "Crashes"): a command is never
lost, and appears twice on its topic only after a crash between a produce and its mark.

Locking: one replica relays at a time (``RELAY_LOCK_KEY``, a transaction-scoped
``pg_try_advisory_xact_lock``), so one link's commands reach the topic in outbox order.

Imports: psycopg (via ``session``) and the domain's ``Command`` only — not the link repository
(``links``, ``batch``) nor the tracking rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.mapper.domain import Command
from services.mapper.store.session import StoreSession

#: Only one replica relays the outbox at a time (64-bit key space), so one link's commands
#: reach the topic in outbox order.
RELAY_LOCK_KEY = 0x7E7_0000_0000_0003

INSERT_OUTBOX = """
INSERT INTO mapper_outbox
    (command_id, tenant, link_id, target_system, target_resource, target_id, action, caused_by,
     topic, key, payload, created_at, traceparent)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (command_id) DO NOTHING
"""
#: ``INSERT_OUTBOX`` for many rows, ``seq`` assigned in the given order.
INSERT_OUTBOX_SET = """
INSERT INTO mapper_outbox
    (command_id, tenant, link_id, target_system, target_resource, target_id, action, caused_by,
     topic, key, payload, created_at, traceparent)
SELECT command_id, tenant, link_id, target_system, target_resource, target_id, action,
       caused_by, topic, key, payload, created_at, traceparent
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
            %b::text[], %b::text[], %b::bytea[], %b::bytea[], %b::timestamptz[], %b::text[])
     WITH ORDINALITY
     AS x(command_id, tenant, link_id, target_system, target_resource, target_id, action,
          caused_by, topic, key, payload, created_at, traceparent, n)
ORDER BY n
ON CONFLICT (command_id) DO NOTHING
"""
COUNT_DELETES_SINCE = """
SELECT count(*) FROM mapper_outbox WHERE action = 'delete' AND created_at >= %s
"""
TRY_RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"
UNPRODUCED = """
SELECT seq, topic, key, payload, traceparent FROM mapper_outbox
WHERE produced_at IS NULL ORDER BY seq LIMIT %s
"""
MARK_PRODUCED = "UPDATE mapper_outbox SET produced_at = %s WHERE seq = ANY(%s)"
OUTBOX_BACKLOG = "SELECT count(*) FROM mapper_outbox WHERE produced_at IS NULL"
PURGE_OUTBOX = "DELETE FROM mapper_outbox WHERE produced_at IS NOT NULL AND produced_at < %s"


@dataclass(frozen=True)
class OutboxRow:
    """An unproduced outbox row, as the relay sends it."""

    seq: int
    topic: str
    key: bytes
    payload: bytes
    traceparent: str | None = None


class OutboxStore(StoreSession):
    """The outbox rows of the transaction's connection: written by decisions, read by the relay."""

    def insert_outbox(
        self,
        command: Command,
        *,
        topic: str,
        key: bytes,
        payload: bytes,
        caused_by: str,
        now: datetime,
        traceparent: str | None = None,
    ) -> None:
        """Write one encoded command to the outbox (kept once per command id), with the trace
        context its message will carry (None: tracing off)."""
        target = command.target
        self._write(
            INSERT_OUTBOX,
            (
                command.command_id,
                command.tenant,
                command.link_id,
                target.system,
                target.resource,
                target.id,
                command.action.value,
                caused_by,
                topic,
                key,
                payload,
                now,
                traceparent,
            ),
        )

    def deletes_since(self, cutoff: datetime) -> int:
        row = self.conn.execute(COUNT_DELETES_SINCE, (cutoff,)).fetchone()
        return int(row[0]) if row else 0

    # -- relay --------------------------------------------------------------------------------

    def try_relay_lock(self) -> bool:
        row = self.conn.execute(TRY_RELAY_LOCK, (RELAY_LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    def unproduced(self, limit: int) -> list[OutboxRow]:
        rows = self.conn.execute(UNPRODUCED, (limit,)).fetchall()
        return [
            OutboxRow(int(s), str(t), bytes(k), bytes(p), str(tp) if tp else None)
            for s, t, k, p, tp in rows
        ]

    def mark_produced(self, seqs: Sequence[int], now: datetime) -> None:
        self.conn.execute(MARK_PRODUCED, (now, list(seqs)))

    # -- maintenance / gauges -----------------------------------------------------------------

    def outbox_backlog(self) -> int:
        row = self.conn.execute(OUTBOX_BACKLOG).fetchone()
        return int(row[0]) if row else 0

    def purge_outbox(self, cutoff: datetime) -> int:
        return self.conn.execute(PURGE_OUTBOX, (cutoff,)).rowcount
