"""Test support for the mapper service: event builders, an in-process harness, topic readers.

The harness runs the real ``Mapper`` loop (real Kafka, real PostgreSQL) in the test's thread:
``harness.send(...)`` produces ChangeEvents/Outcomes to the test's own topics and
``harness.drain()`` runs loop iterations until the mapper has consumed everything sent so far.
``read_topic`` reads a topic from the beginning up to its end offsets (no timing involved).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from prometheus_client import CollectorRegistry

from services.core.codec import AvroCodec
from services.core.kafka import layout_from, provision_topics
from services.core.metrics import CoreMetrics
from services.core.public_http import PublicServer
from services.core.records import wrap_record
from services.core.runtime import ServiceRuntime
from services.core.service import ServiceContext
from services.core.topics import TopicLayout, link_key, record_key
from services.mapper.loop import Mapper
from services.mapper.settings import MapperSettings
from tests.mapper_domain import support as domain_records

ROOT = Path(__file__).resolve().parents[2]
TENANT = "default"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DEADLINE_SECONDS = 60.0

_ids = itertools.count(1)


def ts(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def po_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def wix_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------


def employee(
    record_id: int,
    first: str | None = "Ola",
    last: str | None = "Nordmann",
    phone: str | None = "912 34 567",
    email: str | None = None,
    at: datetime = T0,
    **extra: Any,
) -> dict[str, Any]:
    """The domain tests' employee, as the API returns it (with its change stamp)."""
    stamp = {"LastChangedDateTimeOffset": po_stamp(at)}
    return domain_records.employee(record_id, first, last, phone, email, **stamp, **extra)


def customer(
    record_id: int,
    first: str | None = "Kari",
    last: str | None = "Hansen",
    email: str | None = "kari@example.no",
    at: datetime = T0,
    **extra: Any,
) -> dict[str, Any]:
    stamp = {"LastChangedDateTimeOffset": po_stamp(at)}
    return domain_records.customer(record_id, first, last, email, **stamp, **extra)


def contact_person(
    record_id: int,
    contact_id: int,
    first: str | None = "Per",
    last: str | None = "Olsen",
    email: str | None = "per@example.no",
    at: datetime = T0,
) -> dict[str, Any]:
    stamp = {"LastChangedDateTimeOffset": po_stamp(at)}
    return domain_records.contact_person(record_id, contact_id, first, last, email, **stamp)


def wix_contact(
    contact_id: str,
    first: str | None = "Ola",
    last: str | None = "Nordmann",
    email: str | None = None,
    phone: str | None = None,
    revision: int = 1,
    at: datetime = T0,
    extra_emails: tuple[str, ...] = (),
) -> dict[str, Any]:
    emails = [{"id": "e1", "tag": "MAIN", "email": email, "primary": True}] if email else []
    emails += [
        {"id": f"e{i + 2}", "tag": "WORK", "email": e, "primary": False}
        for i, e in enumerate(extra_emails)
    ]
    phones = (
        [{"id": "p1", "tag": "MOBILE", "countryCode": "NO", "phone": phone, "primary": True}]
        if phone
        else []
    )
    name = {k: v for k, v in (("first", first), ("last", last)) if v is not None}
    return {
        "id": contact_id,
        "revision": revision,
        "createdDate": wix_stamp(T0),
        "updatedDate": wix_stamp(at),
        "info": {"name": name, "emails": {"items": emails}, "phones": {"items": phones}},
        "primaryInfo": {"email": email, "phone": phone},
    }


# ------------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------------


def change_event(
    system: str,
    resource: str,
    record_id: str,
    record: dict[str, Any] | None,
    at: datetime,
    *,
    operation: str = "UPSERT",
    source_version: str | None = None,
    parent_id: str | None = None,
    merged_ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "event_id": f"ev-{system}-{resource}-{record_id}-{next(_ids)}",
        "tenant": TENANT,
        "system": system,
        "resource": resource,
        "record_id": record_id,
        "operation": operation,
        "origin": "POLL",
        "source_timestamp": at,
        "source_version": source_version,
        "extracted_at": at,
        "record": wrap_record(system, resource, record) if record is not None else None,
        "merged_ids": list(merged_ids),
        "parent_id": parent_id,
    }


def po_event(resource: str, record: dict[str, Any], at: datetime) -> dict[str, Any]:
    parent = str(record["ContactId"]) if resource == "contact_persons" else None
    return change_event(
        "poweroffice",
        resource,
        str(record["Id"]),
        record,
        at,
        source_version=record.get("LastChangedDateTimeOffset"),
        parent_id=parent,
    )


def po_delete(resource: str, record_id: int, at: datetime) -> dict[str, Any]:
    return change_event("poweroffice", resource, str(record_id), None, at, operation="DELETE")


def wix_event(contact: dict[str, Any], at: datetime) -> dict[str, Any]:
    return change_event(
        "wix", "contacts", contact["id"], contact, at, source_version=str(contact["revision"])
    )


def outcome_event(
    command: dict[str, Any],
    status: str,
    *,
    target_record: dict[str, Any] | None = None,
    target_id: str | None = None,
    error_code: str | None = None,
    at: datetime = T0,
) -> dict[str, Any]:
    system, resource = command["target_system"], command["target_resource"]
    revision = None
    if target_record is not None and system == "wix":
        revision = str(target_record["revision"])
    return {
        "command_id": command["command_id"],
        "tenant": command["tenant"],
        "link_id": command["link_id"],
        "target_system": system,
        "target_resource": resource,
        "target_id": target_id if target_id is not None else command["target_id"],
        "action": command["action"],
        "status": status,
        "target_record": wrap_record(system, resource, target_record) if target_record else None,
        "target_revision": revision,
        "error_code": error_code,
        "error_message": None,
        "attempts": 1,
        "completed_at": at,
    }


# ------------------------------------------------------------------------------------------------
# Harness
# ------------------------------------------------------------------------------------------------


def mapper_settings(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, **overrides: Any
) -> MapperSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "topic_partitions": 2,
        "postgres_dsn": pg_dsn,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "public_port": 0,
        "poll_timeout_ms": 100,
        "mapper_maintenance_interval_seconds": 0.2,
        "mapper_provision_topics": False,  # the harness provisions them once
    }
    values.update(overrides)
    return MapperSettings(**values)


def make_context(settings: MapperSettings) -> ServiceContext:
    """The shared service context, built without touching logging or signal handlers."""
    registry = CollectorRegistry()
    return ServiceContext(
        name="mapper",
        settings=settings,
        registry=registry,
        metrics=CoreMetrics(registry, "mapper"),
        codec=AvroCodec(),
        layout=layout_from(settings),
        runtime=ServiceRuntime(
            "mapper",
            registry,
            settings.http_host,
            settings.http_port,
            public=PublicServer(settings.http_host, settings.public_port),
        ),
    )


@dataclass
class Harness:
    settings: MapperSettings
    codec: AvroCodec = field(default_factory=AvroCodec)
    sent: int = 0
    baseline: int = 0
    mapper: Mapper | None = None
    ctx: ServiceContext | None = None
    http_started: bool = False
    _producer: KafkaProducer | None = None

    @property
    def layout(self) -> TopicLayout:
        return layout_from(self.settings)

    @property
    def dsn(self) -> str:
        return self.settings.postgres_dsn.get_secret_value()

    def provision(self) -> None:
        provision_topics(self.settings)

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all"
            )
        return self._producer

    # -- input ---------------------------------------------------------------------------------

    def send_change(self, datum: dict[str, Any]) -> None:
        topic = self.layout.changes(datum["system"], datum["resource"])
        key = record_key(datum["tenant"], datum["system"], datum["resource"], datum["record_id"])
        self.send_raw(topic, key, self.codec.encode("ChangeEvent", datum))

    def send_outcome(self, datum: dict[str, Any]) -> None:
        self.send_raw(
            self.layout.outcomes, link_key(datum["link_id"]), self.codec.encode("Outcome", datum)
        )

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.producer.send(topic, key=key, value=value).get(timeout=30)
        self.sent += 1

    # -- the mapper ----------------------------------------------------------------------------

    def start(self, *, replay: bool = False, **overrides: Any) -> Mapper:
        """Start a mapper; it will consume what is sent from now on (everything: ``replay``)."""
        self.baseline = 0 if replay else self.sent
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        self.ctx = make_context(settings)
        self.mapper = Mapper(self.ctx, settings)
        self.mapper.start()
        return self.mapper

    def serve_http(self) -> tuple[int, int]:
        """Start the mapper's HTTP ports; returns (public port with /explain, metrics port)."""
        assert self.ctx is not None and self.ctx.runtime.public is not None
        from services.mapper import http

        http.install(
            self.ctx.runtime.public,
            http.ExplainEndpoint(lambda: self.dsn, self.settings.tenant),
        )
        self.ctx.runtime.http.start()
        self.ctx.runtime.public.start()
        self.http_started = True
        return self.ctx.runtime.public.port, self.ctx.runtime.http.port

    def drain(self, until: Callable[[], bool] | None = None) -> None:
        """Run loop iterations until everything sent was consumed (and ``until()`` holds)."""
        mapper = self.mapper
        assert mapper is not None
        deadline = time.monotonic() + DEADLINE_SECONDS
        while mapper.consumed < self.sent - self.baseline or (until is not None and not until()):
            assert time.monotonic() < deadline, "the mapper did not consume its input"
            mapper.run_once()
        mapper.run_once()  # one more round: nothing left in flight

    def stop(self) -> None:
        if self.mapper is not None:
            self.mapper.close()
            self.mapper = None
        if self.ctx is not None:
            if self.http_started:
                self.ctx.runtime.http.stop()
                self.http_started = False
            if self.ctx.runtime.public is not None:
                self.ctx.runtime.public.stop()  # closes its socket even when never started
            self.ctx.close()
            self.ctx = None

    def close(self) -> None:
        self.stop()
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    # -- output --------------------------------------------------------------------------------

    def commands(self) -> list[dict[str, Any]]:
        """Every command on every command topic (in topic/partition/offset order)."""
        return [
            self.codec.decode(value, "Command")
            for _, value in read_topics(
                self.settings.kafka_bootstrap_servers, self.layout.all_commands()
            )
        ]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [
            self.codec.decode(value, "DeadLetter")
            for _, value in read_topics(
                self.settings.kafka_bootstrap_servers, [self.layout.deadletters("mapper")]
            )
        ]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params).fetchall()


@contextmanager
def harness(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, **overrides: Any
) -> Iterator[Harness]:
    h = Harness(mapper_settings(kafka_bootstrap, topic_prefix, pg_dsn, **overrides))
    h.provision()
    try:
        yield h
    finally:
        h.close()


def read_topics(bootstrap: str, topics: list[str]) -> list[tuple[bytes | None, bytes]]:
    """Every message of ``topics`` from the beginning to the current end offsets."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        # A topic created moments ago may not be in this client's metadata yet: ask again.
        while not all(consumer.partitions_for_topic(topic) for topic in topics):
            assert time.monotonic() < deadline, f"topics unknown to the broker: {topics}"
            time.sleep(0.1)
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: dict[TopicPartition, list[tuple[bytes | None, bytes]]] = {tp: [] for tp in partitions}
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read the topics to their end"
            for tp, batch in consumer.poll(timeout_ms=200).items():
                out[tp].extend((r.key, r.value) for r in batch if r.offset < end[tp])
        return [m for tp in partitions for m in out[tp]]
    finally:
        consumer.close()


def dump_state(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every mapper table, rows sorted (timestamps of production included)."""
    with psycopg.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'mapper\\_%' ORDER BY 1"
            )
        ]
        return {
            table: sorted(
                conn.execute(f"SELECT * FROM {table}").fetchall(),
                key=repr,
            )
            for table in tables
        }


def reset_group_to_beginning(bootstrap: str, group: str, topics: list[str]) -> None:
    """What an operator does to replay: the (stopped) group's offsets back to the earliest."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
    finally:
        consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.reset_group_offsets(group, dict.fromkeys(partitions, OffsetSpec.EARLIEST))
    finally:
        admin.close()


def mapper_process(settings: MapperSettings, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """``tether mapper`` as its own process, configured like Kubernetes would."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    environ.update(
        {
            "TETHER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "TETHER_TOPIC_PREFIX": settings.topic_prefix,
            "TETHER_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "TETHER_POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
            "TETHER_HTTP_HOST": "127.0.0.1",
            "TETHER_HTTP_PORT": "0",
            "TETHER_PUBLIC_PORT": "0",
            "TETHER_POLL_TIMEOUT_MS": "100",
            "TETHER_SECRETS_DIR": str(log_path.parent / "no-secrets"),
            **env,
        }
    )
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the process' lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "mapper"],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
