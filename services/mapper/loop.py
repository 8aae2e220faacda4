"""The mapper's service loop: a thin shell around ``Handler`` (and through it the pure domain).

One iteration, in this order (the numbers are repeated as comments where they run):

1. **poll** a batch from every change topic and the outcomes topic (consumer group
   ``<topic_prefix>-mapper``; auto-commit off); **gate** it (``gate.HubFirstGate``): member
   changes whose older hub changes are not handled yet are rewound (never paused), not handled;
   then the lag/progress exporter notes every owned partition's position (stall detection:
   ``services.core.progress``; ``/readyz`` fails while a partition is stalled);
2. **handle + persist** the whole batch in ONE PostgreSQL transaction: lock the batch's tracking
   rows ``(group, topic, partition) -> next offset``; skip every message below its row (a replay
   is a no-op); decode it; ``Handler.prepare`` reads what the batch needs set-based (a constant
   number of statements, ``store.BatchStore``), ``Handler`` decides each input from memory and
   buffers its writes (link state, indexes, review items, conflicts, history and the encoded
   commands in the outbox), and the store flushes them in one pipeline — no round trip per
   input. Bad input (``DecodeError``, ``ContractError``, any non-retriable error)
   becomes a dead letter (``ctx.dead_letters.park``, flushed before the commit) while its
   tracking row still advances: an input failing before it wrote is parked in place; one failing
   after it wrote — or a flush that fails (a link's version check: ``StaleLinkError``, a
   constraint) — makes the batch roll back and run again input by input, each in a savepoint
   with the per-input ``MapperStore``. Advance the tracking rows; **commit**;
3. **produce** the outbox rows not yet produced (one replica at a time, in outbox order, key =
   link id, topic = the target's command topic, the row's ``traceparent`` as Kafka header when
   it has one), **flush**, mark them produced;
4. **commit the Kafka offsets** of the batch (last: they are only an optimisation, the tracking
   rows are the truth).

A crash between any two steps is safe: before 2's commit nothing happened; between 2 and 3 the
rows wait in the outbox and are produced on restart (``start`` relays leftovers first); between
3's flush and its mark, or between 3 and 4, rows are produced again (same ``command_id``: the
loader de-duplicates) and the re-read input is skipped by the tracking rows.

Retriable failures (PostgreSQL connection lost, deadlock, serialization failure; Kafka transport
errors) roll the batch back and retry it with back-off; the process never skips input it could
not persist. SIGTERM (``stop``) finishes the current batch, produces, commits and returns.

Imports: the core kafka/service/codec modules, psycopg and the mapper's modules.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from services.core.errors import DecodeError, TetherError, TransportError
from services.core.kafka import (
    commit_offsets,
    make_consumer,
    next_offsets,
    progress_exporter,
    provision_topics,
)
from services.core.service import ServiceContext
from services.core.tenant_labels import TenantLabels
from services.core.tracing import kafka_headers, traceparent_of
from services.mapper.domain import Policy, ReviewReason, hub
from services.mapper.gate import HubFirstGate
from services.mapper.handler import Handled, Handler
from services.mapper.metrics import MapperMetrics
from services.mapper.migrations import apply_migrations
from services.mapper.operator_actions import ActionApplier
from services.mapper.settings import MapperSettings
from services.mapper.store import MapperStore
from services.mapper.store.batch import BatchStore
from services.mapper.store.links import StaleLinkError
from services.mapper.store.outbox import OutboxRow
from services.mapper.store.session import prepare_session
from services.mapper.summary import DecisionSummary

log = logging.getLogger("tether.mapper")

CRASH_EXIT_CODE = 137
MAX_BACKOFF_SECONDS = 5.0
#: PostgreSQL failures worth retrying the whole batch for: connection lost, deadlock detected,
#: serialization failure (all OperationalError), or a connection found closed (InterfaceError).
RETRIABLE_DB = (psycopg.OperationalError, psycopg.InterfaceError)


_MESSAGE_TYPES = {"outcome": "Outcome", "change": "ChangeEvent", "action": "OperatorAction"}


def _ignored(datum: dict[str, Any] | DecodeError, ignored: set[tuple[str, str, str, str]]) -> bool:
    """Whether a decoded change is about a record an operator ignores (IGNORE_RECORD)."""
    if not ignored or isinstance(datum, DecodeError):
        return False
    try:
        identity = (
            str(datum["tenant"]),
            str(datum["system"]),
            str(datum["resource"]),
            str(datum["record_id"]),
        )
    except KeyError:
        return False
    return identity in ignored


class _DirtyBatchError(Exception):
    """An input failed after it had written: the batch's transaction must be redone."""


def _now() -> datetime:
    return datetime.now(UTC)


def _identities(
    todo: Sequence[tuple[Any, str, dict[str, Any] | DecodeError]],
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """The record identities and link ids a batch's decoded inputs name (for the prefetch)."""
    records: list[tuple[str, str, str, str]] = []
    links: list[str] = []
    for _, source, datum in todo:
        if isinstance(datum, DecodeError):
            continue
        try:
            if source == "outcome":
                links.append(str(datum["link_id"]))
            else:
                tenant, system, resource = datum["tenant"], datum["system"], datum["resource"]
                records.append((str(tenant), str(system), str(resource), str(datum["record_id"])))
                records += [
                    (str(tenant), str(system), str(resource), str(m))
                    for m in datum.get("merged_ids") or ()
                ]
        except (KeyError, TypeError):
            continue  # the handler reports it
    return records, links


class Mapper:
    """The mapper process' moving parts: consumer, PostgreSQL connection, handler, relay."""

    def __init__(
        self,
        ctx: ServiceContext,
        settings: MapperSettings,
        policy: Policy | None = None,
        metrics: MapperMetrics | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.policy = policy if policy is not None else settings.policy()
        self.metrics = (
            metrics
            if metrics is not None
            else MapperMetrics(
                ctx.registry, settings.tenant, TenantLabels(settings.metrics_tenant_cap)
            )
        )
        self.group = settings.group_id
        self.topics = [*ctx.layout.all_changes(), ctx.layout.outcomes, ctx.layout.operator_actions]
        the_hub = hub()
        self._hub_topics = {ctx.layout.changes(the_hub.system, the_hub.resource)}
        self.conn: psycopg.Connection[Any] | None = None
        self.consumer: KafkaConsumer | None = None
        self.gate: HubFirstGate | None = None
        self.lag = progress_exporter(ctx.metrics, self.group, settings.stall_after_seconds)
        """Consumer lag and stall detection; its ``healthy`` is the readiness check below."""
        ctx.runtime.http.add_check("partitions_progressing", self.lag.healthy)
        self._stream_starts: dict[tuple[str, str, str], datetime] = {}
        self.crash_point = settings.mapper_crash_point
        self.consumed = 0
        """Messages polled and handled or skipped (tests wait on it)."""
        self.replayed = 0
        self._next_maintenance = 0.0
        self.summary = DecisionSummary(settings.mapper_summary_interval_seconds)
        self._open_reviews: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Migrate, subscribe, and produce what a previous run left in the outbox."""
        if self.settings.mapper_provision_topics:
            provision_topics(self.settings)
        conn = self._connection()
        apply_migrations(conn)
        static = self.settings.mapper_group_instance_id
        consumer = make_consumer(
            self.settings,
            self.group,
            max_partition_fetch_bytes=self.settings.mapper_max_partition_fetch_bytes,
            **({"group_instance_id": static} if static else {}),
        )
        for topic in self.topics:
            # Metadata before joining: a group leader that assigns before it knows the
            # partitions hands out nothing, and kafka-python may not rebalance for a while.
            consumer.partitions_for_topic(topic)
        consumer.subscribe(self.topics)
        self.consumer = consumer
        if self.settings.hub_first:
            self.gate = HubFirstGate(
                consumer,
                self._hub_topics,
                [t for t in self.ctx.layout.all_changes() if t not in self._hub_topics],
                self._tracked,
                on_hold=self._held,
                on_release=lambda: self.metrics.holding.set(0),
            )
        self._relay_safely()  # what a previous run committed but did not produce
        self._maintenance(force=True)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
            self.consumer = None
            self.gate = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(self, stop: Callable[[], bool]) -> None:
        """Run iterations until ``stop()``; then produce and commit what is left, and close.

        Start-up waits (with back-off) for PostgreSQL and Kafka instead of crash-looping."""
        delay = 0.5
        while True:
            try:
                self.start()
                break
            except (*RETRIABLE_DB, TransportError) as exc:
                if stop():
                    self.close()
                    return
                log.warning("start-up failed (%s): retrying in %.1fs", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        try:
            while not stop():
                self.ctx.runtime.heartbeat()
                self.run_once()
        finally:
            try:
                self._relay_safely()
            finally:
                self.close()

    # -- one iteration ------------------------------------------------------------------------

    def run_once(self) -> int:
        """One poll -> persist -> produce -> commit round; returns the messages polled."""
        assert self.consumer is not None, "start() first"
        if self.gate is not None:
            self.gate.release_if_caught_up()
        # 1. poll, then gate (what is held is neither handled nor committed)
        polled = self.consumer.poll(
            timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_poll_records
        )
        records = [record for batch in polled.values() for record in batch]
        if self.gate is not None:
            admitted = self.gate.admit(records)
            if records and not admitted:
                # Everything polled was held (and rewound): the next poll would fetch the same
                # records at once; give the hub partitions' owners a poll interval instead.
                time.sleep(self.settings.poll_timeout_ms / 1000)
            records = admitted
        self.lag.update(self.consumer)
        # Hub changes first (a stable sort keeps every partition's own order): a member record
        # in the same batch is then matched against the hub records it carries instead of
        # creating a duplicate of one of them.
        records.sort(key=self._priority)
        started = time.monotonic()
        if records:
            for record in records:
                self.ctx.metrics.consumed.labels(record.topic).inc()
            # 2. handle + persist in one transaction (tracking rows, state, outbox) -> commit
            handled, new = self._process(records)
            self.consumed += len(records)
            self.replayed += sum(1 for item in handled if item.result == "replayed")
            self._apply_metrics(handled)
            if new:
                self._crash("after_db_commit")
        # 3. produce the outbox, flush, mark produced
        relayed = self._relay_safely()
        if relayed > 0:
            self._crash("after_mark")
        # 4. commit Kafka offsets (last)
        if records and relayed >= 0:
            try:
                commit_offsets(self.consumer, next_offsets(records))
            except TransportError as exc:
                # A rebalance took the partitions: the tracking rows keep the new owner exact.
                log.warning("offset commit failed: %s", exc)
            self.ctx.metrics.batch_seconds.observe(time.monotonic() - started)
        self._maintenance()
        self._summarise()
        return len(records)

    def _summarise(self) -> None:
        """One INFO line per interval: what was decided (counts only, nothing personal)."""
        fields = self.summary.take_if_due(self._open_reviews)
        if fields is not None:
            log.info(
                "mapper summary: %d inputs in %.0fs, %d dead letters, %s review items open",
                fields["inputs"],
                fields["window_seconds"],
                fields["dead_letters"],
                "?" if fields["review_items_open"] is None else fields["review_items_open"],
                extra={"fields": fields},
            )

    def _tracked(self) -> dict[tuple[str, int], int]:
        """The group's tracking rows (what every replica has handled), read in a short
        transaction of its own."""
        try:
            conn = self._connection()  # inside: a refused connection is retriable too
            with conn.transaction():
                return MapperStore(conn).positions(self.group)
        except RETRIABLE_DB as exc:
            if self.conn is not None and self.conn.closed:
                self.conn = None
            raise TransportError(f"tracking rows unreadable: {type(exc).__name__}") from exc

    def _held(self, count: int, began: bool) -> None:
        if began:
            self.metrics.holds.inc()
        self.metrics.held.inc(count)
        self.metrics.holding.set(1)

    def _priority(self, record: Any) -> int:
        return 0 if record.topic in self._hub_topics else 1

    # -- step 2 -------------------------------------------------------------------------------

    def _process(self, records: Sequence[Any]) -> tuple[list[Handled], int]:
        attempt = 0
        careful = False
        while True:
            try:
                return self._process_once(records, careful)
            except _DirtyBatchError as dirty:
                # An input failed after it wrote: redo the batch, each input in a savepoint.
                log.info("batch redone input by input (%s)", type(dirty.__cause__).__name__)
                careful = True
            except (*RETRIABLE_DB, TransportError) as exc:
                attempt += 1
                delay = min(0.05 * 2**attempt, MAX_BACKOFF_SECONDS)
                log.warning(
                    "batch rolled back (%s), retry %d in %.2fs", type(exc).__name__, attempt, delay
                )
                time.sleep(delay)
                if self.conn is not None and self.conn.closed:
                    self.conn = None

    def _process_once(self, records: Sequence[Any], careful: bool) -> tuple[list[Handled], int]:
        """One transaction for the batch. Fast path: no savepoints — an input that fails before
        writing anything becomes a dead letter in place; one that fails after writing raises
        ``_DirtyBatchError`` and the batch is redone ``careful``: each input in a savepoint."""
        conn = self._connection()
        store = MapperStore(conn) if careful else BatchStore(conn)
        handler = Handler(
            store,
            self.ctx.codec,
            self.ctx.layout,
            self.policy,
            max_deletes_per_hour=self.settings.mapper_max_deletes_per_hour,
            stream_starts=self._stream_starts,
        )
        handled: list[Handled] = []
        bad: list[tuple[Any, Exception]] = []
        new = 0
        with conn.transaction():
            positions = store.lock_positions(self.group, {(r.topic, r.partition) for r in records})
            start = dict(positions)
            todo: list[tuple[Any, str, dict[str, Any] | DecodeError]] = []
            for record in records:
                source = self._source(record.topic)
                if record.offset < positions[(record.topic, record.partition)]:
                    handled.append(Handled(source, "-", "replayed"))
                    continue
                todo.append((record, source, self._decode(record, source)))
            # Operator actions are applied after the batch's writes are flushed, and changes of
            # ignored records are only recorded (both below; services/mapper/operator_actions.py).
            actions = ActionApplier(
                conn,
                self.ctx.codec,
                self.ctx.layout,
                self.policy,
                max_deletes_per_hour=self.settings.mapper_max_deletes_per_hour,
            )
            later = [t for t in todo if t[1] == "action"]
            ignored = actions.ignored_among(_identities(todo)[0])
            later += [t for t in todo if t[1] == "change" and _ignored(t[2], ignored)]
            todo = [t for t in todo if t[1] != "action" and not _ignored(t[2], ignored)]
            if careful:
                handler.prefetch(*_identities(todo))
            else:
                # The batch's reads, set-based: a constant number of statements (handler.py).
                self._prepare(handler, todo)
            for record, source, datum in todo:
                handled.extend(self._handle(record, source, datum, handler, store, careful, bad))
                positions[(record.topic, record.partition)] = record.offset + 1
                new += 1
            self._flush_writes(store, careful)
            for record, source, datum in later:
                handled.extend(self._handle_extra(record, source, datum, actions, store, bad))
                tp = (record.topic, record.partition)
                positions[tp] = max(positions[tp], record.offset + 1)  # handled out of order
                new += 1
            store.save_positions(
                self.group, {p: o for p, o in positions.items() if o != start[p]}, _now()
            )
            if bad:
                # Dead letters are durable before the positions that skip them commit.
                self._flush([self._park(record, exc) for record, exc in bad])
        return handled, new

    @staticmethod
    def _prepare(
        handler: Handler, todo: Sequence[tuple[Any, str, dict[str, Any] | DecodeError]]
    ) -> None:
        """The fast path's batch reads; a non-retriable failure there (bad input the database
        refuses) is redone input by input, where it becomes that input's dead letter."""
        try:
            handler.prepare([(s, d) for _, s, d in todo if not isinstance(d, DecodeError)])
        except RETRIABLE_DB:
            raise
        except Exception as exc:
            if isinstance(exc, TetherError) and exc.retriable:
                raise
            raise _DirtyBatchError() from exc

    @staticmethod
    def _flush_writes(store: MapperStore, careful: bool) -> None:
        """Send the batch's buffered writes. On the fast path a failure there (a link changed
        under the batch: ``StaleLinkError``; a constraint) cannot be pinned on one input: the
        batch is redone input by input, where it can."""
        try:
            store.flush()
        except RETRIABLE_DB:
            raise
        except (StaleLinkError, psycopg.Error) as exc:
            if careful:
                raise
            raise _DirtyBatchError() from exc

    def _source(self, topic: str) -> str:
        if topic == self.ctx.layout.outcomes:
            return "outcome"
        if topic == self.ctx.layout.operator_actions:
            return "action"
        return "change"

    def _decode(self, record: Any, source: str) -> dict[str, Any] | DecodeError:
        try:
            return self.ctx.codec.decode(record.value, _MESSAGE_TYPES[source])
        except DecodeError as exc:
            return exc

    def _handle_extra(
        self,
        record: Any,
        source: str,
        datum: dict[str, Any] | DecodeError,
        actions: ActionApplier,
        store: MapperStore,
        bad: list[tuple[Any, Exception]],
    ) -> list[Handled]:
        """An operator action, or a change of an ignored record, in a savepoint of its own. An
        action that cannot apply is recorded as rejected by ``ActionApplier``; an input that
        fails unexpectedly rolls back alone and is parked as a dead letter (an action without
        an audit row, so that a re-drive applies it)."""
        if isinstance(datum, DecodeError):
            bad.append((record, datum))
            return [Handled(source, "-", "dead_letter")]
        started = time.perf_counter()
        try:
            with store.conn.transaction():
                if source != "action":
                    return actions.skip_ignored(datum, _now())
                tracing = self.ctx.tracing
                parent = traceparent_of(record.headers) if tracing.enabled else None
                with tracing.span("mapper.action", parent, kind="consumer") as traceparent:
                    actions.traceparent = traceparent
                    result = actions.apply(datum, _now())
        except RETRIABLE_DB:
            raise
        except Exception as exc:
            if isinstance(exc, TetherError) and exc.retriable:
                raise
            if not isinstance(exc, TetherError):
                log.exception("unexpected error handling an operator input: dead letter")
            bad.append((record, exc))
            return [Handled(source, "-", "dead_letter")]
        self.metrics.processing.labels(source).observe(time.perf_counter() - started)
        return result

    def _handle(
        self,
        record: Any,
        source: str,
        datum: dict[str, Any] | DecodeError,
        handler: Handler,
        store: MapperStore,
        careful: bool,
        bad: list[tuple[Any, Exception]],
    ) -> list[Handled]:
        message_type = "Outcome" if source == "outcome" else "ChangeEvent"
        if isinstance(datum, DecodeError):
            bad.append((record, datum))
            return [Handled(source, "-", "dead_letter")]
        started = time.perf_counter()
        handler.wrote = False
        try:
            if careful:
                with store.conn.transaction():  # a savepoint: a failure rolls back only itself
                    result = self._decide(handler, source, datum, record)
            else:
                result = self._decide(handler, source, datum, record)
        except RETRIABLE_DB:
            raise  # connection lost / deadlock / serialization: retry the batch
        except Exception as exc:
            if isinstance(exc, TetherError) and exc.retriable:
                raise
            if not careful and (handler.wrote or isinstance(exc, psycopg.Error)):
                raise _DirtyBatchError() from exc
            if not isinstance(exc, TetherError):
                log.exception("unexpected error handling %s: dead letter", message_type)
            bad.append((record, exc))
            system = self._history_of_dead_letter(store, datum, source == "outcome", exc)
            return [Handled(source, system, "dead_letter")]
        self.metrics.processing.labels(source).observe(time.perf_counter() - started)
        return result

    def _decide(
        self, handler: Handler, source: str, datum: dict[str, Any], record: Any
    ) -> list[Handled]:
        now = _now()
        tracing = self.ctx.tracing
        # Tracing on: the decision is a span continuing the input's trace (its traceparent
        # header), and the commands it writes to the outbox carry this span's context.
        parent = traceparent_of(record.headers) if tracing.enabled else None
        with tracing.span(f"mapper.{source}", parent, kind="consumer") as traceparent:
            handler.traceparent = traceparent
            if source == "outcome":
                return handler.outcome(datum, now)
            return handler.change(datum, now)

    def _park(self, record: Any, exc: Exception) -> Any:
        return self.ctx.dead_letters.park(
            record.value if isinstance(record.value, bytes) else b"",
            exc,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )

    def _history_of_dead_letter(
        self, store: MapperStore, datum: dict[str, Any], is_outcome: bool, exc: Exception
    ) -> str:
        """Record a dead-lettered input against its record/link, for ``explain``."""
        if is_outcome:
            system = str(datum.get("target_system", "-"))
            ref = (system, str(datum.get("target_resource", "-")), datum.get("target_id"))
            link_id = datum.get("link_id")
        else:
            system = str(datum.get("system", "-"))
            ref = (system, str(datum.get("resource", "-")), datum.get("record_id"))
            link_id = None
        store.add_history(
            tenant=str(datum.get("tenant", "")),
            link_id=str(link_id) if link_id else None,
            ref=ref,
            source="outcome" if is_outcome else "change",
            event_id=datum.get("event_id"),
            command_id=datum.get("command_id"),
            decision="dead_letter",
            reason=type(exc).__name__,
            commands=0,
            error_code=exc.code if isinstance(exc, TetherError) else type(exc).__name__,
            error_message=str(exc),
            at=datetime.now(UTC),
        )
        return system

    def _flush(self, futures: Iterable[Any]) -> None:
        try:
            self.ctx.producer.flush()
        except KafkaError as exc:
            raise TransportError(f"flush failed: {type(exc).__name__}") from exc
        for future in futures:
            if future.failed():
                raise TransportError(f"produce failed: {type(future.exception).__name__}")

    # -- step 3 -------------------------------------------------------------------------------

    def _relay_safely(self) -> int:
        """Produce the outbox; -1 when Kafka or PostgreSQL failed (rows stay for next time)."""
        try:
            return self._relay()
        except (*RETRIABLE_DB, TransportError) as exc:
            log.warning("outbox relay failed (%s): retrying next round", type(exc).__name__)
            if self.conn is not None and self.conn.closed:
                self.conn = None
            return -1

    def _relay(self) -> int:
        """Produce unproduced outbox rows in outbox order, flush, mark them produced."""
        conn = self._connection()
        store = MapperStore(conn)
        limit = self.settings.mapper_relay_batch
        total = 0
        while True:
            with conn.transaction():
                if not store.try_relay_lock():
                    return total  # another replica is relaying; it will take these rows too
                rows = store.unproduced(limit)
                if not rows:
                    return total
                producer = self.ctx.producer
                try:
                    futures = [self._send(producer, row) for row in rows]
                except KafkaError as exc:
                    raise TransportError(f"produce failed: {type(exc).__name__}") from exc
                self._flush(futures)
                self._crash("after_produce")
                store.mark_produced([r.seq for r in rows], datetime.now(UTC))
            for row in rows:
                self.ctx.metrics.produced.labels(row.topic).inc()
            total += len(rows)
            if len(rows) < limit:
                return total

    @staticmethod
    def _send(producer: Any, row: OutboxRow) -> Any:
        """Produce one outbox row; a row written with tracing on carries its trace context."""
        headers = kafka_headers(row.traceparent)
        if headers:
            return producer.send(row.topic, key=row.key, value=row.payload, headers=headers)
        return producer.send(row.topic, key=row.key, value=row.payload)

    # -- helpers ------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            dsn = self.settings.postgres_dsn.get_secret_value()
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
            prepare_session(conn)
            self.conn = conn
        return self.conn

    def _crash(self, point: str) -> None:
        if self.crash_point == point:
            log.error("fault injection: crashing at %s", point)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    def _apply_metrics(self, handled: Sequence[Handled]) -> None:
        self.summary.add(handled)
        m = self.metrics
        for item in handled:
            m.events.labels(item.source, item.system, item.result).inc()
            for system, resource, action in item.commands:
                m.commands.labels(system, resource, action).inc()
            for prop, rule in item.conflicts:
                m.conflicts.labels(prop, rule).inc()
            if item.deletes_held:
                m.deletes_held.inc(item.deletes_held)

    def _maintenance(self, force: bool = False) -> None:
        """Refresh the gauges from PostgreSQL and trim old rows, every few seconds."""
        now = time.monotonic()
        if not force and now < self._next_maintenance:
            return
        self._next_maintenance = now + self.settings.mapper_maintenance_interval_seconds
        try:
            conn = self._connection()
            store = MapperStore(conn)
            with conn.transaction():
                self.metrics.set_link_states(store.link_states())
                self.metrics.outbox_backlog.set(store.outbox_backlog())
                open_reviews = store.open_reviews()
                self.metrics.set_open_reviews(open_reviews, tuple(r.value for r in ReviewReason))
                self._open_reviews = sum(open_reviews.values())  # every tenant's
            with conn.transaction():
                store.trim_history(self.settings.mapper_history_per_record)
                retention = timedelta(days=self.settings.mapper_outbox_retention_days)
                store.purge_outbox(datetime.now(UTC) - retention)
        except RETRIABLE_DB as exc:
            log.warning("maintenance skipped: %s", type(exc).__name__)
            if self.conn is not None and self.conn.closed:
                self.conn = None
