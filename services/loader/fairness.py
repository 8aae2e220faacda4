"""Fair across tenants, in order per link: which command runs next, which is read now (pure).

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

``ReadShares`` bounds what one tenant takes of the commands read but not finished, so the
others' commands behind its backlog are read too (its commands are passed over and read again).

Imports: standard library only (imports no I/O library).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

J = TypeVar("J")
P = TypeVar("P", bound=Hashable)


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


@dataclass
class _Passed:
    """What was passed over on one partition since it was last read again."""

    first: int
    tenants: set[str] = field(default_factory=set)


class ReadShares(Generic[P]):
    """How much of the loader's read buffer one tenant may take; what to read again later.

    Commands share partitions (keyed by link), so the only way to read another tenant's commands
    behind a tenant's backlog is to pass over that backlog and read it again later:

    - ``take(partition, tenant, offset)``: a tenant with ``cap`` commands taken and not finished
      has its next commands **passed over** (False): not taken (their offsets are not committed
      past), and their partition is to be read again from the first one passed over. Once one of
      a tenant's commands is passed over on a partition, its later ones there are too, until
      that partition is read again: a link's commands are on one partition, so none overtakes
      another.
    - ``finished(tenant)``: one of its taken commands is done.
    - ``due()``: the partitions to read again now (every tenant passed over there is down to
      half its cap), with the offset to read from; they are forgotten here.
    """

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("a tenant's share must be at least 1")
        self.cap = cap
        self._taken: dict[str, int] = {}
        self._passed: dict[P, _Passed] = {}

    def take(self, partition: P, tenant: str, offset: int) -> bool:
        passed = self._passed.get(partition)
        passed_here = passed is not None and tenant in passed.tenants
        if not passed_here and self._taken.get(tenant, 0) < self.cap:
            self._taken[tenant] = self._taken.get(tenant, 0) + 1
            return True
        if passed is None:
            passed = self._passed[partition] = _Passed(offset)
        passed.first = min(passed.first, offset)
        passed.tenants.add(tenant)
        return False

    def finished(self, tenant: str) -> None:
        left = self._taken.get(tenant, 0) - 1
        if left > 0:
            self._taken[tenant] = left
        else:
            self._taken.pop(tenant, None)

    def taken(self, tenant: str) -> int:
        return self._taken.get(tenant, 0)

    def due(self) -> dict[P, int]:
        ready = {
            partition: passed.first
            for partition, passed in self._passed.items()
            if all(self._taken.get(t, 0) <= self.cap // 2 for t in passed.tenants)
        }
        for partition in ready:
            del self._passed[partition]
        return ready

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions no longer ours: whoever owns them reads from their committed offset."""
        for partition in partitions:
            self._passed.pop(partition, None)

    def clear(self) -> None:
        self._passed.clear()
