"""A small pool of worker threads keyed so that the jobs of one key run in order.

The APIs are the bottleneck, so commands of different links run concurrently; commands of one
link must not overtake each other. ``KeyedWorkers.submit(key, job)`` puts a job on the queue of
worker ``crc32(key) % count``: one key always lands on the same worker, whose queue is FIFO.

Imports: standard library only.
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Generic, TypeVar

J = TypeVar("J")

log = logging.getLogger("tether.loader.workers")

_STOP = object()


class KeyedWorkers(Generic[J]):
    def __init__(self, count: int, handle: Callable[[J], None], name: str = "worker") -> None:
        self._queues: list[queue.Queue[object]] = [queue.Queue() for _ in range(count)]
        self._handle = handle
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"{name}-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def count(self) -> int:
        return len(self._queues)

    def index_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._queues)

    def submit(self, key: str, job: J) -> None:
        self._queues[self.index_of(key)].put(job)

    def close(self, timeout: float = 5.0) -> None:
        """Let every worker finish its queue, then stop (daemon threads: a stuck one is left)."""
        for q in self._queues:
            q.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _run(self, jobs: queue.Queue[object]) -> None:
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            try:
                self._handle(job)  # type: ignore[arg-type]
            except Exception:  # the handler reports its own errors; never lose the worker
                log.exception("worker job failed")
