"""The loader's service loop: commands in, one outcome per command out, offsets committed after.

Loop shape (each step numbered where it runs)::

    1. poll       the command topics (group ``<topic_prefix>-loader``); paused while
                  ``loader_max_in_flight`` commands await their outcome
    2. apply      decode; skip ids that already have an outcome; queue the command for the
                  workers (``KeyedWorkers`` over ``fairness.FairQueue``: links in parallel, one
                  link in order, tenants round-robin with a running cap each); a worker runs it
                  to a result (``CommandExecutor`` -> ``targets``; with the tenant registry on,
                  the tenant's own executor and clients, ``tenancy``); with tracing on, inside
                  a ``loader.apply`` span continuing the command's trace (its ``traceparent``)
    3. produce    an Outcome per finished command (key = link id; the write span's
                  ``traceparent`` as Kafka header when tracing is on) and a dead letter per
                  undecodable/rejected/failed one, then flush and check every send
                  (``PendingSends``): a command counts as done only once its sends are
                  acknowledged; while Kafka is away nothing new is produced, the loop keeps
                  polling (paused by back-pressure) and flushes again — it never ends on it
    4. commit     per partition, offsets below the lowest command without an outcome
                  (``OffsetBook``) — never past a command that has none

Tenants (``tenants_from_registry``): the registry is followed from a thread; a paused tenant's
commands stay queued (held: not counted by back-pressure), a removed or unknown tenant's get a
FAILED outcome and a dead letter (``admission``); a tenant's breaker (``tenancy.Breaker``),
when one is given, counts its failures in ``_count_health`` and holds its commands while open.
A tenant with its share of the read buffer taken has its next commands passed over (their
offsets stay uncommitted) and their partition read again later (``fairness.ReadShares``,
``_read_again``): the others' commands behind its backlog are read meanwhile.

Start-up: the completed-commands index (``completed.OutcomeFollower``) is read from the
outcomes topic before the first command is applied; ``/readyz`` reports it.

SIGTERM: stop polling, let started commands finish (``loader_drain_seconds``), leave queued ones
and ones waiting for a retry without an outcome (they are re-delivered), produce, flush, commit,
close — inside the runtime's 20 s watchdog.

Rebalances: the listener only forgets revoked partitions (Kafka's IO thread must not block);
commands of those partitions still finishing get their outcome, but no longer move offsets;
queued ones are dropped when a worker reaches them (the new owner reads them again).

Imports: kafka-python, the core service machinery, the loader's modules. Never another service.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from services.core.budget import ApiBudget
from services.core.errors import (
    ConfigurationError,
    ContractError,
    DecodeError,
    TetherError,
    TransportError,
)
from services.core.kafka import (
    PendingSends,
    commit_offsets,
    make_consumer,
    progress_exporter,
)
from services.core.metrics import BudgetCollector
from services.core.runtime import ServiceRuntime
from services.core.service import ServiceContext
from services.core.topics import link_key
from services.core.tracing import kafka_headers, traceparent_of
from services.loader.admission import Admission, TenantNotServedError, tenant_health
from services.loader.clients import SYSTEMS, Clients, build_clients
from services.loader.completed import (
    CompletedCommands,
    OutcomeFollower,
    topic_partitions,
)
from services.loader.executor import CommandExecutor, Execution
from services.loader.fairness import ReadShares
from services.loader.messages import decode_command, outcome_datum
from services.loader.metrics import ApiCalls, LoaderMetrics, TenantCollector, TenantLabel
from services.loader.offsets import OffsetBook, Ticket
from services.loader.plan import LoaderCommand, failure
from services.loader.settings import LoaderSettings
from services.loader.targets import Applier
from services.loader.tenancy import Breaker, TenantClients, TenantStates
from services.loader.workers import KeyedWorkers
from services.tenants import credentials
from services.tenants.registry import TenantDirectory

log = logging.getLogger("tether.loader")

#: How long one step waits for Kafka to acknowledge the outcomes before it goes back to polling
#: (and flushes again next step). Not a deadline: a broker outage of any length is waited out.
SEND_TIMEOUT_SECONDS = 5.0
#: Topic metadata refresh (kafka-python's default is 5 minutes): new partitions and topics are
#: picked up within this time.
METADATA_MAX_AGE_MS = 30_000


@dataclass(frozen=True)
class _Job:
    ticket: Ticket[TopicPartition]
    record: Any  # kafka ConsumerRecord: topic, partition, offset, key, value
    command: LoaderCommand


@dataclass(frozen=True)
class _Finished:
    job: _Job
    execution: Execution | None
    """None: a duplicate skipped by the worker; ``aborted``: no outcome (stopping)."""
    traceparent: str | None = None
    """The trace context of the write's span (tracing on): the outcome's Kafka header."""


@dataclass(frozen=True)
class _Parked:
    record: Any
    error: BaseException
    ticket: Ticket[TopicPartition]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: LoaderService) -> None:
        self._service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._service.forget(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned", extra={"fields": {"partitions": len(assigned)}})


class LoaderService:
    """One loader process: ``run(runtime)`` is the loop ``ServiceRuntime.run`` drives."""

    def __init__(
        self,
        ctx: ServiceContext,
        settings: LoaderSettings,
        targets: Mapping[str, Applier],
        *,
        metrics: LoaderMetrics | None = None,
        budgets: list[ApiBudget] | None = None,
        tenants: TenantStates | None = None,
        breaker_for: Callable[[str], Breaker] | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.metrics = metrics or LoaderMetrics(ctx.registry, systems=tuple(targets))
        self.budgets = list(budgets or [])
        if self.budgets:
            ctx.registry.register(BudgetCollector(self.budgets))
        self.tenants = tenants
        self.tenant_clients: TenantClients | None = None  # set with ``tenants`` (from_settings)
        self._breaker_for = breaker_for
        self._breakers: dict[str, Breaker] = {}
        self._breakers_lock = threading.Lock()
        share = settings.tenant_max_in_flight()
        self._shares: ReadShares[TopicPartition] | None = ReadShares(share) if share else None
        # Commands handed to the workers and not collected yet: the tickets of every copy read
        # meanwhile (a re-send, or the same record read again) are done with the original.
        self._running: dict[str, list[Ticket[TopicPartition]]] = {}
        self.completed = CompletedCommands()
        self.executor = CommandExecutor(
            targets,
            metrics=self.metrics,
            max_attempts=settings.loader_retry_max_attempts,
            initial_backoff=settings.loader_retry_initial_seconds,
            max_backoff=settings.loader_retry_max_seconds,
        )
        self.follower = OutcomeFollower(
            settings,
            ctx.layout.outcomes,
            ctx.codec,
            self.completed,
            on_progress=self.metrics.completed_index.set,
        )
        self.group_id = f"{settings.topic_prefix}-loader"
        # Lag + stall detection (services/core/progress.py); stalled partitions fail /readyz.
        self._lag = progress_exporter(ctx.metrics, self.group_id, settings.stall_after_seconds)
        ctx.runtime.http.add_check("partitions_progressing", self._lag.healthy)
        self._book: OffsetBook[TopicPartition] = OffsetBook()
        self._lock = threading.Lock()
        self._results: queue.Queue[_Finished] = queue.Queue()
        self._parked: list[_Parked] = []
        self._skipped: list[Ticket[TopicPartition]] = []
        self._sends: PendingSends | None = None  # the outcomes/dead letters not acknowledged yet
        self._awaiting: list[Ticket[TopicPartition]] = []  # done once ``_sends`` settles
        self._in_flight = 0
        self._paused = False
        self._unassigned_since = time.monotonic()
        self._draining = threading.Event()
        self._workers: KeyedWorkers[_Job] | None = None
        self._clients: Clients | None = None
        ctx.runtime.http.add_check("completed_index", lambda: self.follower.caught_up)
        ctx.registry.register(
            TenantCollector(self.metrics.tenant_label, self._tenant_load, self._tenant_budgets)
        )

    @classmethod
    def from_settings(
        cls,
        ctx: ServiceContext,
        settings: LoaderSettings,
        *,
        budgets: Mapping[str, ApiBudget] | None = None,
        tenant_label: TenantLabel | None = None,
        breaker_for: Callable[[str], Breaker] | None = None,
    ) -> LoaderService:
        """The production wiring: clients from the settings, the loader's share of each budget
        (``budgets`` by system: the benchmark passes budgets with a scaled-down window).

        With ``tenants_from_registry``: the registry is followed and each registered tenant gets
        its own clients (``tenancy.TenantClients``); the deployment's own clients serve its own
        tenant (``TETHER_TENANT``) while that is not registered — a deployment without its own
        credentials then serves registered tenants only. ``tenant_label`` bounds the ``tenant``
        metric label (default: the id); ``breaker_for`` makes each tenant's breaker."""
        calls = ApiCalls(ctx.metrics)
        metrics = LoaderMetrics(
            ctx.registry, systems=SYSTEMS, tenant_label=tenant_label or (lambda tenant: tenant)
        )
        tenants: TenantStates | None = None
        clients: Clients | None = None
        if settings.tenants_from_registry:
            directory = TenantDirectory(settings, ctx.codec)
            tenants = TenantStates(directory, settings.tenant, settings.tenants_refresh_seconds)
            try:
                clients = build_clients(settings, calls, budgets=budgets)
            except ConfigurationError as exc:
                log.info("no deployment credentials: registered tenants only (%s)", exc)
        else:
            clients = build_clients(settings, calls, budgets=budgets)
        service = cls(
            ctx,
            settings,
            clients.targets(settings, ctx.registry) if clients is not None else {},
            metrics=metrics,
            budgets=list(clients.budgets.values()) if clients is not None else [],
            tenants=tenants,
            breaker_for=breaker_for,
        )
        service._clients = clients
        if tenants is not None:
            service.tenant_clients = TenantClients(
                settings,
                partial(service._tenant_executor, calls),
                check_seconds=settings.tenant_credentials_check_seconds,
                resolve=partial(
                    credentials.resolve, tenant_secrets_dir=settings.tenant_secrets_dir
                ),
                credential_budgets={"": clients.budgets} if clients is not None else {},
            )
        return service

    def _tenant_executor(
        self, calls: ApiCalls, settings: LoaderSettings, budgets: dict[str, ApiBudget]
    ) -> tuple[Clients, CommandExecutor]:
        """A tenant's clients (its settings, its budgets) and the executor over their targets."""
        clients = build_clients(settings, calls, budgets=budgets)
        executor = CommandExecutor(
            clients.targets(settings, None),
            metrics=self.metrics,
            max_attempts=settings.loader_retry_max_attempts,
            initial_backoff=settings.loader_retry_initial_seconds,
            max_backoff=settings.loader_retry_max_seconds,
            abort=self.executor.abort,
        )
        return clients, executor

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()
        if self.tenant_clients is not None:
            self.tenant_clients.close()

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, runtime: ServiceRuntime) -> None:
        self.follower.start()
        if self.tenants is not None:
            # A registration changed (a tenant resumed, say): idle workers look again now.
            self.tenants.listen(lambda _before, _after: self._wake_workers())
            self.tenants.start()
        try:
            if not self._wait_for_index(runtime):
                return
            topics = self.ctx.layout.all_commands()
            if not self._await_topics(topics, runtime):
                return
            consumer = self._subscribe(topics)
            # The producer now, while Kafka is known to be up (its constructor needs a broker).
            self._sends = PendingSends(self.ctx.producer)
            self._workers = KeyedWorkers(
                self.settings.loader_concurrency,
                self._handle,
                name="loader",
                runnable=self._may_run,
                max_running_per_tenant=self.settings.tenant_max_running(),
            )
            try:
                while not runtime.stopping.is_set():
                    runtime.heartbeat()
                    self.step(consumer)
                    if self._stuck(consumer):
                        consumer = self._resubscribe(consumer, topics)
                self._drain(consumer)
            finally:
                self.executor.abort.set()
                self._draining.set()
                self._workers.close(timeout=1.0)
                consumer.close(autocommit=False)
        finally:
            self.follower.stop()
            if self.tenants is not None:
                self.tenants.stop()

    # -- tenants -----------------------------------------------------------------------------------

    def _wake_workers(self) -> None:
        if self._workers is not None:
            self._workers.wake()

    def _may_run(self, tenant: str) -> bool:
        """Whether a worker may take this tenant's next command (asked under the workers' lock:
        quick, and never calls back into them). Stopping: every command is taken (and handed
        back at once without an outcome)."""
        if self._draining.is_set():
            return True
        if self.tenants is not None:
            admission = self.tenants.verdict(tenant).admission
            if admission is Admission.HOLD:
                return False
            if admission is Admission.REFUSE:
                return True  # taken at once, to its FAILED outcome
        breaker = self._breaker(tenant)
        return breaker is None or breaker.allows()

    def _breaker(self, tenant: str) -> Breaker | None:
        if self._breaker_for is None:
            return None
        with self._breakers_lock:
            breaker = self._breakers.get(tenant)
            if breaker is None:
                breaker = self._breakers[tenant] = self._breaker_for(tenant)
            return breaker

    def _count_health(self, tenant: str, execution: Execution) -> None:
        """THE place a tenant's failures are counted (what counts: ``admission.tenant_health``)."""
        breaker = self._breaker(tenant)
        if breaker is None or execution.result is None:
            return
        health = tenant_health(execution.result, execution.error)
        if health is True:
            breaker.record_success()
        elif health is False:
            breaker.record_failure()

    def _execute(self, command: LoaderCommand) -> Execution:
        """Run a command with its tenant's executor (registry on), else the deployment's."""
        if self.tenants is None or self.tenant_clients is None:
            return self.executor.execute(command)
        verdict = self.tenants.verdict(command.tenant)
        if verdict.admission is Admission.REFUSE:
            refused = TenantNotServedError(command.tenant, verdict.reason)
            return Execution(failure(refused), 0, refused)
        registration = self.tenants.registration(command.tenant)
        if registration is None:  # the deployment's own tenant, not registered
            return self.executor.execute(command)
        try:
            with self.tenant_clients.lease(registration) as executor:
                return executor.execute(command)
        except ConfigurationError as exc:
            return Execution(failure(exc), 1, exc)

    def _tenant_load(self) -> Iterator[tuple[str, str, int]]:
        """(tenant, queued|held|running, commands) for the metrics."""
        workers = self._workers
        if workers is None:
            return
        for tenant, (queued, running) in workers.load().items():
            yield tenant, "queued" if self._may_run(tenant) else "held", queued
            yield tenant, "running", running

    def _tenant_budgets(self) -> list[tuple[str, ApiBudget]]:
        return self.tenant_clients.budgets() if self.tenant_clients is not None else []

    def _held(self) -> int:
        """Queued commands of tenants that may not run now (paused, breaker open)."""
        workers = self._workers
        if workers is None or (self.tenants is None and self._breaker_for is None):
            return 0
        load = workers.load()
        return sum(queued for tenant, (queued, _) in load.items() if not self._may_run(tenant))

    def _subscribe(self, topics: list[str]) -> KafkaConsumer:
        consumer = make_consumer(
            self.settings, self.group_id, metadata_max_age_ms=METADATA_MAX_AGE_MS
        )
        consumer.subscribe(topics, listener=_Rebalance(self))
        self._unassigned_since = time.monotonic()
        self._paused = False
        return consumer

    def _stuck(self, consumer: KafkaConsumer) -> bool:
        """No partition for ``loader_unassigned_restart_seconds``: kafka-python (3.0.x) can be
        left outside the group after a rebalance on a starved CPU, polling forever."""
        if consumer.assignment():
            self._unassigned_since = time.monotonic()
            return False
        limit = self.settings.loader_unassigned_restart_seconds
        return limit > 0 and time.monotonic() - self._unassigned_since > limit

    def _resubscribe(self, consumer: KafkaConsumer, topics: list[str]) -> KafkaConsumer:
        log.warning("no partitions assigned for a while: rejoining the group with a new consumer")
        self.metrics.consumer_restarts.inc()
        with self._lock:
            self._book.clear()  # nothing is assigned: no offset of ours may move
            if self._shares is not None:
                self._shares.clear()
        try:
            consumer.close(autocommit=False)
        except Exception as exc:  # a broken consumer must not keep us from replacing it
            log.warning("closing the stuck consumer failed: %s", type(exc).__name__)
        return self._subscribe(topics)

    def _await_topics(self, topics: list[str], runtime: ServiceRuntime) -> bool:
        """Wait until every command topic exists: a consumer subscribing to a missing topic only
        notices it at its next metadata refresh."""
        logged = 0.0
        while not runtime.stopping.is_set():
            runtime.heartbeat()
            missing = sorted(set(topics) - set(topic_partitions(self.settings, topics)))
            if not missing:
                return True
            if time.monotonic() - logged > 30:
                log.warning("waiting for command topics", extra={"fields": {"missing": missing}})
                logged = time.monotonic()
            runtime.stopping.wait(0.5)
        return False

    def _wait_for_index(self, runtime: ServiceRuntime) -> bool:
        deadline = time.monotonic() + self.settings.loader_startup_timeout_seconds
        while time.monotonic() < deadline:
            runtime.heartbeat()
            if self.follower.wait_caught_up(1.0, runtime.stopping):
                return True
            if runtime.stopping.is_set():
                return False
            if self.follower.failed is not None:
                raise TransportError("the completed-commands index failed to load") from (
                    self.follower.failed
                )
        raise TransportError("the completed-commands index could not be read from Kafka")

    def step(self, consumer: KafkaConsumer) -> None:
        started = time.monotonic()
        # 1. poll (paused while too many commands await their outcome; partitions where a
        # tenant's commands were passed over are read again once it is down to half its share)
        self._backpressure(consumer)
        self._read_again(consumer)
        busy = self._in_flight > 0
        batches = consumer.poll(timeout_ms=0 if busy else self.settings.poll_timeout_ms)
        records = [record for batch in batches.values() for record in batch]
        self._lag.update(consumer)
        # 2. apply: decode, de-duplicate, hand to the link's worker (results come back queued)
        for record in records:
            self._accept(record)
        # 3. produce outcomes and dead letters, flush, check
        self._collect(wait=0.05 if busy and not records else 0.0)
        # 4. commit offsets below the lowest command without an outcome
        self._commit(consumer)
        if records:
            self.ctx.metrics.batch_seconds.observe(time.monotonic() - started)

    def _backpressure(self, consumer: KafkaConsumer) -> None:
        limit = self.settings.loader_max_in_flight
        # Held commands (a paused tenant's, one whose breaker is open) do not count: they must
        # not stop the other tenants' commands from being read.
        waiting = self._in_flight - self._held()
        if waiting >= limit:
            consumer.pause(*consumer.assignment())
            self._paused = True
        elif self._paused and waiting <= limit // 2:
            consumer.resume(*consumer.paused())
            self._paused = False

    def _read_again(self, consumer: KafkaConsumer) -> None:
        """Seek back to the first passed-over command of each partition that is due: what was
        read after it is read again (finished or running commands are recognised by id).

        A partition where a share's worth was passed over is *not* paused meanwhile: kafka-python
        (3.0.x) can strand a partition paused alone while others flow — its buffered records are
        parked and the partition is never fetched again (the mapper's gate met it, issue #11;
        ``services/mapper/gate.py``). The price is reading a backlog's tail more than once."""
        if self._shares is None:
            return
        assigned = consumer.assignment()  # never call the consumer under _lock (see _commit)
        with self._lock:
            due = self._shares.due()
        for partition, offset in due.items():
            if partition in assigned:
                consumer.seek(partition, offset)

    def _accept(self, record: Any) -> None:
        self.ctx.metrics.consumed.labels(record.topic).inc()
        with self._lock:
            ticket = self._book.add(TopicPartition(record.topic, record.partition), record.offset)
        try:
            command = decode_command(self.ctx.codec, record.value)
        except (DecodeError, ContractError) as exc:
            self._parked.append(_Parked(record, exc, ticket))
            return
        except Exception as exc:  # a payload that trips the decoder in an unexpected way
            self._parked.append(
                _Parked(record, DecodeError(f"Command: {type(exc).__name__}"), ticket)
            )
            return
        copies = self._running.get(command.command_id)
        if copies is not None:  # the same command is under way: done when it is
            self.metrics.duplicates.inc()
            copies.append(ticket)
            return
        if command.command_id in self.completed:
            self.metrics.duplicates.inc()
            self._skipped.append(ticket)
            return
        if self._shares is not None:
            with self._lock:
                taken = self._shares.take(ticket.partition, command.tenant, record.offset)
            if not taken:  # its ticket stays open: nothing is committed past it
                self.metrics.passed_over.labels(self.metrics.tenant_label(command.tenant)).inc()
                return
        assert self._workers is not None
        self._running[command.command_id] = [ticket]
        self._in_flight += 1
        self.metrics.in_flight.set(self._in_flight)
        self._workers.submit(command.link_id, _Job(ticket, record, command), command.tenant)

    def _handle(self, job: _Job) -> None:
        """Worker thread: run one command to its result (never raises)."""
        command = job.command
        try:
            with self._lock:
                owned = self._book.current(job.ticket)
            if self._draining.is_set() or not owned:
                # Not started: re-delivered later (stopping), or its partition went to another
                # consumer while it was queued or held, which reads it again.
                finished = _Finished(job, Execution(None, 0))
            elif command.command_id in self.completed:
                finished = _Finished(job, None)  # an earlier copy of it finished meanwhile
            else:
                tracing = self.ctx.tracing
                # Tracing on: the write continues the trace of the command (its header).
                parent = traceparent_of(job.record.headers) if tracing.enabled else None
                with tracing.span("loader.apply", parent, kind="consumer") as traceparent:
                    execution = self._execute(command)
                self._count_health(command.tenant, execution)
                if execution.result is not None:
                    self.completed.add(command.command_id)
                finished = _Finished(job, execution, traceparent)
        except BaseException as exc:  # pragma: no cover - execute() reports its own errors
            log.exception("worker failed", extra={"fields": {"command_id": command.command_id}})
            finished = _Finished(job, Execution(None, 0, exc))
        self._results.put(finished)

    def _collect(self, wait: float = 0.0, flush_timeout: float | None = None) -> None:
        timeout = SEND_TIMEOUT_SECONDS if flush_timeout is None else flush_timeout
        # 3a. what the previous steps produced must be acknowledged before anything new is
        # produced: outcomes stay in order, and a broker outage only holds results back.
        if not self._acknowledge(timeout):
            return
        finished: list[_Finished] = []
        try:
            finished.append(self._results.get(timeout=wait) if wait else self._results.get_nowait())
            while True:
                finished.append(self._results.get_nowait())
        except queue.Empty:
            pass
        done: list[Ticket[TopicPartition]] = list(self._skipped)
        self._skipped.clear()
        for parked in self._parked:
            self._park(parked.record, parked.error)
            done.append(parked.ticket)
        self._parked.clear()
        for item in finished:
            self._in_flight -= 1
            command = item.job.command
            tickets = self._running.pop(command.command_id, [item.job.ticket])
            if self._shares is not None:
                with self._lock:
                    self._shares.finished(command.tenant)
            execution = item.execution
            if execution is None:
                self.metrics.duplicates.inc()
                done.extend(tickets)
            elif execution.result is None:
                self.metrics.abandoned.inc()
            else:
                self._report(item.job, execution, item.traceparent)
                done.extend(tickets)
        self.metrics.in_flight.set(self._in_flight)
        # 3b. flush and check every send; only acknowledged commands may move an offset
        self._awaiting.extend(done)
        self._acknowledge(timeout)

    @property
    def sends(self) -> PendingSends:
        if self._sends is None:
            self._sends = PendingSends(self.ctx.producer)
        return self._sends

    def _acknowledge(self, timeout: float) -> bool:
        """Flush; once every send is acknowledged, its commands count as done (committable)."""
        if self._sends is not None and not self._sends.settle(timeout):
            return False
        with self._lock:
            for ticket in self._awaiting:
                self._book.done(ticket)
        self._awaiting.clear()
        return True

    def _report(self, job: _Job, execution: Execution, traceparent: str | None = None) -> None:
        command = job.command
        result = execution.result
        assert result is not None
        datum = outcome_datum(command, result, attempts=execution.attempts)
        self.sends.add(
            partial(
                self.ctx.send,
                self.ctx.layout.outcomes,
                link_key(command.link_id),
                "Outcome",
                datum,
                kafka_headers(traceparent),
            )
        )
        self.metrics.outcomes_of(
            command.system, command.resource, command.action.value, result.status.value
        ).inc()
        self.metrics.tenant_outcomes_of(
            self.metrics.tenant_label(command.tenant), command.system, result.status.value
        ).inc()
        if result.is_failure:
            error = execution.error or TetherError(result.error_message or "failed")
            self._park(job.record, error, attempts=execution.attempts, tenant=command.tenant)
        log.info(
            "outcome %s",
            result.status.value,
            extra={
                "fields": {
                    "command_id": command.command_id,
                    "system": command.system,
                    "resource": command.resource,
                    "action": command.action.value,
                    "attempts": execution.attempts,
                    "error_code": result.error_code,
                }
            },
        )

    def _park(
        self, record: Any, error: BaseException, attempts: int = 1, tenant: str | None = None
    ) -> None:
        """A dead letter for ``record``; ``tenant`` the command's (undecodable: the writer's)."""
        self.sends.add(
            partial(
                self.ctx.dead_letters.park,
                bytes(record.value or b""),
                error,
                source_topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                attempts=attempts,
                tenant=tenant,
            )
        )

    def _commit(self, consumer: KafkaConsumer) -> None:
        assigned = consumer.assignment()  # never call the consumer under _lock: the rebalance
        with self._lock:  # listener takes it on Kafka's IO thread
            offsets = self._book.committable(assigned)
        if not offsets:
            return
        try:
            commit_offsets(consumer, offsets)
        except TransportError as exc:  # e.g. a rebalance in progress: the next commit covers it
            self.metrics.commit_failures.inc()
            log.warning("offset commit failed: %s", exc)
            return
        with self._lock:
            self._book.committed(offsets)

    def _drain(self, consumer: KafkaConsumer) -> None:
        """Stopping: finish started commands, report them, commit; leave the rest."""
        self._draining.set()
        self.executor.abort.set()  # commands waiting for a retry end without an outcome
        self._wake_workers()  # held commands are handed back too (without an outcome)
        deadline = time.monotonic() + self.settings.loader_drain_seconds
        while (self._in_flight > 0 or len(self.sends)) and time.monotonic() < deadline:
            self._collect(wait=0.1, flush_timeout=max(0.1, deadline - time.monotonic()))
            self._commit(consumer)
        self._collect(flush_timeout=1.0)
        self._commit(consumer)
        if len(self.sends):
            log.warning(
                "stopped with outcomes not acknowledged by Kafka (their commands are re-delivered)",
                extra={"fields": {"unacknowledged": len(self.sends)}},
            )
        if self._in_flight:
            log.warning(
                "stopped with commands still running (re-delivered on restart)",
                extra={"fields": {"in_flight": self._in_flight}},
            )
        log.info("loader drained")

    def forget(self, partitions: Any) -> None:
        """Rebalance listener: partitions revoked — their offsets are no longer ours to move."""
        with self._lock:
            self._book.drop(partitions)
            if self._shares is not None:
                self._shares.forget(partitions)
        log.info("partitions revoked", extra={"fields": {"partitions": len(partitions)}})
