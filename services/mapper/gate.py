"""Wix first: PowerOffice changes wait until the Wix contacts extracted before them are handled.

Matching before creating only works if the mapper has seen the Wix contacts a PowerOffice record
could match. The extractor puts them on Kafka first (its Wix poller runs before the PowerOffice
pollers and waits for Kafka's acknowledgement page by page), but the mapper reads all change
topics at once and Kafka promises no order *between* topics: after a restart or a rebalance a poll
can return employees while the contacts produced before them are still unfetched. Without this
gate such a record is created in Wix although a contact for it exists — Wix's duplicate rule
catches that for e-mails, nothing catches it for phones — and records of the same key later land
in review as "ambiguous".

The rule: a batch's PowerOffice changes are handled only when, on every Wix change-topic
partition, the group has handled every message whose Kafka timestamp is at most the newest
PowerOffice change's timestamp (both are stamped by the same extractor process at ``send``, so one
clock orders them). "Handled" is the mapper's tracking row (PostgreSQL, the truth — it covers every
replica's work) or, for a partition with no row yet, the partition's log start (the group reads
from the earliest offset), raised by the Wix messages of the batch itself (the loop handles those
first, in the same transaction). Otherwise the PowerOffice messages are held: their partitions are
rewound to the first held offset and paused until the Wix partitions are caught up; the batch's
Wix changes and outcomes are handled meanwhile. Holding never skips input: held messages are not
handled, their offsets not committed, and a rebalance simply hands them out again (the check runs
on every batch, pausing is only an optimisation).

The pure half (``required_offsets``, ``handled_offsets``, ``behind``, ``rewind_points``) is
separate from ``WixFirstGate``, which talks to the Kafka consumer and reads tracking rows through
a callable.

Imports: kafka-python and the core errors only (no PostgreSQL driver, no mapper domain).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.core.errors import TransportError

log = logging.getLogger("tether.mapper.gate")

Position = tuple[str, int]


# ------------------------------------------------------------------------------------------------
# Pure rules
# ------------------------------------------------------------------------------------------------


def required_offsets(
    first_after: Mapping[Position, int | None], end: Mapping[Position, int]
) -> dict[Position, int]:
    """Per Wix partition, the offset the group must have handled: the first message stamped
    after the newest PowerOffice change (``first_after``), or the partition's end when no
    message is (``None``: every message there is older)."""
    return {
        position: (offset if offset is not None else end[position])
        for position, offset in first_after.items()
    }


def handled_offsets(
    partitions: Iterable[Position],
    tracked: Mapping[Position, int],
    log_start: Mapping[Position, int],
    batch: Iterable[Any],
) -> dict[Position, int]:
    """Per Wix partition, the first offset not yet handled: the tracking row (else the log
    start), raised past the batch's own messages of that partition."""
    handled = {p: tracked.get(p, log_start.get(p, 0)) for p in partitions}
    for record in batch:
        position = (record.topic, record.partition)
        if position in handled:
            handled[position] = max(handled[position], record.offset + 1)
    return handled


def behind(
    required: Mapping[Position, int], handled: Mapping[Position, int]
) -> dict[Position, int]:
    """The Wix partitions still short of ``required``, with how many messages they lack."""
    return {
        p: offset - handled.get(p, 0)
        for p, offset in required.items()
        if handled.get(p, 0) < offset
    }


def rewind_points(held: Iterable[Any]) -> dict[Position, int]:
    """The first held offset per partition (where the consumer must read again)."""
    points: dict[Position, int] = {}
    for record in held:
        position = (record.topic, record.partition)
        points[position] = min(points.get(position, record.offset), record.offset)
    return points


# ------------------------------------------------------------------------------------------------
# The gate
# ------------------------------------------------------------------------------------------------


class WixFirstGate:
    """Admits a polled batch's PowerOffice changes only when the Wix changes before them are in.

    ``tracked()`` returns the group's tracking rows ``{(topic, partition): next offset}`` (or
    raises ``TransportError``);
    ``on_hold(held_messages)`` / ``on_release()`` feed the metrics."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        wix_topics: Iterable[str],
        gated_topics: Iterable[str],
        tracked: Callable[[], Mapping[Position, int]],
        on_hold: Callable[[int], None] = lambda _n: None,
        on_release: Callable[[], None] = lambda: None,
    ) -> None:
        self._consumer = consumer
        self._wix_topics = sorted(set(wix_topics))
        self._gated = frozenset(gated_topics)
        self._tracked = tracked
        self._on_hold = on_hold
        self._on_release = on_release
        self._required: dict[Position, int] = {}
        self._paused: set[TopicPartition] = set()

    @property
    def holding(self) -> bool:
        return bool(self._paused)

    def release_if_caught_up(self) -> None:
        """Resume the paused PowerOffice partitions once the Wix partitions reached the mark."""
        if not self._paused:
            return
        try:
            rows = self._tracked()
            handled = handled_offsets(
                self._required, rows, self._log_start(self._required, rows), ()
            )
        except (KafkaError, TransportError) as exc:
            log.warning("wix-first check failed (%s): still holding", type(exc).__name__)
            return
        if behind(self._required, handled):
            return
        assigned = self._consumer.assignment()
        resumable = [tp for tp in self._paused if tp in assigned]
        if resumable:
            self._consumer.resume(*resumable)
        self._paused.clear()
        self._required = {}
        self._on_release()

    def admit(self, records: Sequence[Any]) -> list[Any]:
        """The records to handle now; the gated ones that must wait are rewound and paused."""
        gated = [r for r in records if r.topic in self._gated]
        if not gated:
            return list(records)
        others = [r for r in records if r.topic not in self._gated]
        try:
            required = self._required_for(max(r.timestamp for r in gated))
            rows = self._tracked()
            handled = handled_offsets(required, rows, self._log_start(required, rows), others)
        except (KafkaError, TransportError) as exc:
            # Cannot tell: handle nothing gated this round (rewound, not paused), retry next poll.
            log.warning("wix-first check failed (%s): PowerOffice changes wait", type(exc).__name__)
            self._rewind(gated, pause=False)
            return others
        missing = behind(required, handled)
        if not missing:
            return list(records)
        log.info(
            "holding %d PowerOffice changes until %d older Wix changes are handled",
            len(gated),
            sum(missing.values()),
        )
        self._required = {p: max(o, self._required.get(p, 0)) for p, o in required.items()}
        self._rewind(gated, pause=True)
        self._on_hold(len(gated))
        return others

    # -- I/O helpers ---------------------------------------------------------------------------

    def _partitions(self) -> list[TopicPartition]:
        partitions: list[TopicPartition] = []
        for topic in self._wix_topics:
            ids = self._consumer.partitions_for_topic(topic) or set()
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        return partitions

    def _required_for(self, newest_ms: int) -> dict[Position, int]:
        partitions = self._partitions()
        if not partitions:
            return {}
        # +1: messages stamped in the same millisecond as the newest change count as older.
        found = self._consumer.offsets_for_times(dict.fromkeys(partitions, newest_ms + 1))
        first_after = {
            (tp.topic, tp.partition): (hit.offset if hit is not None else None)
            for tp, hit in found.items()
        }
        unbounded = [tp for tp, hit in found.items() if hit is None]
        end = self._consumer.end_offsets(unbounded) if unbounded else {}
        return required_offsets(first_after, {(tp.topic, tp.partition): o for tp, o in end.items()})

    def _log_start(
        self, partitions: Iterable[Position], tracked: Mapping[Position, int]
    ) -> dict[Position, int]:
        """Log start offsets, fetched only for partitions without a tracking row."""
        untracked = [TopicPartition(t, p) for t, p in partitions if (t, p) not in tracked]
        if not untracked:
            return {}
        start = self._consumer.beginning_offsets(untracked)
        return {(tp.topic, tp.partition): offset for tp, offset in start.items()}

    def _rewind(self, held: Sequence[Any], *, pause: bool) -> None:
        for (topic, partition), offset in rewind_points(held).items():
            tp = TopicPartition(topic, partition)
            self._consumer.seek(tp, offset)
            if pause and tp not in self._paused:
                self._consumer.pause(tp)
                self._paused.add(tp)
