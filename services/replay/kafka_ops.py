"""The Kafka side of replay: partitions, offsets, consumer-group state and offset resets.

Everything goes through the admin API (``kafka-python``'s ``KafkaAdminClient``) except reading a
range of messages, which uses a group-less consumer (``assign`` + ``seek``: it commits nothing
and joins no group). Offsets are reset with ``alter_group_offsets`` — an OffsetCommit on behalf of
the group that the coordinator accepts only while the group has no members; the tool checks the
membership first and refuses an active group itself.

An admin call that fails with a *retriable* Kafka error (``CoordinatorNotAvailable`` while a
fresh cluster creates ``__consumer_offsets``, ``CoordinatorLoadInProgress``, ``NotCoordinator``,
a leader election...) is retried with capped exponential back-off for up to
``ADMIN_RETRY_SECONDS``; any other error, or one that outlasts the budget, is a
``TransportError``.

Imports: kafka-python, tenacity and the core kafka/settings/errors modules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kafka import TopicPartition
from kafka.admin import OffsetSpec, OffsetTimestamp
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from services.core.errors import TetherError, TransportError
from services.core.kafka import make_admin, make_consumer
from services.core.settings import TetherSettings

TP = tuple[str, int]

#: How long an admin call keeps retrying a retriable Kafka error before it is a TransportError.
ADMIN_RETRY_SECONDS = 30.0

#: Group states in which nobody consumes: offsets may be reset.
INACTIVE_STATES = frozenset({"Empty", "Dead"})


class ReplayRefusedError(TetherError):
    """The replay cannot run now (the group is active, a topic is missing, a reset failed)."""


class KafkaOps:
    def __init__(self, settings: TetherSettings) -> None:
        self.settings = settings
        self.admin: Any = make_admin(settings)

    def close(self) -> None:
        self.admin.close()

    # -- topology and offsets ---------------------------------------------------------------

    def partitions(self, topics: Iterable[str]) -> list[TP]:
        """Every partition of ``topics``; a missing topic is refused (nothing is auto-created)."""
        wanted = list(topics)
        existing = set(self._call(self.admin.list_topics))
        missing = [t for t in wanted if t not in existing]
        if missing:
            raise ReplayRefusedError(f"topics do not exist: {missing}")
        described = self._call(self.admin.describe_topics, wanted)
        return sorted(
            (str(topic["name"]), int(p["partition_index"]))
            for topic in described
            for p in topic["partitions"]
        )

    def ranges(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        """``(earliest retained offset, end offset)`` per partition."""
        parts = [TopicPartition(t, p) for t, p in tps]
        if not parts:
            return {}
        earliest = self._call(
            self.admin.list_partition_offsets, dict.fromkeys(parts, OffsetSpec.EARLIEST)
        )
        latest = self._call(
            self.admin.list_partition_offsets, dict.fromkeys(parts, OffsetSpec.LATEST)
        )
        return {
            (tp.topic, tp.partition): (int(earliest[tp].offset), int(latest[tp].offset))
            for tp in parts
        }

    def offsets_for_time(self, tps: Iterable[TP], timestamp_ms: int) -> dict[TP, int]:
        """The first offset at or after ``timestamp_ms`` per partition (the end when none)."""
        parts = [TopicPartition(t, p) for t, p in tps]
        if not parts:
            return {}
        found = self._call(
            self.admin.list_partition_offsets,
            {tp: OffsetTimestamp(timestamp_ms) for tp in parts},
        )
        ends = self.ranges([(tp.topic, tp.partition) for tp in parts])
        result = {}
        for tp in parts:
            offset = int(found[tp].offset)
            key = (tp.topic, tp.partition)
            result[key] = offset if offset >= 0 else ends[key][1]
        return result

    def committed(self, group: str) -> dict[TP, int]:
        offsets = self._call(self.admin.list_group_offsets, {group: None}).get(group, {})
        return {
            (tp.topic, tp.partition): int(meta.offset)
            for tp, meta in offsets.items()
            if meta is not None and meta.offset >= 0
        }

    def group_state(self, group: str) -> tuple[str, int]:
        """``(state, number of members)`` of a consumer group (``Dead``: it does not exist)."""
        info = self._call(self.admin.describe_groups, [group]).get(group, {})
        return str(info.get("group_state") or "Dead"), len(info.get("members") or [])

    def reset(self, group: str, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` for ``group``; refused unless the group has no members."""
        state, members = self.group_state(group)
        if members or state not in INACTIVE_STATES:
            raise ReplayRefusedError(
                f"consumer group {group} is active ({state}, {members} member(s)): stop the "
                "stage (scale it to 0) and wait until the group is Empty"
            )
        if not offsets:
            return
        request = {
            TopicPartition(t, p): OffsetAndMetadata(o, "tether replay", None)
            for (t, p), o in offsets.items()
        }
        results = self._call(self.admin.alter_group_offsets, group, request)
        failed = {
            f"{tp.topic}/{tp.partition}": err.__name__
            for tp, err in results.items()
            if err.__name__ != "NoError"
        }
        if failed:
            raise ReplayRefusedError(f"offset reset of group {group} failed: {failed}")

    # -- reading a range ----------------------------------------------------------------------

    def read(self, ranges: Mapping[TP, tuple[int, int]], timeout_s: float = 60.0) -> Iterator[Any]:
        """The records in ``[start, end)`` of each partition (group-less, commits nothing)."""
        todo = {TopicPartition(t, p): (s, e) for (t, p), (s, e) in ranges.items() if e > s}
        if not todo:
            return
        # No group: joins none, commits nothing (make_consumer raises TransportError).
        consumer = make_consumer(
            self.settings, None, client_id=f"{self.settings.kafka_client_id_prefix}-replay-reader"
        )
        try:
            consumer.assign(list(todo))
            for tp, (start, _) in todo.items():
                consumer.seek(tp, start)
            deadline = time.monotonic() + timeout_s
            while todo:
                if time.monotonic() > deadline:
                    raise TransportError(f"reading the replay range timed out: {sorted(todo)}")
                batches = consumer.poll(timeout_ms=500)
                for tp, records in batches.items():
                    end = todo.get(tp, (0, -1))[1]
                    for record in records:
                        if record.offset < end:
                            yield record
                for tp in list(todo):
                    if consumer.position(tp) >= todo[tp][1]:
                        del todo[tp]
                        consumer.pause(tp)
                if batches:
                    deadline = time.monotonic() + timeout_s
        finally:
            consumer.close()

    @staticmethod
    def _call(method: Any, *args: Any, retry_seconds: float = ADMIN_RETRY_SECONDS) -> Any:
        retrying = Retrying(
            retry=retry_if_exception(
                lambda exc: isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
            ),
            stop=stop_after_delay(retry_seconds),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            reraise=True,
        )
        try:
            return retrying(method, *args)
        except KafkaError as exc:
            raise TransportError(f"Kafka admin call failed: {type(exc).__name__}") from exc
