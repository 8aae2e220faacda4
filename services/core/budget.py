"""Client-side API budgets: a blocking rate limiter per (system, tenant, share).

PowerOffice Go allows 10 requests/second per subscription key and Wix 200 requests/minute per app
instance; the extractor and the loader each get a configured share of those. Every HTTP client
acquires one permit per request from its ``ApiBudget`` *before* sending, so the API's own 429 is a
rare event rather than the control loop. The limiter itself is ``pyrate_limiter`` (a well-kept
library); this module only adds the accounting that the metrics export (permits used, time spent
waiting) and a "lifted" mode for benchmarks.

Imports: standard library and pyrate_limiter only (pure of network I/O).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pyrate_limiter import Duration, Limiter, Rate


@dataclass
class ApiBudget:
    """A blocking limiter allowing ``requests`` per ``per_seconds`` (``requests <= 0``: unlimited).

    ``acquire()`` blocks until a permit is free and returns the seconds it waited.
    """

    name: str
    requests: int
    per_seconds: float = 1.0
    acquired: int = field(default=0, init=False)
    waited_seconds: float = field(default=0.0, init=False)
    throttled_by_api: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _limiter: Limiter | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.requests > 0:
            interval_ms = int(self.per_seconds * Duration.SECOND)
            # buffer_ms is how long the limiter sleeps between checks while blocking.
            self._limiter = Limiter(Rate(self.requests, interval_ms), buffer_ms=5)

    @property
    def limited(self) -> bool:
        return self._limiter is not None

    @property
    def rate_per_second(self) -> float:
        return self.requests / self.per_seconds if self.requests > 0 else float("inf")

    def acquire(self) -> float:
        started = time.monotonic()
        if self._limiter is not None:
            self._limiter.try_acquire(self.name, blocking=True)
        waited = time.monotonic() - started
        with self._lock:
            self.acquired += 1
            self.waited_seconds += waited
        return waited

    def note_throttled(self) -> None:
        """Record that the API answered 429 despite the client-side budget."""
        with self._lock:
            self.throttled_by_api += 1
