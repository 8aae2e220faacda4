"""Push de-duplication by the sender's event id: a bounded LRU of handled ids plus in-flight
tracking.

Pure: imports no I/O library (standard library only); thread-safe (one HTTP thread per delivery).

A sender (a system's webhooks) retries a delivery that was not answered 200 in time and may deliver
an event twice. An id is recorded as *done* only after its change events were acknowledged by
Kafka; a delivery whose id is done is answered 200 without producing anything. A copy arriving
while the first is still being handled waits for it (bounded) instead of producing in parallel;
if the first fails, the copy handles the event itself. The LRU forgets the oldest ids beyond
``capacity``: a copy arriving after that produces again, with the same deterministic event ids
(downstream de-duplicates).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from enum import StrEnum


class Claim(StrEnum):
    NEW = "new"  # the caller handles the event, then calls done() or release()
    DONE = "done"  # already handled: answer 200, produce nothing


class EventDeduplicator:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._done: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._cond = threading.Condition()

    def claim(self, event_id: str, wait_seconds: float = 1.0) -> Claim:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                if event_id in self._done:
                    self._done.move_to_end(event_id)
                    return Claim.DONE
                if event_id not in self._in_flight:
                    self._in_flight.add(event_id)
                    return Claim.NEW
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # The first copy is slow: handle this one too (same deterministic event ids).
                    return Claim.NEW
                self._cond.wait(remaining)

    def done(self, event_id: str) -> None:
        with self._cond:
            self._in_flight.discard(event_id)
            self._done[event_id] = None
            self._done.move_to_end(event_id)
            while len(self._done) > self.capacity:
                self._done.popitem(last=False)
            self._cond.notify_all()

    def release(self, event_id: str) -> None:
        """The handling failed: a retry of the event must handle it again."""
        with self._cond:
            self._in_flight.discard(event_id)
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._done)
