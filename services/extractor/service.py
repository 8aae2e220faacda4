"""The extractor service: the generic pieces put together per resource, and the service loop.

Per resource of every enabled system (``systems.wire``: the connectors, clients and budgets) it
builds a :class:`~services.extractor.poller.Poller` over the resource's ``SourceStream`` and a
:class:`~services.extractor.reconciler.Reconciler`; per system that pushes changes, a
:class:`~services.extractor.webhook.PushReceiver` on its route; per resource whose descriptor has
a ``parent_role``, the :class:`~services.extractor.parents.ParentKinds` of its records.

:class:`Extractor` is built on a ``ServiceContext``. ``start()`` provisions topics (idempotent),
loads the cursors and rebuilds the known set from the changes topics, then marks the service ready
(``/readyz``; the webhook receiver answers 503 before). ``run(runtime)`` is the service loop: it
runs every poller whose interval elapsed (each cycle pages, and per page produces -> waits for the
acks -> saves the cursor), then every due reconciliation, and sleeps until the next is due. A stop
request (SIGTERM) ends a cycle after its current page; nothing is lost because the cursor only
covers acknowledged pages. A failing cycle is logged, counted and retried at the next interval.
Its steps, :meth:`Extractor.schedule` and :meth:`Extractor.run_due`, are what a replica serving
many tenants (``fleet.py``) runs per tenant on its worker threads; there the process-wide parts
(metrics, budget collector, cursor store, routes) come from the fleet (:class:`SharedParts`).
``poll_all()`` / ``reconcile_all()`` run one round directly (``--once``, tests, benchmarks).

Budgets: each client takes its share of its API's budget (``ApiBudget``; 0 = lifted), exported by
``BudgetCollector``; API calls and statuses are counted through the clients' ``on_request``.

Imports: the connector interface, the core service context and the extractor modules (the
connector packages only through ``systems``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.core.breaker import Breakers, TenantBreaker, tenant_failure
from services.core.connector import Client, PushSource
from services.core.deadletters import DeadLetterWriter, reason_of
from services.core.errors import ConfigurationError
from services.core.kafka import provision_topics, retry_while_unreachable
from services.core.metrics import BudgetCollector
from services.core.runtime import ServiceRuntime
from services.core.service import ServiceContext
from services.extractor import systems
from services.extractor.bootstrap import rebuild_known
from services.extractor.changes import ChangeMaker
from services.extractor.cursors import CursorStore
from services.extractor.dedup import EventDeduplicator
from services.extractor.emitter import Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.parents import ParentKinds, parent_lookup
from services.extractor.poller import Poller
from services.extractor.reconciler import Reconciler
from services.extractor.reconciliation import BreakerLimits
from services.extractor.settings import ExtractorSettings
from services.extractor.webhook import PushReceiver

log = logging.getLogger("tether.extractor")

DAY_SECONDS = 86_400.0


@dataclass
class Task:
    """One scheduled task of the service loop: a resource's poll or reconciliation."""

    name: str
    interval: float
    due: float
    action: Callable[[], object]
    labels: tuple[str, str]
    kind: str  # poll | reconcile
    failures: int = field(default=0)


def next_due(started: float, interval: float, now: float) -> float:
    """When a task that started at ``started`` runs next: one ``interval`` after it started (a
    period counted from the end would add the cycle's duration to every change's wait), or
    ``now`` if the cycle took longer than that (no burst of missed cycles)."""
    return max(started + interval, now)


@dataclass
class SharedParts:
    """What an extractor serving many tenants (``fleet.py``) builds once per process and gives
    each tenant's :class:`Extractor`: the tenant's view of the metrics (its label bound), the
    process's budget collector (the tenant's budgets are added to it), the one cursor store,
    and known sets to keep (a tenant whose registration changed keeps what it emitted)."""

    metrics: ExtractorMetrics
    budgets: BudgetCollector
    cursors: CursorStore
    known: Mapping[tuple[str, str], KnownSet] = field(default_factory=dict)
    #: The process's per-(tenant, system) circuit breakers (``services/core/breaker.py``).
    breakers: Breakers | None = None


class Extractor:
    """One tenant's extraction: its pollers, reconcilers, push receivers, known sets, budgets.

    Alone (``shared`` None, the single ``TETHER_TENANT``) it owns the process's extractor parts:
    metrics, the budget collector, the cursor store, the readiness check and the push routes.
    In a fleet (``shared`` given) those are the fleet's: the push receivers are built but not
    routed (the fleet's router hands them their tenant's deliveries)."""

    def __init__(
        self,
        ctx: ServiceContext,
        settings: ExtractorSettings,
        *,
        clients: Mapping[str, Client] | None = None,
        shared: SharedParts | None = None,
    ) -> None:
        """``clients``: ready-made API clients by system (else built from the settings)."""
        self.ctx = ctx
        self.settings = settings
        self.tenant = settings.tenant
        self.shared = shared
        self.metrics = shared.metrics if shared else ExtractorMetrics(ctx.registry)
        self.ready = False
        self._told_waiting = False
        kept = shared.known if shared else {}
        self.known: dict[tuple[str, str], KnownSet] = {
            (system, resource): kept.get((system, resource)) or KnownSet(system, resource)
            for system, resources in systems.enabled(settings).items()
            for resource in resources
        }
        if not self.known:
            raise ConfigurationError("every system is disabled: nothing to extract")
        self.failing: dict[str, str] = {}
        """Per task name, the error class of its last cycle, while it keeps failing."""

        self.budgets = systems.budgets(settings)
        if shared is None:
            ctx.registry.register(BudgetCollector(list(self.budgets.values())))
            self.cursors = CursorStore(
                ctx.layout.cursors,
                ctx.codec,
                ctx.producer,
                settings,
                dead_letters=ctx.dead_letters,
            )
            self.emitter = Emitter(ctx, self.metrics, self.known)
        else:
            self.cursors = shared.cursors
            self.emitter = Emitter(
                ctx,
                self.metrics,
                self.known,
                tenant=self.tenant,
                dead_letters=DeadLetterWriter(
                    ctx.producer, ctx.codec, ctx.layout, ctx.name, ctx.metrics, self.tenant
                ),
            )
        limits = BreakerLimits(
            settings.reconcile_breaker_max_deletes, settings.reconcile_breaker_max_delete_share
        )
        retention = ctx.layout.retention_days * DAY_SECONDS
        self.pollers: list[Poller] = []
        self.reconcilers: list[Reconciler] = []
        self.intervals: dict[str, float] = {}
        self.clients: dict[str, Client] = {}
        self.receivers: list[PushReceiver] = []
        self.first = systems.snapshot_first(settings)
        wired = systems.wire(settings, self.budgets, ctx.metrics, clients)
        for system in wired:
            self.clients[system.name] = system.client
            self.intervals[system.name] = system.poll_interval
            makers: dict[str, ChangeMaker] = {}
            for resource, stream in system.streams.items():
                known = self.known[(system.name, resource)]
                poller = Poller(
                    system.name,
                    stream,
                    self.cursors,
                    self.emitter,
                    known,
                    self.metrics,
                    tenant=self.tenant,
                    page_size=system.page_size,
                    parents=self._parents(system, resource),
                )
                self.pollers.append(poller)
                makers[resource] = poller.maker
                self.reconcilers.append(
                    Reconciler(
                        poller,
                        known,
                        self.emitter,
                        self.metrics,
                        limits,
                        page_size=settings.reconcile_page_size,
                        retention_seconds=retention,
                    )
                )
            if system.push is not None:
                self._receive(system.push, system.name, makers)
        # Snapshot first: the first system's streams are polled before every other one
        # (``_waits``).
        self.pollers.sort(key=lambda poller: poller.system != self.first)
        if shared is None:
            ctx.runtime.http.add_check("extractor", lambda: self.ready)
        else:  # last: a tenant whose unit could not be built leaves no budget behind
            shared.budgets.budgets = [*shared.budgets.budgets, *self.budgets.values()]
        for poller in self.pollers:
            self.metrics.cursor_lag.labels(poller.system, poller.resource).set_function(
                poller.lag_seconds
            )
        for (system_name, resource), known_set in self.known.items():
            self.metrics.known.labels(system_name, resource).set_function(known_set.live_count)

    @property
    def receiver(self) -> PushReceiver | None:
        """The push receiver (one system pushes today), if a route is served."""
        return self.receivers[0] if self.receivers else None

    def receiver_for(self, path: str) -> PushReceiver | None:
        """The push receiver of the route ``path``, if this tenant's settings serve it."""
        return next((r for r in self.receivers if r.path == path), None)

    def _parents(self, system: systems.System, resource: str) -> ParentKinds | None:
        """The parent kinds of a resource whose descriptor has a ``parent_role``."""
        role = system.resources[resource].parent_role
        if role is None:
            return None
        return ParentKinds(
            self.known[(system.name, role.resource)],
            parent_lookup(system.streams[role.resource], system.name),
            role=role,
            ttl=self.settings.parent_kind_ttl_seconds,
            settle_seconds=self.settings.parent_settle_seconds,
        )

    def _receive(self, source: PushSource, system: str, makers: Mapping[str, ChangeMaker]) -> None:
        """A system's push receiver; alone, served on the public port."""
        receiver = PushReceiver(
            source,
            makers,
            self.emitter,
            {resource: self.known[(system, resource)] for resource in makers},
            EventDeduplicator(self.settings.webhook_dedup_size),
            self.metrics,
            ack_timeout=self.settings.webhook_ack_timeout_seconds,
            ready=lambda: self.ready,
        )
        self.receivers.append(receiver)
        if self.shared is not None:
            return
        public = self.ctx.runtime.public
        if public is None:
            raise ConfigurationError("the extractor has no public port for its webhook")
        public.add_route(
            "POST",
            receiver.path,
            receiver,
            max_body=self.settings.webhook_max_body_bytes,
            on_too_large=lambda: receiver.count("rejected", "too_large"),
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, heartbeat: Callable[[], None] = lambda: None) -> None:
        """Provision topics, load cursors, rebuild the known set; then ready."""
        if self.settings.provision_topics:
            provision_topics(self.settings)
        cursors = self.cursors.load()
        heartbeat()
        events = rebuild_known(
            self.settings,
            self.ctx.codec,
            self.ctx.layout,
            self.tenant,
            self.known,
            {(p.system, p.resource): p.stream.version_order for p in self.pollers},
            heartbeat=heartbeat,
        )
        self.ready = True
        log.info(
            "extractor ready",
            extra={
                "fields": {
                    "cursors": cursors,
                    "change_events_read": events,
                    "known_records": {f"{s}/{r}": len(k) for (s, r), k in self.known.items()},
                    "webhooks": bool(self.receivers),
                }
            },
        )

    def close(self) -> None:
        self.ready = False
        for client in self.clients.values():
            client.close()
        if self.shared is not None:  # the tenant leaves this replica: so do its series
            gone = {id(budget) for budget in self.budgets.values()}
            kept = [b for b in self.shared.budgets.budgets if id(b) not in gone]
            self.shared.budgets.budgets = kept
            for poller in self.pollers:
                self.metrics.cursor_lag.remove(poller.system, poller.resource)
            for system_name, resource in self.known:
                self.metrics.known.remove(system_name, resource)

    # -- one round ----------------------------------------------------------------------------

    def poll_all(
        self, should_stop: Callable[[], bool] = lambda: False, *, raise_errors: bool = True
    ) -> dict[str, int]:
        """One poll cycle of every resource; returns events emitted per ``system/resource``."""
        emitted: dict[str, int] = {}
        for poller in self.pollers:
            if should_stop():
                break
            if self._waits(poller.system):
                continue
            name = f"{poller.system}/{poller.resource}"
            try:
                emitted[name] = self._poll(poller, should_stop, lambda: None)
            except Exception as exc:
                self._failed("poll", (poller.system, poller.resource), exc)
                if raise_errors:
                    raise
        return emitted

    def reconcile_all(self, *, raise_errors: bool = True) -> None:
        for reconciler in self.reconcilers:
            if self._waits(reconciler.labels[0]):
                continue
            try:
                reconciler.run()
            except Exception as exc:
                self._failed("reconcile", reconciler.labels, exc)
                if raise_errors:
                    raise

    def _waits(self, system: str) -> bool:
        """Whether ``system``'s records must wait for the first system's full snapshot.

        The mapper matches records against the hub's records it has seen: a record put on Kafka
        before the hub record it matches would make the mapper create a second one (the hub's
        duplicate rule catches e-mails, nothing catches phones). The first system's pollers run
        first, but a failing cycle (429s, an outage, a crash mid-cycle) must not let the others
        go ahead: they wait until every stream of the first system has read everything once
        (its saved cursor says so, so this holds across restarts too)."""
        if self.first is None or system == self.first:
            return False
        if all(p.covered_until_ns() is not None for p in self.pollers if p.system == self.first):
            self.metrics.waiting_for_snapshot.labels().set(0)
            return False
        if not self._told_waiting:
            log.info(
                "extraction waits for the first full snapshot of %s",
                self.first,
                extra={"fields": {"waits": system, "for": self.first}},
            )
            self._told_waiting = True
        self.metrics.waiting_for_snapshot.labels().set(1)
        return True

    def _poll(
        self, poller: Poller, should_stop: Callable[[], bool], heartbeat: Callable[[], None]
    ) -> int:
        emitted = poller.cycle(should_stop, heartbeat)
        self.metrics.last_poll.labels(poller.system, poller.resource).set(time.time())
        return emitted

    def _failed(self, kind: str, labels: tuple[str, str], exc: BaseException) -> None:
        if kind == "poll":
            self.metrics.poll_errors.labels(*labels, reason_of(exc)).inc()
        log.warning(
            "%s of %s/%s failed: %s",
            kind,
            *labels,
            exc,
            extra={"fields": {"error": reason_of(exc)}},
        )

    # -- the service loop ---------------------------------------------------------------------

    def run(self, runtime: ServiceRuntime) -> None:
        # A start during a broker outage waits for the broker (start is idempotent: provisioning
        # creates only what is missing, cursors and the known set are read again from the top).
        retry_while_unreachable(
            lambda: self.start(runtime.heartbeat), runtime.stopping.is_set, "extractor start-up"
        )
        tasks = self.schedule(runtime.stopping.is_set, runtime.heartbeat)
        while not runtime.stopping.is_set():
            runtime.heartbeat()
            self.run_due(tasks, runtime.stopping.is_set, runtime.heartbeat)
            soonest = min(task.due for task in tasks)
            runtime.stopping.wait(max(0.05, min(soonest - time.monotonic(), 5.0)))
        log.info("extractor stopping: every cursor covers only acknowledged events")

    def schedule(
        self, should_stop: Callable[[], bool], heartbeat: Callable[[], None]
    ) -> list[Task]:
        """The tasks of the service loop: every poller now, every reconciler a little later."""
        now = time.monotonic()
        s = self.settings
        tasks: list[Task] = []
        for poller in self.pollers:
            interval = self.intervals[poller.system]

            def poll(p: Poller = poller) -> int:
                return self._poll(p, should_stop, heartbeat)

            tasks.append(
                Task(
                    f"poll {poller.system}/{poller.resource}",
                    interval,
                    now,
                    poll,
                    (poller.system, poller.resource),
                    "poll",
                )
            )
        first_reconcile = now + min(s.reconcile_interval_seconds, 60.0)
        for reconciler in self.reconcilers:
            tasks.append(
                Task(
                    f"reconcile {reconciler.labels[0]}/{reconciler.labels[1]}",
                    s.reconcile_interval_seconds,
                    first_reconcile,
                    reconciler.run,
                    reconciler.labels,
                    "reconcile",
                )
            )
        return tasks

    def _breaker(self, system: str) -> TenantBreaker | None:
        """This tenant's breaker for ``system`` (serving many tenants only)."""
        if self.shared is None or self.shared.breakers is None:
            return None
        return self.shared.breakers.get(self.tenant, system)

    def run_due(
        self, tasks: list[Task], should_stop: Callable[[], bool], heartbeat: Callable[[], None]
    ) -> None:
        """Run every task that is due, in order, until ``should_stop``. A failing task is
        retried with its own back-off (doubling, at most its interval): one resource's failures
        delay nothing else."""
        for task in tasks:
            if should_stop():
                break
            if time.monotonic() < task.due:
                continue
            if self._waits(task.labels[0]):
                task.due = time.monotonic() + 1.0  # the first snapshot is not complete yet
                continue
            breaker = self._breaker(task.labels[0])
            if breaker is not None and not breaker.allows():
                # The tenant's API keeps failing: no call until the breaker's probe is due.
                task.due = time.monotonic() + max(1.0, breaker.retry_in())
                self.failing[task.name] = "breaker_open"
                continue
            started = time.monotonic()
            try:
                task.action()
                task.failures = 0
                self.failing.pop(task.name, None)
                task.due = next_due(started, task.interval, time.monotonic())
                if breaker is not None:
                    breaker.record_success()
            except Exception as exc:
                self._failed(task.kind, task.labels, exc)
                self.failing[task.name] = reason_of(exc)
                task.failures += 1
                backoff = min(task.interval, 2.0 ** min(task.failures, 6))
                task.due = time.monotonic() + backoff
                reason = tenant_failure(exc)
                if breaker is not None and reason is not None:
                    breaker.record_failure(reason)
            heartbeat()
