"""A small pool of worker threads over a ``FairQueue``: links in order, tenants served fairly.

The APIs are the bottleneck, so commands of different links run concurrently; commands of one
link must not overtake each other. ``KeyedWorkers.submit(key, job, tenant)`` queues a job;
any idle worker takes the next one ``fairness.FairQueue`` gives (one link's jobs one at a time
and in order, tenants round-robin, at most ``max_running_per_tenant`` of a tenant's jobs at
once, tenants ``runnable`` says no to skipped). A slow tenant therefore never holds a worker
another tenant's job is queued behind: it holds at most its cap of workers.

``runnable`` may change its answer without the pool being told (a breaker's cool-down ends);
idle workers ask again every ``recheck_seconds``, and ``wake()`` makes them ask now (a tenant
resumed). On ``close`` every queued job is handed out regardless of ``runnable`` (the handler
knows the loader is stopping and returns at once).

Imports: standard library and ``fairness``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from services.loader.fairness import Claim, FairQueue

J = TypeVar("J")

log = logging.getLogger("tether.loader.workers")


def _always(_tenant: str) -> bool:
    return True


class KeyedWorkers(Generic[J]):
    def __init__(
        self,
        count: int,
        handle: Callable[[J], None],
        name: str = "worker",
        *,
        runnable: Callable[[str], bool] = _always,
        max_running_per_tenant: int | None = None,
        recheck_seconds: float = 0.25,
    ) -> None:
        self._queue: FairQueue[J] = FairQueue(max_running_per_tenant or count)
        self._handle = handle
        self._runnable = runnable
        self._recheck = recheck_seconds
        self._changed = threading.Condition()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def count(self) -> int:
        return len(self._threads)

    def submit(self, key: str, job: J, tenant: str = "") -> None:
        with self._changed:
            self._queue.push(tenant, key, job)
            self._changed.notify()

    def wake(self) -> None:
        """Ask ``runnable`` again now (a held tenant may run)."""
        with self._changed:
            self._changed.notify_all()

    def load(self) -> dict[str, tuple[int, int]]:
        """(queued, running) jobs by tenant."""
        with self._changed:
            queue = self._queue
            return {t: (queue.queued(t), queue.running(t)) for t in queue.tenants()}

    def close(self, timeout: float = 5.0) -> None:
        """Let every worker finish the queue, then stop (daemon threads: a stuck one is left)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _next(self) -> Claim[J] | None:
        """The next job for this worker; None once closing with nothing queued."""
        with self._changed:
            while True:
                claim = self._queue.pop(_always if self._closing else self._runnable)
                if claim is not None:
                    return claim
                if self._closing and len(self._queue) == 0:
                    return None
                self._changed.wait(self._recheck)

    def _run(self) -> None:
        while True:
            claim = self._next()
            if claim is None:
                return
            try:
                self._handle(claim.job)
            except Exception:  # the handler reports its own errors; never lose the worker
                log.exception("worker job failed")
            finally:
                with self._changed:
                    self._queue.done(claim)
                    # The link's next job is ready, or the tenant is under its cap again.
                    self._changed.notify_all()
