"""The tenant registry on Kafka: `TenantDirectory` reads it, `TenantRegistry` changes it.

The registry is two compacted topics (``services/core/topics.py``), so it is event-sourced like the
rest of Tether and needs no database of its own:

- ``<prefix>.tenants`` — ``tether.Tenant`` records keyed by tenant id: what operators want. Its
  partitions are how the extractor group shares the tenants' work (``services/extractor``): Kafka
  assigns partitions, so tenants, to replicas and moves them when one fails;
- ``<prefix>.tenant-status`` — ``tether.TenantStatus`` records keyed by tenant id: what the owning
  extractor replica reports.

A change is one produced record, acknowledged by the broker (``acks=all``) before the command
returns; every service that follows the directory sees it within its refresh interval, so adding,
pausing or removing a tenant needs no restart. Writers read the latest registration, apply the
pure rule of ``model.py`` and produce the next version; two operators changing the same tenant at
the same moment both succeed and the later record wins (the registration carries its version and
who changed it, and ``tether tenants show`` prints both).

A record that does not decode is logged (no value, it may be personal) and skipped: the key keeps
its previous registration. A tombstone (null value) erases the key.

Imports: kafka-python, the core codec/kafka/settings modules and ``services.tenants.model``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.errors import DecodeError, TransportError
from services.core.kafka import layout_from, make_consumer, make_producer
from services.core.settings import TetherSettings
from services.core.topics import tenant_key
from services.tenants import model
from services.tenants.model import DesiredState, Tenant, TenantStatus

log = logging.getLogger("tether.tenants")

Listener = Callable[[Tenant | None, Tenant | None], None]


class TenantDirectory:
    """Every tenant's latest registration and status, read from the compacted topics.

    ``refresh()`` reads what was added since the last call, up to the end offsets it sees at the
    call (the first call reads from the beginning): afterwards the directory holds every change
    acknowledged before the call. ``listen(fn)`` is told ``fn(before, after)`` for each changed
    registration (``after`` None: erased). The mappings returned are copies, safe to keep."""

    def __init__(self, settings: TetherSettings, codec: AvroCodec) -> None:
        self.settings = settings
        self.codec = codec
        layout = layout_from(settings)
        self._types = {layout.tenants: "Tenant", layout.tenant_status: "TenantStatus"}
        self._consumer: Any = None
        self._tenants: dict[str, Tenant] = {}
        self._statuses: dict[str, TenantStatus] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        # One reader at a time: the consumer is not thread-safe, and a directory may be shared by
        # a follower thread and a writer (TenantRegistry.latest) in one process (the console).
        self._reading = threading.Lock()
        self._loaded = False
        self._refreshes = 0

    # -- reading -------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def loaded(self) -> bool:
        """Whether one refresh completed (before it, an empty directory means 'not read yet')."""
        return self._loaded

    @property
    def refreshes(self) -> int:
        """Refreshes completed so far: a tenant absent after a refresh that started after it was
        looked for is absent indeed, not merely not read yet."""
        return self._refreshes

    def tenants(self) -> dict[str, Tenant]:
        with self._lock:
            return dict(self._tenants)

    def statuses(self) -> dict[str, TenantStatus]:
        with self._lock:
            return dict(self._statuses)

    def get(self, tenant: str) -> Tenant | None:
        with self._lock:
            return self._tenants.get(tenant)

    def status(self, tenant: str) -> TenantStatus | None:
        with self._lock:
            return self._statuses.get(tenant)

    def refresh(self, timeout: float = 30.0) -> int:
        """Read up to the current end of both topics; returns how many records were read."""
        with self._reading:
            return self._read_to_end(time.monotonic() + timeout)

    def _read_to_end(self, deadline: float) -> int:
        try:
            consumer = self._consumer or self._open(deadline)
            tps = list(consumer.assignment())
            end = consumer.end_offsets(tps)
            read = 0
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TransportError("timed out reading the tenant registry")
                for batch in consumer.poll(timeout_ms=200).values():
                    for record in batch:
                        self._apply(record)
                        read += 1
        except KafkaError as exc:
            raise TransportError(f"cannot read the tenant registry: {type(exc).__name__}") from exc
        self._loaded = True
        self._refreshes += 1
        return read

    def _open(self, deadline: float) -> Any:
        consumer = make_consumer(self.settings, None)  # no group: reads all, commits nothing
        tps: list[TopicPartition] = []
        for topic in self._types:
            # A topic provisioned a moment ago may not be in the broker's metadata yet.
            partitions = consumer.partitions_for_topic(topic) or set()
            while not partitions:
                if time.monotonic() > deadline:
                    consumer.close()
                    raise TransportError(f"topic {topic} has no partitions (not provisioned?)")
                time.sleep(0.1)
                partitions = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        return consumer

    def _apply(self, record: Any) -> None:
        message_type = self._types[record.topic]
        if record.key is None:
            log.warning("a keyless message on %s skipped", record.topic)
            return
        tenant = record.key.decode("utf-8", "replace")
        if record.value is None:
            decoded: Tenant | TenantStatus | None = None
        else:
            try:
                datum = self.codec.decode(record.value, message_type)
                decoded = (
                    Tenant.from_datum(datum)
                    if message_type == "Tenant"
                    else TenantStatus.from_datum(datum)
                )
            except (DecodeError, ValueError) as exc:
                log.warning(
                    "undecodable %s record skipped (the key keeps its previous value)",
                    message_type,
                    extra={"fields": {"offset": record.offset, "error": type(exc).__name__}},
                )
                return
        with self._lock:
            if message_type == "TenantStatus":
                if isinstance(decoded, TenantStatus):
                    self._statuses[tenant] = decoded
                else:
                    self._statuses.pop(tenant, None)
                return
            before = self._tenants.get(tenant)
            if isinstance(decoded, Tenant):
                self._tenants[tenant] = decoded
            else:
                self._tenants.pop(tenant, None)
        after = decoded if isinstance(decoded, Tenant) else None
        if before != after:
            for listener in self._listeners:
                listener(before, after)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class DirectoryFollower:
    """Keeps a :class:`TenantDirectory` fresh from a daemon thread (services that serve every
    tenant: the loader, the console). A failing refresh is logged and retried; the directory
    keeps what it had."""

    def __init__(self, directory: TenantDirectory, interval: float = 2.0) -> None:
        self.directory = directory
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tenant-directory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.directory.refresh()
            except TransportError as exc:
                log.warning("tenant registry not refreshed: %s", exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.directory.close()


class TenantRegistry:
    """Changes to the registry: each one produced and acknowledged before the call returns."""

    def __init__(
        self,
        settings: TetherSettings,
        codec: AvroCodec,
        producer: KafkaProducer | None = None,
        directory: TenantDirectory | None = None,
        ack_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.layout = layout_from(settings)
        self._own_producer = producer is None
        self.producer = producer or make_producer(settings, "tenants")
        self.directory = directory or TenantDirectory(settings, codec)
        self.ack_timeout = ack_timeout

    def _send(self, topic: str, key: str, value: bytes | None) -> None:
        try:
            self.producer.send(topic, key=tenant_key(key), value=value).get(
                timeout=self.ack_timeout
            )
        except KafkaError as exc:
            raise TransportError(f"tenant registry not written: {type(exc).__name__}") from exc

    def put(self, tenant: Tenant) -> Tenant:
        self._send(
            self.layout.tenants, tenant.tenant, self.codec.encode("Tenant", tenant.to_datum())
        )
        return tenant

    def put_status(self, status: TenantStatus) -> None:
        self._send(
            self.layout.tenant_status,
            status.tenant,
            self.codec.encode("TenantStatus", status.to_datum()),
        )

    def tombstone(self, tenant: str) -> None:
        """Erase the tenant's registration and status (offboarding; ``erasure``)."""
        self._send(self.layout.tenants, tenant, None)
        self._send(self.layout.tenant_status, tenant, None)

    # -- operator commands (read latest, apply the rule, write) -------------------------------

    def latest(self, tenant: str) -> Tenant | None:
        self.directory.refresh()
        return self.directory.get(tenant)

    def add(self, proposed: Tenant) -> Tenant:
        return self.put(model.add(self.latest(proposed.tenant), proposed))

    def set_state(self, tenant: str, state: DesiredState, *, by: str, reason: str) -> Tenant:
        existing = self.latest(tenant)
        changed = model.set_state(existing, tenant, state, by=by, reason=reason)
        return changed if changed is existing else self.put(changed)

    def update_settings(
        self, tenant: str, settings: dict[str, str], *, by: str, reason: str
    ) -> Tenant:
        existing = self.latest(tenant)
        if existing is None:
            raise model.TenantNotFoundError(f"no tenant {tenant!r}")
        merged = {**existing.settings, **settings}
        return self.put(existing.changed(settings=merged, by=by, reason=reason))

    def close(self) -> None:
        if self._own_producer:
            self.producer.flush(timeout=self.ack_timeout)
            self.producer.close(timeout=self.ack_timeout)
        self.directory.close()


def running(tenants: Iterable[Tenant]) -> list[str]:
    """The ids of the tenants whose work should run, sorted."""
    return sorted(t.tenant for t in tenants if t.runs)
