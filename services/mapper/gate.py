"""Hub first: member changes wait until the hub changes extracted before them are handled.

Matching before creating only works if the mapper has seen the hub records a member record
could match. The extractor puts them on Kafka first (its hub poller runs before the member
pollers and waits for Kafka's acknowledgement page by page), but the mapper reads all
change topics at once and Kafka promises no order *between* topics: after a restart or a
rebalance a poll can return employees while the hub records produced before them are still
unfetched. Without this gate such a record is created in the hub although a hub record for it
exists — the hub's duplicate rule may catch that for e-mails, nothing catches it for phones — and
records of the same key later land in review as "ambiguous".

The hub's change topics are the installed dataflow's (``loop``); the setting that turns the gate
off and the gate's metrics keep their earlier names (``settings``, ``metrics``).

The rule: a batch's member changes are handled only when, on every hub change-topic
partition, the group has handled every message whose Kafka timestamp is at most the newest
member change's timestamp (both are stamped by the same extractor process at ``send``, so one
clock orders them). "Handled" is the mapper's tracking row (PostgreSQL, the truth — it covers every
replica's work), never below the partition's log start (a partition without a row, or whose
older messages retention deleted), raised by the hub messages of the batch itself (the loop handles
those first, in the same transaction). Otherwise the member messages are held: not handled,
not committed, and their partitions are rewound (``seek``) to the first held offset, so the next
polls read them again; the batch's hub changes and outcomes are handled meanwhile.

**Nothing is ever paused.** An earlier version paused the held partitions and resumed them when
the hub partitions caught up. That stranded partitions for good (issue #11): kafka-python 3.0.12
parks the buffered records of a paused partition and, after ``resume``, only un-parks them when its
in-line record slot is empty — which it seldom is once other partitions flowed — while a partition
with parked records is never fetched again (``Fetcher._fetchable_partitions``); on top of that the
paused flag survives a rebalance while the gate's own bookkeeping did not. A rewind without pause
keeps no state in the consumer that can outlive the hold: each poll re-reads the held records and
the rule runs again, on every batch, against PostgreSQL; a rebalance hands the (uncommitted) held
records to whoever owns the partition next, which applies the same rule. The cost is re-fetching
the held records while a hold lasts (the loop idles ``poll_timeout_ms`` when a whole batch was
held). The alternative — member creates held as decisions in PostgreSQL until a hub
watermark passes them — would need a watermark the extractor does not publish yet and a second
decision path in the handler; the rewind keeps one path and is exact.

Kafka requests: none for a batch without member changes; ``offsets_for_times`` and
``end_offsets``/``beginning_offsets`` for the hub partitions only when a batch's newest
member change is newer than the last mark the gate computed (a hold reuses its mark, a
cleared mark lets every older change through without any request or query).

The pure half (``required_offsets``, ``handled_offsets``, ``behind``, ``rewind_points``) is
separate from ``HubFirstGate``, which talks to the Kafka consumer and reads tracking rows through
a callable.

Imports: kafka-python and the core errors only (no PostgreSQL driver, no mapper domain).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    """Per hub partition, the offset the group must have handled: the first message stamped
    after the newest member change (``first_after``), or the partition's end when no
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
    """Per hub partition, the first offset not yet handled: the tracking row, never below the
    log start (no row yet, or retention deleted messages nobody handled: they can never be),
    raised past the batch's own messages of that partition."""
    handled = {p: max(tracked.get(p, 0), log_start.get(p, 0)) for p in partitions}
    for record in batch:
        position = (record.topic, record.partition)
        if position in handled:
            handled[position] = max(handled[position], record.offset + 1)
    return handled


def behind(
    required: Mapping[Position, int], handled: Mapping[Position, int]
) -> dict[Position, int]:
    """The hub partitions still short of ``required``, with how many messages they lack."""
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


@dataclass(frozen=True)
class Mark:
    """What a hold waits for: per hub partition the offset to reach (``required``), computed for
    member changes stamped up to ``newest_ms``, and the log starts seen then."""

    newest_ms: int
    required: dict[Position, int]
    log_start: dict[Position, int]


class HubFirstGate:
    """Admits a polled batch's member changes only when the hub changes before them are in;
    the others are rewound (never paused) and come back with a later poll.

    ``tracked()`` returns the group's tracking rows ``{(topic, partition): next offset}`` (or
    raises ``TransportError``);
    ``on_hold(held_messages, began)`` (``began``: a new hold, not one still in force) /
    ``on_release()`` feed the metrics."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        hub_topics: Iterable[str],
        gated_topics: Iterable[str],
        tracked: Callable[[], Mapping[Position, int]],
        on_hold: Callable[[int, bool], None] = lambda _n, _began: None,
        on_release: Callable[[], None] = lambda: None,
    ) -> None:
        self._consumer = consumer
        self._hub_topics = sorted(set(hub_topics))
        self._gated = frozenset(gated_topics)
        self._tracked = tracked
        self._on_hold = on_hold
        self._on_release = on_release
        self._mark: Mark | None = None
        """The hold in force (None: not holding)."""
        self._cleared_ms = -1
        """Every hub change stamped up to here is known handled: older changes pass at once."""

    @property
    def holding(self) -> bool:
        return self._mark is not None

    def release_if_caught_up(self) -> None:
        """Re-check the hold (once per loop iteration, also when a poll brings nothing): end it
        when the hub partitions reached its mark. Releasing only ends the hold's bookkeeping —
        the held records are re-read by the consumer anyway, nothing to resume."""
        mark = self._mark
        if mark is None:
            return
        try:
            handled = handled_offsets(mark.required, self._tracked(), mark.log_start, ())
        except TransportError as exc:
            log.warning("hub-first check failed (%s): still holding", type(exc).__name__)
            return
        if not behind(mark.required, handled):
            self._release(mark)

    def admit(self, records: Sequence[Any]) -> list[Any]:
        """The records to handle now; the gated ones that must wait are rewound."""
        gated = [r for r in records if r.topic in self._gated]
        if not gated:
            return list(records)
        newest = max(r.timestamp for r in gated)
        if newest <= self._cleared_ms:
            return list(records)
        others = [r for r in records if r.topic not in self._gated]
        try:
            mark = self._mark_for(newest)
            handled = handled_offsets(mark.required, self._tracked(), mark.log_start, others)
        except (KafkaError, TransportError) as exc:
            # Cannot tell: handle nothing gated this round (rewound), retry with the next poll.
            log.warning("hub-first check failed (%s): member changes wait", type(exc).__name__)
            self._rewind(gated)
            return others
        missing = behind(mark.required, handled)
        if not missing:
            self._release(mark)
            return list(records)
        began = self._mark is None
        if began:
            log.info(
                "holding member changes until %d older hub changes are handled",
                sum(missing.values()),
            )
        self._mark = mark
        self._rewind(gated)
        self._on_hold(len(gated), began)
        return others

    # -- helpers -------------------------------------------------------------------------------

    def _release(self, mark: Mark) -> None:
        self._cleared_ms = max(self._cleared_ms, mark.newest_ms)
        if self._mark is not None:
            self._mark = None
            self._on_release()

    def _mark_for(self, newest_ms: int) -> Mark:
        """The hold in force if it covers ``newest_ms`` (no request), else a new mark."""
        if self._mark is not None and newest_ms <= self._mark.newest_ms:
            return self._mark
        partitions = self._partitions()
        if not partitions:
            return Mark(newest_ms, {}, {})
        # +1: messages stamped in the same millisecond as the newest change count as older.
        found = self._consumer.offsets_for_times(dict.fromkeys(partitions, newest_ms + 1))
        first_after = {
            (tp.topic, tp.partition): (hit.offset if hit is not None else None)
            for tp, hit in found.items()
        }
        unbounded = [tp for tp, hit in found.items() if hit is None]
        end = self._consumer.end_offsets(unbounded) if unbounded else {}
        start = self._consumer.beginning_offsets(partitions)
        return Mark(
            newest_ms,
            required_offsets(first_after, {(tp.topic, tp.partition): o for tp, o in end.items()}),
            {(tp.topic, tp.partition): offset for tp, offset in start.items()},
        )

    def _partitions(self) -> list[TopicPartition]:
        partitions: list[TopicPartition] = []
        for topic in self._hub_topics:
            ids = self._consumer.partitions_for_topic(topic) or set()
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        return partitions

    def _rewind(self, held: Sequence[Any]) -> None:
        for (topic, partition), offset in rewind_points(held).items():
            try:
                self._consumer.seek(TopicPartition(topic, partition), offset)
            except (KafkaError, AssertionError, KeyError):
                # Not ours any more (a rebalance): its new owner reads from the committed
                # offset, which is never past a held record.
                log.info("held partition %s-%d no longer assigned", topic, partition)
