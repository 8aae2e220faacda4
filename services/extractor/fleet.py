"""The extractor as one replica of a fleet serving the tenants of the registry.

With ``TETHER_TENANTS_FROM_REGISTRY`` on, every extractor replica runs a :class:`Fleet`. The
replicas share the tenants' work through Kafka's group protocol:

- a consumer in the group ``<prefix>-extractor-tenants`` subscribes to the tenants topic (keyed
  by tenant id, so a tenant lives on one partition). Kafka assigns the partitions to the live
  replicas (cooperative sticky: a rebalance moves only the partitions that change owner). The
  consumer never commits: on assignment it reads its new partitions from the beginning to their
  end (the compacted topic *is* the registry) before it acts, then keeps following them — a
  pause, resume, removal or settings change takes effect without a restart;
- per active tenant on an owned partition, a tenant unit: an :class:`Extractor` built from
  ``settings_for(settings, tenant, credentials.resolve(tenant.credentials_ref))`` over the
  process's shared parts (:class:`SharedParts`: one metrics registry with a ``tenant`` label,
  one budget collector, one cursor store; one producer, codec and HTTP server in the
  ``ServiceContext``). A changed registration rebuilds the unit (its known sets are kept);
- newly assigned tenants start together: the cursors topic is read again for them (their previous
  owner saved meanwhile) and their known sets are rebuilt in ONE pass over the changes topics;
- the tenants' poll and reconcile cycles run on ``tenant_workers`` threads, one cycle of a tenant
  at a time, so a slow or failing tenant holds one worker and never delays the others' turn
  for long; a failing task backs off on its own (``Extractor.run_due``);
- pushes for any tenant reach any replica: each routed push source (``systems.routed_push``) is
  served once by a :class:`~services.extractor.routing.PushRouter` over the whole directory
  (``DirectoryFollower``); a delivery for a tenant run elsewhere is forwarded on
  ``<prefix>.webhooks`` (key = tenant id, the tenants topic's partition count: partition N of both
  has one owner), and the owner hands what is forwarded to it to the tenant's receiver
  (:meth:`Fleet._forwarded`);
- the owner reports each tenant's ``TenantStatus``: onboarding → initial_sync (until every stream
  of the tenant has read everything once) → live; paused; stopped (removed); failing (the error
  classes). The owner is :func:`~services.extractor.tenancy.replica_id`.

**Moving a tenant.** ``on_partitions_revoked`` runs before Kafka gives the partitions to another
replica: the fleet asks each leaving tenant's work to stop after its current page (the cursor only
covers acknowledged pages) and waits for it, so two replicas never poll one tenant at once in
normal operation. The listener is synchronous: while it waits (one page at most) the consumer's
heartbeats pause, so a page must take well under the session timeout (one API call and one Kafka
acknowledgement do); one that overruns it gets this replica dropped from the group, which ends the
same way (its tenants move). A replica that dies loses its tenants after the session timeout; the
new owner resumes from the saved cursors.

**Zombies.** A replica paused longer than its session timeout (a GC pause, a frozen VM) lost its
tenants, yet may still emit the page it was reading. That page repeats what the new owner reads:
the same observation gets the same ``event_id`` (uuid5 of tenant, record, operation and version),
and the mapper ignores a state older than the one it has and turns a repeat of the same state
into no command; the zombie's cursor save may move a cursor back, which costs a re-read (the
known set skips what was emitted), never a gap.

Imports: kafka-python, the core service context and metrics, the tenant registry and model, and the
extractor's own modules.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError

from services.core.breaker import Breakers
from services.core.connector import RoutedPushSource
from services.core.errors import ConfigurationError, DecodeError, TransportError
from services.core.kafka import make_consumer, provision_topics
from services.core.metrics import BreakerCollector, BudgetCollector
from services.core.service import ServiceContext
from services.core.topics import tenant_key
from services.extractor import systems
from services.extractor.bootstrap import rebuild_known_many
from services.extractor.cursors import CursorStore
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.routing import Handler, PushRouter
from services.extractor.service import Extractor, SharedParts, Task
from services.extractor.settings import ExtractorSettings
from services.extractor.tenancy import phase_of, plan_units, replica_id
from services.tenants import credentials
from services.tenants.model import Phase, Tenant, TenantError, TenantStatus, settings_for
from services.tenants.registry import DirectoryFollower, TenantDirectory, TenantRegistry

log = logging.getLogger("tether.extractor.fleet")

TenantLabel = Callable[[str], str]


def own_label(tenant: str) -> str:
    """The tenant label of the metrics: the tenant id itself (tests). ``main`` passes the bounded
    ``TenantLabels(TETHER_METRICS_TENANT_CAP).label``: the first ``cap`` tenants get their own
    value, the others ``_other``."""
    return tenant


def group_id(settings: ExtractorSettings) -> str:
    return f"{settings.topic_prefix}-extractor-tenants"


@dataclass
class Unit:
    """One tenant's work on this replica."""

    registration: Tenant
    extractor: Extractor
    stop: threading.Event
    should_stop: Callable[[], bool]
    """Its stop, or the replica's."""
    tasks: list[Task] = field(default_factory=list)
    running: Future[None] | None = None

    def busy(self) -> bool:
        return self.running is not None and not self.running.done()


class Fleet:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: ExtractorSettings,
        *,
        label: TenantLabel = own_label,
        replica: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.label = label
        self.replica = replica or replica_id(os.environ, socket.gethostname(), os.getpid())
        self.metrics = ExtractorMetrics(ctx.registry, by_tenant=True)
        self.budgets = BudgetCollector([])
        ctx.registry.register(self.budgets)
        # One breaker per (tenant, system): a tenant whose API keeps failing is not called
        # until its probe is due (Extractor.run_due); the others are not slowed.
        self.breakers = Breakers()
        ctx.registry.register(BreakerCollector(self.breakers, label))
        self.cursors = CursorStore(
            ctx.layout.cursors, ctx.codec, ctx.producer, settings, dead_letters=ctx.dead_letters
        )
        self.statuses = TenantRegistry(settings, ctx.codec, producer=ctx.producer)
        self.pool = ThreadPoolExecutor(settings.tenant_workers, thread_name_prefix="tenant")
        self.stopping = threading.Event()
        self.ready = False
        self.units: dict[str, Unit] = {}
        self.registrations: dict[str, Tenant] = {}
        self._partition_of: dict[str, int] = {}
        self._owned: set[int] = set()
        self._assigned: set[TopicPartition] = set()
        self._catching_up: dict[TopicPartition, int] = {}
        self._broken: dict[str, int] = {}
        """Tenants whose unit could not be built, by registration version (retried on change)."""
        self._published: dict[str, tuple[Phase, str, int]] = {}
        self._next_report = 0.0
        self._lock = threading.RLock()
        self._consumer: Any = None
        self._webhooks: Any = None
        self._webhooks_assigned: set[int] = set()
        ctx.runtime.http.add_check("extractor", lambda: self.ready)
        # Pushes for any tenant: every replica follows the whole directory to route them.
        self.directory = TenantDirectory(settings, ctx.codec)
        self.follower: DirectoryFollower | None = None
        self.routes = systems.routed_push(settings)
        for system, source in self.routes:
            self._route(system, source)

    def partitions(self) -> set[int]:
        """The tenants topic's partitions this replica owns."""
        with self._lock:
            return set(self._owned)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Provision topics and join the group (idempotent)."""
        if self.settings.provision_topics:
            provision_topics(self.settings)
        if self._consumer is None:
            timeout_ms = int(self.settings.tenant_session_timeout_seconds * 1000)
            consumer = make_consumer(
                self.settings,
                group_id(self.settings),
                partition_assignment_strategy=(CooperativeStickyAssignor,),
                session_timeout_ms=timeout_ms,
                heartbeat_interval_ms=max(100, timeout_ms // 3),
            )
            consumer.subscribe([self.ctx.layout.tenants], listener=_Listener(self))
            self._consumer = consumer
        if self.routes and self._webhooks is None:
            # Assigned by hand (the partitions of the tenants this replica owns); the group
            # only keeps the offsets of the forwarded pushes handled.
            self._webhooks = make_consumer(self.settings, f"{group_id(self.settings)}-webhooks")
        if self.routes and self.follower is None:
            self.follower = DirectoryFollower(self.directory, DIRECTORY_REFRESH_SECONDS)
            self.follower.start()
        self.ready = True

    def run(self, stopping: threading.Event, heartbeat: Callable[[], None] = lambda: None) -> None:
        """The replica's loop until ``stopping``; then its tenants stop and it leaves the group."""
        try:
            while not stopping.is_set():
                try:
                    if self._consumer is None:
                        self.start()
                    self.step()
                except (TransportError, KafkaError) as exc:
                    log.warning("fleet step failed (%s): retrying", type(exc).__name__)
                    stopping.wait(1.0)
                heartbeat()
        finally:
            self.close()

    def close(self) -> None:
        """Stop every tenant after its current page, then leave the group (the listener is told
        the partitions are revoked: their tenants move to the other replicas at once)."""
        self.stopping.set()
        self.ready = False
        with self._lock:
            leaving = list(self.units)
        self._stop_units(leaving)
        for consumer in (self._consumer, self._webhooks):
            if consumer is not None:
                try:
                    consumer.close()
                except KafkaError as exc:
                    log.warning("consumer close failed (%s)", type(exc).__name__)
        self._consumer = self._webhooks = None
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        self.pool.shutdown(wait=True)

    # -- one step -----------------------------------------------------------------------------

    def step(self) -> None:
        """Read registrations, act on them once the owned partitions are read whole, run due
        tenant cycles, publish changed statuses."""
        consumer = self._consumer
        # 1. poll (the rebalance listener may run inside)
        batches = consumer.poll(timeout_ms=100)
        with self._lock:
            # Assigned by the listener and still ours (a second rebalance may have moved some).
            fresh = self._assigned & consumer.assignment()
            self._assigned = set()
        if fresh:
            # Read the new partitions whole: the registry, not a queue (nothing is committed).
            consumer.seek_to_beginning(*fresh)
            ends = consumer.end_offsets(list(fresh))
            with self._lock:
                self._catching_up.update({tp: ends[tp] for tp in fresh if ends[tp] > 0})
        # 2. apply the registrations read
        for tp, records in batches.items():
            for record in records:
                self._apply(tp, record)
        with self._lock:
            for tp in list(self._catching_up):
                if (
                    tp.partition not in self._owned
                    or consumer.position(tp) >= self._catching_up[tp]
                ):
                    del self._catching_up[tp]
            settled = not self._catching_up
        # 3. start / stop / rebuild units (only once every owned partition was read whole)
        if settled:
            self._reconcile()
        # 4. run the due cycles, 5. the pushes forwarded to this replica, 6. report
        self._dispatch()
        self._forwarded()
        self._report()

    def _apply(self, tp: TopicPartition, record: Any) -> None:
        if record.key is None:
            return
        tenant = record.key.decode("utf-8", "replace")
        registration: Tenant | None = None
        if record.value is not None:
            try:
                registration = Tenant.from_datum(self.ctx.codec.decode(record.value, "Tenant"))
            except (DecodeError, ValueError) as exc:
                log.warning(
                    "undecodable registration skipped (the tenant keeps its previous one)",
                    extra={"fields": {"offset": record.offset, "error": type(exc).__name__}},
                )
                return
        with self._lock:
            if tp.partition not in self._owned:
                return  # revoked meanwhile
            if registration is None:
                self.registrations.pop(tenant, None)
            else:
                self.registrations[tenant] = registration
                self._partition_of[tenant] = tp.partition

    def _reconcile(self) -> None:
        with self._lock:
            wanted = {
                t: reg
                for t, reg in self.registrations.items()
                if self._broken.get(t) != reg.version
            }
            plan = plan_units(
                wanted, {t: unit.registration.version for t, unit in self.units.items()}
            )
        if not plan:
            return
        kept = self._stop_units([*plan.stop, *plan.rebuild])
        self._start_units([*plan.start, *plan.rebuild], kept)

    # -- units --------------------------------------------------------------------------------

    def _start_units(
        self, tenants: Collection[str], kept: Mapping[str, Mapping[tuple[str, str], KnownSet]]
    ) -> None:
        """Build the tenants' units; read the cursors again and rebuild the known sets in one
        pass for the new ones (a rebuilt unit keeps its known sets and cursors)."""
        with self._lock:
            registrations = {t: self.registrations[t] for t in tenants if t in self.registrations}
        built: dict[str, Unit] = {}
        for tenant, registration in registrations.items():
            unit = self._build(registration, kept.get(tenant, {}))
            if unit is not None:
                built[tenant] = unit
        new = {t: unit for t, unit in built.items() if t not in kept}
        try:
            if new:
                self.cursors.load(tenants=set(new))
                order = {
                    (p.system, p.resource): p.stream.version_order
                    for unit in new.values()
                    for p in unit.extractor.pollers
                }
                rebuild_known_many(
                    self.settings,
                    self.ctx.codec,
                    self.ctx.layout,
                    {t: unit.extractor.known for t, unit in new.items()},
                    order,
                )
        except BaseException:
            for unit in built.values():
                unit.extractor.close()
            raise
        with self._lock:
            for tenant, unit in built.items():
                current = self.registrations.get(tenant)
                still_ours = self._partition_of.get(tenant) in self._owned
                if not still_ours or current != unit.registration or self.stopping.is_set():
                    unit.extractor.close()  # revoked or changed while it started: not run
                    continue
                unit.extractor.ready = True
                unit.tasks = unit.extractor.schedule(unit.should_stop, lambda: None)
                self.units[tenant] = unit
        if new:
            log.info(
                "tenants started",
                extra={"fields": {"tenants": sorted(new), "replica": self.replica}},
            )

    def _build(
        self, registration: Tenant, known: Mapping[tuple[str, str], KnownSet]
    ) -> Unit | None:
        tenant = registration.tenant
        self._publish(tenant, "onboarding", "", registration.version)
        try:
            secrets = credentials.resolve(
                registration.credentials_ref, self.settings.tenant_secrets_dir
            )
            settings = settings_for(self.settings, registration, secrets)
            shared = SharedParts(
                self.metrics.for_tenant(self.label(tenant)),
                self.budgets,
                self.cursors,
                known,
                breakers=self.breakers,
            )
            extractor = Extractor(self.ctx, settings, shared=shared)
        except (TenantError, credentials.CredentialsError, ConfigurationError) as exc:
            # Its messages name fields and references, never a secret value.
            log.warning(
                "tenant %s not started: %s",
                tenant,
                exc,
                extra={"fields": {"tenant": tenant, "error": type(exc).__name__}},
            )
            with self._lock:
                self._broken[tenant] = registration.version
            self._publish(tenant, "failing", type(exc).__name__, registration.version)
            return None
        stop = threading.Event()

        def should_stop() -> bool:
            return stop.is_set() or self.stopping.is_set()

        return Unit(registration, extractor, stop=stop, should_stop=should_stop)

    def _stop_units(
        self, tenants: Collection[str]
    ) -> dict[str, Mapping[tuple[str, str], KnownSet]]:
        """Stop the tenants' work after their current page and wait for it; returns their known
        sets (a rebuilt unit keeps them)."""
        with self._lock:
            units = [self.units.pop(t) for t in tenants if t in self.units]
            for unit in units:
                unit.stop.set()
        for unit in units:
            if unit.running is not None:
                try:
                    unit.running.result()
                except Exception as exc:  # run_due logs its tasks' failures; this is a bug
                    log.error("tenant cycle crashed (%s)", type(exc).__name__)
            unit.extractor.close()
        if units:
            log.info(
                "tenants stopped",
                extra={
                    "fields": {
                        "tenants": sorted(u.registration.tenant for u in units),
                        "replica": self.replica,
                    }
                },
            )
        return {unit.registration.tenant: unit.extractor.known for unit in units}

    def _dispatch(self) -> None:
        """Hand every tenant whose next task is due, and which runs none, to the workers."""
        now = time.monotonic()
        with self._lock:
            for unit in self.units.values():
                if unit.busy() or unit.stop.is_set():
                    continue
                if unit.running is not None:
                    failure = unit.running.exception()
                    if failure is not None:
                        log.error("tenant cycle crashed (%s)", type(failure).__name__)
                    unit.running = None
                if unit.tasks and min(task.due for task in unit.tasks) <= now:
                    unit.running = self.pool.submit(
                        unit.extractor.run_due, unit.tasks, unit.should_stop, lambda: None
                    )

    # -- pushes -------------------------------------------------------------------------------

    def _route(self, system: str, source: RoutedPushSource) -> None:
        public = self.ctx.runtime.public
        if public is None:
            raise ConfigurationError("the extractor has no public port for its webhook")
        router = PushRouter(
            system,
            source,
            self.metrics,
            tenants=self.directory.tenants,
            loaded=lambda: self.directory.loaded,
            local=self._receiver,
            forward=self._forward,
        )
        public.add_route(
            "POST",
            router.path,
            router,
            max_body=self.settings.webhook_max_body_bytes,
            on_too_large=lambda: router.count("rejected", "too_large"),
        )

    def _receiver(self, tenant: str, path: str) -> Handler | None:
        """The push receiver of a tenant this replica runs and has started."""
        with self._lock:
            unit = self.units.get(tenant)
        if unit is None or not unit.extractor.ready or unit.stop.is_set():
            return None
        return unit.extractor.receiver_for(path)

    def _forward(
        self, tenant: str, system: str, path: str, body: bytes, headers: dict[str, str]
    ) -> None:
        datum = {
            "tenant": tenant,
            "system": system,
            "path": path,
            "payload": body,
            "headers": dict(headers),
            "received_at": datetime.now(UTC),
            "received_by": self.replica,
        }
        try:
            future = self.ctx.send(
                self.ctx.layout.webhooks, tenant_key(tenant), "ForwardedPush", datum
            )
            future.get(timeout=self.settings.webhook_ack_timeout_seconds)
        except KafkaError as exc:
            raise TransportError(f"push not forwarded: {type(exc).__name__}") from exc

    def _forwarded(self) -> None:
        """Hand the pushes forwarded for this replica's tenants to their receivers; one that
        cannot be handled yet (its tenant is starting, Kafka did not acknowledge) is tried again
        at the next step, and the offsets move only past what was handled."""
        consumer = self._webhooks
        if consumer is None:
            return
        with self._lock:
            owned = set(self._owned)
        if owned != self._webhooks_assigned:
            topic = self.ctx.layout.webhooks
            consumer.assign([TopicPartition(topic, p) for p in sorted(owned)])
            self._webhooks_assigned = owned
        if not owned:
            return
        handled = False
        for tp, records in consumer.poll(timeout_ms=0).items():
            for record in records:
                if not self._hand_over(record):
                    consumer.seek(tp, record.offset)  # again at the next step
                    break
                handled = True
        if handled:
            consumer.commit()

    def _hand_over(self, record: Any) -> bool:
        """Whether the forwarded push is done with (handled, or nobody's to handle)."""
        try:
            forwarded = self.ctx.codec.decode(record.value, "ForwardedPush")
        except DecodeError:
            log.warning(
                "undecodable forwarded push skipped", extra={"fields": {"offset": record.offset}}
            )
            return True
        tenant = forwarded["tenant"]
        with self._lock:
            unit = self.units.get(tenant)
            registration = self.registrations.get(tenant)
            broken = registration is not None and self._broken.get(tenant) == registration.version
        if unit is None:
            # Starting: wait for it. Paused, removed, unbuildable, moved: polling reads the
            # change (on resume, at the new owner).
            return registration is None or not registration.runs or broken
        receiver = unit.extractor.receiver_for(forwarded["path"])
        if receiver is None:
            return True  # the tenant's settings serve no such push (e.g. webhooks off)
        code, _, _ = receiver(forwarded["payload"], forwarded["headers"])
        if code == 503:
            return False
        if code != 200:
            log.warning(
                "forwarded push refused by its tenant's receiver",
                extra={"fields": {"tenant": tenant, "status": code}},
            )
        return True

    # -- status -------------------------------------------------------------------------------

    def _report(self) -> None:
        """Publish each owned tenant's phase when it changed (at most once a second)."""
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + REPORT_SECONDS
        with self._lock:
            registrations = dict(self.registrations)
            units = dict(self.units)
            broken = dict(self._broken)
        for tenant, registration in registrations.items():
            if broken.get(tenant) == registration.version:
                continue  # its failure was published when its unit could not be built
            unit = units.get(tenant)
            if unit is None and registration.runs:
                continue  # not started yet: onboarding was published when it was built
            covered = unit is not None and all(
                p.covered_until_ns() is not None for p in unit.extractor.pollers
            )
            phase, detail = phase_of(
                registration,
                ready=unit is not None and unit.extractor.ready,
                covered=covered,
                failing=dict(unit.extractor.failing) if unit is not None else {},
            )
            self._publish(tenant, phase, detail, registration.version)

    def _publish(self, tenant: str, phase: Phase, detail: str, version: int) -> None:
        status = TenantStatus(
            tenant=tenant,
            phase=phase,
            owner=self.replica,
            detail=detail,
            registration_version=version,
        )
        # Under the lock, which the revocation takes first: a replica never publishes a status
        # for a tenant it no longer owns after the next owner published one.
        with self._lock:
            if tenant not in self.registrations:
                return
            if self._published.get(tenant) == (phase, detail, version):
                return
            try:
                self.statuses.put_status(status)
            except TransportError as exc:
                log.warning("tenant status not published (%s): retried", exc)
                return
            self._published[tenant] = (phase, detail, version)

    # -- the rebalance listener's side ----------------------------------------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """New partitions: read whole by the next step before their tenants start."""
        with self._lock:
            self._owned |= {tp.partition for tp in partitions}
            self._assigned |= set(partitions)

    def revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions about to move: their tenants' work ends (after the current page) before
        this returns, so the next owner never polls them at the same time as this replica."""
        gone = {tp.partition for tp in partitions}
        with self._lock:
            self._owned -= gone
            self._assigned -= set(partitions)
            for tp in partitions:
                self._catching_up.pop(tp, None)
            leaving = [t for t, p in self._partition_of.items() if p in gone]
            for tenant in leaving:
                self.registrations.pop(tenant, None)
                self._partition_of.pop(tenant, None)
                self._broken.pop(tenant, None)
                self._published.pop(tenant, None)
        self._stop_units(leaving)


DIRECTORY_REFRESH_SECONDS = 1.0
"""How often a replica reads the tenant directory it routes pushes by."""

REPORT_SECONDS = 1.0
"""How often the owner compares its tenants' phases with what it published."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Kafka's rebalance callbacks, handed to the fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.fleet.revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.fleet.assigned(assigned)
