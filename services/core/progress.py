"""Stall detection: per owned partition, is the consumer still making progress?

A consuming service can look healthy — its loop beats, Kafka and PostgreSQL answer — while one
partition does not move: paused and never resumed, its fetch parked in the client library, a hold
that never ends. Consumer lag alone does not tell that apart from a busy backlog. This module
keeps, per ``(topic, partition)`` the service owns, the position (next offset to handle), the end
offset, and when the position last advanced; a partition is **stalled** when it has lag
(``end > position``) and its position has not advanced for ``stall_after_seconds``. A partition
without lag is never stalled (and its clock restarts, so the first message after a quiet spell
is not "stalled" at once); a position that moves back (a rewind, a re-assignment from the
committed offset) is not an advance.

``ProgressTracker`` is pure: it is fed positions, end offsets and the time, and answers which
partitions are stalled and which stall episodes began or ended with this observation (the caller
logs each once). The Kafka side (reading positions and end offsets from a consumer, exporting the
gauges) is ``services.core.kafka.ConsumerLagExporter``.

Imports: standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

Position = tuple[str, int]


@dataclass
class PartitionProgress:
    """One owned partition: ``position`` (next offset to handle), ``end`` (log end offset),
    ``advanced_at`` (clock time of the last advance, or of the last moment without lag)."""

    position: int
    end: int
    advanced_at: float
    stalled: bool = False

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)


@dataclass(frozen=True)
class Observation:
    """What one ``observe`` changed: stall episodes that began and ended."""

    began: list[Position] = field(default_factory=list)
    ended: list[Position] = field(default_factory=list)


class ProgressTracker:
    """Per-partition progress and stalls of one consumer (thread-safe reads for ``/readyz``)."""

    def __init__(self, stall_after_seconds: float) -> None:
        self.stall_after_seconds = stall_after_seconds
        self._partitions: dict[Position, PartitionProgress] = {}
        self._lock = threading.Lock()

    def observe(
        self, positions: Mapping[Position, int], ends: Mapping[Position, int], now: float
    ) -> Observation:
        """Record the positions and end offsets of the partitions owned now (a partition left
        out is no longer owned and is forgotten; one without an end offset keeps its last)."""
        began: list[Position] = []
        ended: list[Position] = []
        with self._lock:
            for gone in set(self._partitions) - set(positions):
                if self._partitions.pop(gone).stalled:
                    ended.append(gone)
            for partition, position in positions.items():
                current = self._partitions.get(partition)
                end = ends.get(partition, current.end if current is not None else position)
                if current is None:
                    self._partitions[partition] = PartitionProgress(position, end, now)
                    continue
                if position > current.position or end <= position:
                    current.advanced_at = now  # moved on, or nothing to do
                current.position = position
                current.end = max(end, position)
                stalled = current.lag > 0 and now - current.advanced_at >= self.stall_after_seconds
                if stalled and not current.stalled:
                    began.append(partition)
                elif current.stalled and not stalled:
                    ended.append(partition)
                current.stalled = stalled
        return Observation(sorted(began), sorted(ended))

    def stalled(self) -> list[Position]:
        """The owned partitions stalled as of the last observation."""
        with self._lock:
            return sorted(p for p, progress in self._partitions.items() if progress.stalled)

    def snapshot(self) -> dict[Position, PartitionProgress]:
        """A copy of every owned partition's progress."""
        with self._lock:
            return {
                p: PartitionProgress(s.position, s.end, s.advanced_at, s.stalled)
                for p, s in self._partitions.items()
            }

    def healthy(self) -> bool:
        """The readiness check: no owned partition is stalled."""
        return not self.stalled()
