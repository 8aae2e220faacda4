"""What only Kafka knows, for the console: dead letters, consumer lag, the last poll per source.

* dead letters: each stage's ``<prefix>.deadletters.<stage>`` topic, read with the replay tool's
  :func:`~services.replay.deadletters.plan_redrive` — by default the letters **not re-driven
  yet** (after the ``<prefix>-redrive-<stage>`` group's position), ``everything=True`` every
  retained one; re-driving uses the same module (:func:`redrive`);
* consumer lag: per stage, the end offsets of the topics it consumes minus its group's committed
  offsets (the mapper's own tracking rows in PostgreSQL are shown by the read model);
* last poll per source: the newest ``updated_at`` of the extractor's cursors (the compacted
  cursors topic) per ``system/resource/stream`` — a cursor advances only after a successful poll.

Reads are slow next to SQL (a group-less consumer per read), so each answer is cached for
``cache_seconds`` (``console_kafka_cache_seconds``); a Kafka outage yields an ``error`` entry
instead of failing the page (cached for the same period). Personal data: dead-letter messages
may quote values — the API shows them to operators only (``services.console.privacy``).

Imports: the core codec/kafka/settings/topics/errors modules and the replay tool's dead-letter,
Kafka and stage helpers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.errors import DecodeError, TetherError
from services.core.settings import TetherSettings
from services.core.topics import STAGES, TopicLayout
from services.replay import deadletters
from services.replay.kafka_ops import KafkaOps
from services.replay.stages import default_group, stage_topics

T = TypeVar("T")

#: At most this many dead letters per stage are held for the list (the newest ones).
MAX_LETTERS = 20_000


@dataclass(frozen=True)
class Letter:
    stage: str
    partition: int
    offset: int
    dead_letter_id: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    error_class: str
    error_message: str
    first_seen: str
    redrivable: bool
    record: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "partition": self.partition,
            "offset": self.offset,
            "dead_letter_id": self.dead_letter_id,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "first_seen": self.first_seen,
            "redrivable": self.redrivable,
            "record": self.record,
        }


def record_of_message(message: str) -> str | None:
    """The ``record: system/resource/id`` part a dead letter's message carries. Pure."""
    for part in message.split(" | "):
        if part.startswith("record: "):
            return part[len("record: ") :].strip() or None
    return None


class TtlCache:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T]) -> T:
        """The cached value of ``key``, else ``load()`` (an exception is not cached: callers
        that want a failure remembered return it as a value — see ``KafkaView._guarded``)."""
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and self.clock() - hit[0] < self.seconds:
                return hit[1]  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            self._values[key] = (self.clock(), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class KafkaView:
    def __init__(
        self,
        settings: TetherSettings,
        codec: AvroCodec,
        layout: TopicLayout,
        *,
        cache_seconds: float = 15.0,
        mapper_group_id: str | None = None,
        ops_factory: Callable[[TetherSettings], KafkaOps] = KafkaOps,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.layout = layout
        self.mapper_group_id = mapper_group_id
        self._ops_factory = ops_factory
        self._cache = TtlCache(cache_seconds)

    def _with_ops(self, work: Callable[[KafkaOps], T]) -> T:
        ops = self._ops_factory(self.settings)
        try:
            return work(ops)
        finally:
            ops.close()

    # -- dead letters -------------------------------------------------------------------------

    def letters(self, stage: str, *, everything: bool = False) -> list[Letter]:
        """The stage's dead letters, newest first (see the module docstring)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        return self._cache.get(
            ("letters", stage, everything), lambda: self._read(stage, everything)
        )

    def _read(self, stage: str, everything: bool) -> list[Letter]:
        def work(ops: KafkaOps) -> list[Letter]:
            plan = deadletters.plan_redrive(
                ops, self.codec, self.layout, stage, from_earliest=everything
            )
            letters = [
                Letter(
                    stage=stage,
                    partition=d.partition,
                    offset=d.offset,
                    dead_letter_id=d.dead_letter_id,
                    source_topic=d.source_topic,
                    source_partition=d.source_partition,
                    source_offset=d.source_offset,
                    error_class=d.error_class,
                    error_message=d.error_message,
                    first_seen=d.first_seen,
                    redrivable=d.redrivable,
                    record=record_of_message(d.error_message),
                )
                for d in plan.letters
            ]
            letters.sort(key=lambda d: (d.first_seen, d.partition, d.offset), reverse=True)
            return letters[:MAX_LETTERS]

        return self._with_ops(work)

    def counts(self) -> dict[str, Any]:
        """Per stage: dead letters not re-driven yet, and retained in all."""
        return {
            stage: self._cache.get(("count", stage), _guarded(_bind(self._count, stage)))
            for stage in STAGES
        }

    def _count(self, stage: str) -> dict[str, int]:
        topic = self.layout.deadletters(stage)
        group = f"{self.layout.prefix}-redrive-{stage}"

        def work(ops: KafkaOps) -> dict[str, int]:
            ranges = ops.ranges(ops.partitions([topic]))
            committed = ops.committed(group)
            retained = sum(end - early for early, end in ranges.values())
            pending = sum(
                end - max(committed.get(tp, early), early) for tp, (early, end) in ranges.items()
            )
            return {"not_redriven": max(pending, 0), "retained": max(retained, 0)}

        return self._with_ops(work)

    def redrive(self, stage: str, ids: Sequence[str] = ()) -> int:
        """Re-drive the stage's dead letters not re-driven yet (``ids``: only those). Returns
        how many payloads were produced back to their source topics."""
        if stage not in ("mapper", "loader"):
            raise ValueError("only the mapper's and the loader's dead letters can be re-driven")

        def work(ops: KafkaOps) -> int:
            if not ids:
                plan = deadletters.plan_redrive(ops, self.codec, self.layout, stage)
                return deadletters.redrive(self.settings, ops, plan)
            # A selection does not move the re-drive group's position: the other letters stay
            # "not re-driven yet".
            done = deadletters.redrive_selected(
                self.settings, ops, self.codec, self.layout, stage, list(ids)
            )
            return len(done.redriven)

        try:
            return self._with_ops(work)
        finally:
            self._cache.clear()

    # -- lag and polls ------------------------------------------------------------------------

    def lag(self) -> dict[str, Any]:
        return {
            stage: self._cache.get(("lag", stage), _guarded(_bind(self._lag, stage)))
            for stage in ("mapper", "loader")
        }

    def _lag(self, stage: str) -> dict[str, Any]:
        group = default_group(stage, self.layout.prefix, self.mapper_group_id)
        topics = stage_topics(stage, self.layout)  # the mapper's include operator actions

        def work(ops: KafkaOps) -> dict[str, Any]:
            existing = set(ops.admin.list_topics())
            ranges = ops.ranges(ops.partitions([t for t in topics if t in existing]))
            committed = ops.committed(group)
            per_topic: dict[str, int] = {}
            for tp, (early, end) in ranges.items():
                position = max(committed.get(tp, early), early)
                per_topic[tp[0]] = per_topic.get(tp[0], 0) + max(end - position, 0)
            return {"group": group, "total": sum(per_topic.values()), "by_topic": per_topic}

        return self._with_ops(work)

    def last_polls(self) -> dict[str, Any]:
        return self._cache.get(("polls",), _guarded(self._polls))

    def _polls(self) -> dict[str, Any]:
        topic = self.layout.cursors

        def work(ops: KafkaOps) -> dict[str, Any]:
            if topic not in set(ops.admin.list_topics()):
                return {}
            newest: dict[str, datetime] = {}
            for record in ops.read(ops.ranges(ops.partitions([topic])), timeout_s=20):
                if record.value is None:
                    continue
                try:
                    datum = self.codec.decode(record.value, "Cursor")
                except DecodeError:
                    continue
                key = f"{datum['tenant']}/{datum['system']}/{datum['resource']}/{datum['stream']}"
                at = datum.get("updated_at")
                if isinstance(at, datetime) and (key not in newest or at > newest[key]):
                    newest[key] = at
            return {k: v.isoformat() for k, v in sorted(newest.items())}

        return self._with_ops(work)


def _guarded(load: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``load``, with a Kafka failure turned into ``{"error": class}`` — a value, so that it is
    cached like an answer and an unreachable or unprovisioned Kafka is asked once per period,
    not on every page view."""

    def run() -> dict[str, Any]:
        try:
            return load()
        except (TetherError, KafkaError) as exc:
            return {"error": type(exc).__name__}

    return run


def _bind(function: Callable[[str], T], stage: str) -> Callable[[], T]:
    return lambda: function(stage)
