"""Which offsets may be committed while commands finish out of order.

Commands of different links run concurrently, so a later offset of a partition can finish before
an earlier one. The rule: commit, per partition, only up to the **lowest offset that has no
outcome yet** (or one past the highest offset seen when everything is done). A command without
an outcome is therefore always re-delivered after a crash or a rebalance.

``OffsetBook.add`` returns a ``Ticket`` (partition, generation, offset); ``done(ticket)`` marks
it. ``drop`` forgets revoked partitions: tickets of an older generation are ignored afterwards,
so a command still finishing for a partition this process lost can never move its offsets.

Pure module: it imports no I/O library (standard library only). Not thread-safe: the service
loop guards it with a lock (the rebalance listener may call ``drop`` from Kafka's IO thread).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass(frozen=True)
class Ticket(Generic[P]):
    partition: P
    generation: int
    offset: int


@dataclass
class _Partition:
    generation: int
    pending: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None

    def committable(self) -> int | None:
        while self.pending and self.pending[0] in self.finished:
            self.finished.discard(self.pending.popleft())
        if self.pending:
            return self.pending[0]
        return self.next_offset


class OffsetBook(Generic[P]):
    """Per-partition bookkeeping of consumed offsets and the ones with an outcome."""

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}
        self._generation = 0

    def add(self, partition: P, offset: int) -> Ticket[P]:
        """Record a consumed offset (offsets of one partition arrive in increasing order)."""
        state = self._partitions.get(partition)
        if state is None:
            self._generation += 1
            state = self._partitions[partition] = _Partition(self._generation)
        if state.next_offset is not None and offset < state.next_offset:
            # Re-delivered below what we have seen (a seek): start this partition afresh.
            self._generation += 1
            state = self._partitions[partition] = _Partition(self._generation)
        state.pending.append(offset)
        state.next_offset = offset + 1
        return Ticket(partition, state.generation, offset)

    def done(self, ticket: Ticket[P]) -> None:
        """The command at ``ticket`` has its outcome (or needs none)."""
        state = self._partitions.get(ticket.partition)
        if state is None or state.generation != ticket.generation:
            return
        state.finished.add(ticket.offset)

    def current(self, ticket: Ticket[P]) -> bool:
        """Whether ``ticket``'s partition is still this consumer's, since it was consumed (not
        dropped, cleared or re-read from below since)."""
        state = self._partitions.get(ticket.partition)
        return state is not None and state.generation == ticket.generation

    def committable(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """Offsets to commit now (only those that moved since ``committed``)."""
        wanted = set(partitions) if partitions is not None else None
        out: dict[P, int] = {}
        for partition, state in self._partitions.items():
            if wanted is not None and partition not in wanted:
                continue
            offset = state.committable()
            if offset is not None and offset != state.committed:
                out[partition] = offset
        return out

    def committed(self, offsets: dict[P, int]) -> None:
        """The broker accepted these offsets."""
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    def drop(self, partitions: Iterable[P]) -> None:
        """Forget partitions this consumer no longer owns."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    def clear(self) -> None:
        """Forget every partition (generations keep counting: older tickets stay ignored)."""
        self._partitions.clear()

    def outstanding(self) -> int:
        """Offsets consumed and not yet done, over all partitions."""
        return sum(len(s.pending) - len(s.finished) for s in self._partitions.values())
