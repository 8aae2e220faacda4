"""The mapper dry run: which commands a replay would cause, computed with no side effects.

The mapper's own ``Handler`` (``services.mapper.handler``: load state, call the pure domain,
persist) runs over the replay range against the mapper's current PostgreSQL state, exactly as
the loop would (per-message savepoints, inputs below the tracking rows skipped unless the replay
rewinds them), inside ONE transaction that is always rolled back. The commands it writes to the
outbox are recorded on the way (``RecordingStore``), each marked when its ``command_id`` is in
the outbox already — such a command is never sent again (the outbox de-duplicates by id, the
loader by ``command_id``).

No side effects: nothing is produced to Kafka and every row written is rolled back. Two things
are not transactional in PostgreSQL and are the only traces a dry run leaves: sequence numbers
(``mapper_outbox.seq``, ``mapper_history.id`` skip values) and, while the dry run runs, the row
and advisory locks the handler takes — a running mapper touching the same links waits for them.
``lock_timeout`` bounds how long the dry run itself waits for the mapper.

Inputs of several partitions are interleaved by message timestamp (the mapper processes
partitions independently); the result is the same for inputs of different records.

Imports: psycopg, the core codec/topics modules and the mapper's handler/store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import psycopg

from services.core.codec import AvroCodec
from services.core.errors import TetherError
from services.core.topics import TopicLayout
from services.mapper.domain import Command, Policy
from services.mapper.handler import Handler
from services.mapper.operator_actions import ActionApplier
from services.mapper.store import MapperStore
from services.replay.plan import CommandPreview

TP = tuple[str, int]
OUTBOX_HAS = "SELECT 1 FROM mapper_outbox WHERE command_id = %s"


class RecordingStore(MapperStore):
    """The mapper's store, remembering every command the handler writes to the outbox."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        super().__init__(conn)
        self.commands: list[CommandPreview] = []
        self._seen: set[str] = set()

    def insert_outbox(self, command: Command, **kwargs: Any) -> None:
        command_id = command.command_id
        known = command_id in self._seen or self._in_outbox(command_id)
        super().insert_outbox(command, **kwargs)
        self._seen.add(command_id)
        target = command.target
        self.commands.append(
            CommandPreview(
                command_id=command_id,
                link_id=command.link_id,
                target=f"{target.system}/{target.resource}",
                target_id=target.id,
                action=command.action.value,
                caused_by=str(kwargs.get("caused_by", "")),
                already_in_outbox=known,
            )
        )

    def _in_outbox(self, command_id: str) -> bool:
        row = self.conn.execute(OUTBOX_HAS, (command_id,)).fetchone()
        return row is not None


def tracking_positions(dsn: str, group: str) -> dict[TP, int]:
    """The mapper's tracking rows (next offset to process) of ``group``."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        return dict(MapperStore(conn).positions(group))


def rewind_tracking(dsn: str, group: str, targets: Mapping[TP, int]) -> dict[TP, int]:
    """Move tracking rows back to ``targets`` (never forward); returns the rows it moved.

    One transaction; the rows are locked as the loop locks them, so a mapper that is (wrongly)
    still running cannot interleave. Run only while the group is stopped.
    """
    moved: dict[TP, int] = {}
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn, conn.transaction():
        store = MapperStore(conn)
        current = store.lock_positions(group, targets.keys())
        for tp, target in targets.items():
            if current.get(tp, 0) > target:
                moved[tp] = target
        store.save_positions(group, moved, datetime.now(UTC))
    return moved


def preview(
    records: Iterable[Any],
    *,
    dsn: str,
    group: str,
    codec: AvroCodec,
    layout: TopicLayout,
    policy: Policy,
    max_deletes_per_hour: int,
    rewind: bool,
    lock_timeout_ms: int = 5000,
) -> dict[str, Any]:
    """Run the mapper's handler over ``records`` in a rolled-back transaction; the summary."""
    ordered = sorted(records, key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))
    results: Counter[str] = Counter()
    dead: list[dict[str, Any]] = []
    skipped = 0
    store: RecordingStore | None = None
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn, conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        store = RecordingStore(conn)
        positions = store.positions(group)
        handler = Handler(store, codec, layout, policy, max_deletes_per_hour=max_deletes_per_hour)
        actions = ActionApplier(
            conn, codec, layout, policy, max_deletes_per_hour=max_deletes_per_hour, store=store
        )
        for record in ordered:
            if not rewind and record.offset < positions.get((record.topic, record.partition), 0):
                skipped += 1
                continue
            outcome = record.topic == layout.outcomes
            action = record.topic == layout.operator_actions
            try:
                with conn.transaction():  # a savepoint, as in the mapper's loop
                    kind = "Outcome" if outcome else "OperatorAction" if action else "ChangeEvent"
                    datum = codec.decode(record.value, kind)
                    now = datetime.now(UTC)
                    if action:
                        handled = actions.apply(datum, now)
                    else:
                        handled = (
                            handler.outcome(datum, now) if outcome else handler.change(datum, now)
                        )
                results.update(h.result for h in handled)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise  # lock timeout, connection lost: the dry run fails, visibly
            except Exception as exc:
                if isinstance(exc, TetherError) and exc.retriable:
                    raise
                results["dead_letter"] += 1
                dead.append(
                    {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "error": type(exc).__name__,
                    }
                )
        raise psycopg.Rollback()  # always: a dry run leaves no rows behind
    commands = store.commands if store is not None else []
    return {
        "inputs": len(ordered),
        "skipped_by_tracking": skipped,
        "rewind_tracking": rewind,
        "results": dict(results),
        "dead_letters": len(dead),
        "dead_letter_inputs": dead,
        "commands": [asdict(c) for c in commands],
    }
