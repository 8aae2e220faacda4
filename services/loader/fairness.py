"""Which command runs next: fair across tenants, in order per link (pure: imports no I/O library).

The loader's workers share one ``FairQueue``. Its rules:

- **Per link, in order.** A link's commands run one at a time, in the order they were pushed
  (a link belongs to one tenant, so a tenant's queue keeps them in its per-link FIFO).
- **Round-robin over tenants.** ``pop`` serves the tenants that have a command ready in turn, one
  command each, so a tenant with thousands of queued commands gets one turn like a tenant with
  one.
- **A running cap per tenant.** At most ``max_running_per_tenant`` of a tenant's commands run
  at once: a tenant whose API is slow (or whose commands wait for retries inside a worker) keeps
  at most that many workers, the others serve the other tenants.
- **Held tenants are skipped.** ``pop(runnable)`` serves only tenants ``runnable(tenant)`` says
  may run (the loader holds a paused tenant's commands, and a tenant whose breaker is open); their
  commands stay queued, in order, until it says yes again.

Every operation is O(1) in the queued commands (O(tenants) for ``pop``'s turn).

Imports: standard library only (imports no I/O library).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

J = TypeVar("J")


@dataclass(frozen=True)
class Claim(Generic[J]):
    """A job taken by ``pop``; give it back with ``done(claim)`` once it finished."""

    tenant: str
    link: str
    job: J


@dataclass
class _TenantQueue(Generic[J]):
    links: dict[str, deque[J]] = field(default_factory=dict)
    ready: deque[str] = field(default_factory=deque)
    """Links with a queued job and none running, in the order they became ready."""
    running_links: set[str] = field(default_factory=set)
    queued: int = 0
    running: int = 0


class FairQueue(Generic[J]):
    def __init__(self, max_running_per_tenant: int) -> None:
        if max_running_per_tenant < 1:
            raise ValueError("max_running_per_tenant must be at least 1")
        self.max_running_per_tenant = max_running_per_tenant
        self._tenants: dict[str, _TenantQueue[J]] = {}
        self._turns: deque[str] = deque()
        """Tenants with queued jobs, next turn first (a tenant is here iff it has queued jobs)."""

    def push(self, tenant: str, link: str, job: J) -> None:
        queue = self._tenants.setdefault(tenant, _TenantQueue())
        jobs = queue.links.setdefault(link, deque())
        jobs.append(job)
        if len(jobs) == 1 and link not in queue.running_links:
            queue.ready.append(link)
        queue.queued += 1
        if queue.queued == 1:
            self._turns.append(tenant)

    def pop(self, runnable: Callable[[str], bool] = lambda _tenant: True) -> Claim[J] | None:
        """The next job: the first tenant in turn that may run, is under its cap and has a link
        ready; that tenant's turn then goes to the back. None: nothing may run now."""
        for _ in range(len(self._turns)):
            tenant = self._turns[0]
            self._turns.rotate(-1)
            queue = self._tenants[tenant]
            if not queue.ready or queue.running >= self.max_running_per_tenant:
                continue
            if not runnable(tenant):
                continue
            link = queue.ready.popleft()
            jobs = queue.links[link]
            job = jobs.popleft()
            if not jobs:
                del queue.links[link]
            queue.running_links.add(link)
            queue.running += 1
            queue.queued -= 1
            if queue.queued == 0:
                self._turns.remove(tenant)
            return Claim(tenant, link, job)
        return None

    def done(self, claim: Claim[J]) -> None:
        """A job taken by ``pop`` finished: its link's next job (if any) becomes ready."""
        queue = self._tenants[claim.tenant]
        queue.running_links.discard(claim.link)
        queue.running -= 1
        if claim.link in queue.links:
            queue.ready.append(claim.link)
        if queue.queued == 0 and queue.running == 0:
            del self._tenants[claim.tenant]

    def queued(self, tenant: str) -> int:
        queue = self._tenants.get(tenant)
        return queue.queued if queue is not None else 0

    def running(self, tenant: str) -> int:
        queue = self._tenants.get(tenant)
        return queue.running if queue is not None else 0

    def tenants(self) -> list[str]:
        """Tenants with queued or running jobs."""
        return sorted(self._tenants)

    def __len__(self) -> int:
        """Queued jobs (running ones not counted)."""
        return sum(queue.queued for queue in self._tenants.values())
