"""Test harness: a real loader (its own thread, real Kafka) against both simulators over HTTP.

``Stack`` starts the Wix and PowerOffice simulators in-process; ``LoaderHarness`` provisions a
topic prefix, starts ``LoaderService`` on the shared runtime (as ``tether loader`` does, minus the
signal handlers), sends commands and reads outcomes and dead letters back from Kafka.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import SecretStr

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simulator import (
    Credentials,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simulator import WixSimulator
from services.core.codec import AvroCodec, default_registry
from services.core.kafka import provision_topics
from services.core.records import unwrap_record
from services.core.service import ServiceContext
from services.core.topics import link_key
from services.loader.messages import command_datum
from services.loader.plan import Action, LoaderCommand
from services.loader.service import LoaderService
from services.loader.settings import LoaderSettings

CODEC = AvroCodec(default_registry())
PO_CREDS = Credentials()


@dataclass
class Stack:
    """Both simulators, served on loopback ports."""

    wix: WixSimulator
    wix_server: ServerThread
    po: PowerOfficeSimulator
    po_server: ServerThread
    wix_admin: WixAdmin = field(init=False)
    po_admin: PowerOfficeSimulatorAdmin = field(init=False)

    def __post_init__(self) -> None:
        self.wix_admin = WixAdmin(self.wix_server.url)
        self.po_admin = PowerOfficeSimulatorAdmin(self.po_server.url)

    @classmethod
    def start(cls, *, wix_limit: int = 0, po_limits: SimulatorLimits | None = None) -> Stack:
        wix = WixSimulator(rate_limit=wix_limit)
        po = PowerOfficeSimulator(limits=po_limits or SimulatorLimits.lifted())
        return cls(wix, wix.server().start(), po, po.serve().start())

    def stop(self) -> None:
        self.wix_admin.close()
        self.po_admin.close()
        self.wix_server.stop()
        self.po_server.stop()
        self.wix.close()

    def settings(self, bootstrap: str, prefix: str, **overrides: Any) -> LoaderSettings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": bootstrap,
            "topic_prefix": prefix,
            "topic_partitions": 3,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "poll_timeout_ms": 100,
            "wix_base_url": self.wix_server.url,
            "wix_api_key": SecretStr(self.wix.api_key),
            "wix_site_id": self.wix.site_id,
            "wix_requests_per_minute": 0,
            "poweroffice_base_url": self.po.base_url(self.po_server),
            "poweroffice_token_url": self.po.token_url(self.po_server),
            "poweroffice_app_key": SecretStr(PO_CREDS.application_key),
            "poweroffice_client_key": SecretStr(PO_CREDS.client_key),
            "poweroffice_subscription_key": SecretStr(PO_CREDS.subscription_key),
            "poweroffice_requests_per_second": 0,
            "loader_retry_initial_seconds": 0.05,
            "loader_retry_max_seconds": 0.2,
            "loader_client_timeout_seconds": 2.0,
            "loader_client_max_attempts": 2,
            "loader_concurrency": 4,
            "loader_unassigned_restart_seconds": 5.0,
        }
        values.update(overrides)
        return LoaderSettings(**values)

    def wix_count(self, operation: str, status: int | None = 200) -> int:
        """Requests the Wix simulator handled (after fault injection) for an operation."""
        return sum(
            n
            for (_m, op, s), n in list(self.wix.counters.items())
            if op == operation and (status is None or s == status)
        )

    def po_count(self, method: str, resource: str, status: int | None = None) -> int:
        return self.po.count(method=method, resource=resource, status=status)


class LoaderHarness:
    """One loader process (as a thread) on its own topics."""

    def __init__(self, stack: Stack, bootstrap: str, prefix: str | None = None, **overrides: Any):
        self.stack = stack
        self.prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
        self.settings = stack.settings(bootstrap, self.prefix, **overrides)
        provision_topics(self.settings)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
        self._outcomes: dict[str, list[dict[str, Any]]] = {}
        self._reader = _TopicReader(
            bootstrap, f"{self.prefix}.outcomes", self.settings.topic_partitions
        )
        self._dead = _TopicReader(bootstrap, f"{self.prefix}.deadletters.loader", 1)
        self.ctx: ServiceContext | None = None
        self.service: LoaderService | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, **options: Any) -> LoaderHarness:
        """``options``: ``LoaderService.from_settings``'s (a tenant breaker, a label function)."""
        self.ctx = ServiceContext.create("loader", self.settings, install_signals=False)
        self.service = LoaderService.from_settings(self.ctx, self.settings, **options)
        self._thread = threading.Thread(
            target=self.ctx.runtime.run, args=(self.service.run,), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.service.follower.caught_up:
            assert time.monotonic() < deadline, "loader did not load its index"
            time.sleep(0.02)
        return self

    def stop(self) -> float:
        """SIGTERM-equivalent; returns how long the drain took."""
        assert self.ctx is not None and self.service is not None and self._thread is not None
        started = time.monotonic()
        self.ctx.runtime.stopping.set()
        self._thread.join(timeout=25)
        took = time.monotonic() - started
        assert not self._thread.is_alive(), "loader did not stop"
        self.service.close()
        self.ctx.close()
        return took

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.stop()
        self.producer.close()
        self._reader.close()
        self._dead.close()

    # -- I/O ---------------------------------------------------------------------------------------

    def send(self, command: LoaderCommand) -> LoaderCommand:
        payload = CODEC.encode("Command", command_datum(command))
        self.send_raw(command.system, command.resource, payload, link_key(command.link_id))
        return command

    def send_raw(self, system: str, resource: str, payload: bytes, key: bytes = b"k") -> None:
        topic = f"{self.prefix}.commands.{system}.{resource}"
        self.producer.send(topic, key=key, value=payload).get(timeout=10)

    def outcomes(self) -> list[dict[str, Any]]:
        return [CODEC.decode(v, "Outcome") for v in self._reader.read()]

    def outcomes_for(self, command_id: str) -> list[dict[str, Any]]:
        return [o for o in self.outcomes() if o["command_id"] == command_id]

    def wait_outcome(self, command_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.outcomes_for(command_id)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no outcome for {command_id} within {timeout}s")

    def dead_letters(self) -> list[dict[str, Any]]:
        return [CODEC.decode(v, "DeadLetter") for v in self._dead.read()]

    def wait_dead_letters(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.dead_letters()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} dead letters within {timeout}s")

    def committed(self) -> int:
        """Sum of the loader group's committed offsets over the command topics."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers.split(","),
            group_id=f"{self.prefix}-loader",
            enable_auto_commit=False,
        )
        try:
            total = 0
            for system, resources in (
                ("wix", ("contacts",)),
                ("poweroffice", ("employees", "customers", "contact_persons")),
            ):
                for resource in resources:
                    topic = f"{self.prefix}.commands.{system}.{resource}"
                    for p in range(self.settings.topic_partitions):
                        total += consumer.committed(TopicPartition(topic, p)) or 0
            return total
        finally:
            consumer.close()


class _TopicReader:
    """Reads a whole topic (all partitions) incrementally, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic = topic
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False
        )
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        self._values: list[bytes] = []

    def read(self) -> list[bytes]:
        for batch in self._consumer.poll(timeout_ms=100).values():
            self._values.extend(r.value for r in batch)
        return list(self._values)

    def close(self) -> None:
        self._consumer.close()


# -- command builders ------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def wix_create(fields: dict[str, str | None], **kw: Any) -> LoaderCommand:
    link = kw.pop("link_id", new_id())
    return LoaderCommand(
        command_id=kw.pop("command_id", new_id()),
        tenant="default",
        link_id=link,
        system="wix",
        resource="contacts",
        action=Action.CREATE,
        fields=fields,
        idempotency_key=kw.pop("idempotency_key", link),
        **kw,
    )


def wix_update(contact: dict[str, Any], fields: dict[str, str | None], **kw: Any) -> LoaderCommand:
    return LoaderCommand(
        command_id=kw.pop("command_id", new_id()),
        tenant="default",
        link_id=kw.pop("link_id", new_id()),
        system="wix",
        resource="contacts",
        action=Action.UPDATE,
        target_id=contact["id"],
        fields=fields,
        expected_revision=kw.pop("expected_revision", contact.get("revision")),
        target_record=kw.pop("target_record", contact),
        **kw,
    )


def po_command(resource: str, action: Action, **kw: Any) -> LoaderCommand:
    return LoaderCommand(
        command_id=kw.pop("command_id", new_id()),
        tenant="default",
        link_id=kw.pop("link_id", new_id()),
        system="poweroffice",
        resource=resource,
        action=action,
        **kw,
    )


def record_of(outcome: dict[str, Any]) -> dict[str, Any] | None:
    unwrapped = unwrap_record(outcome["target_record"])
    return unwrapped[1] if unwrapped is not None else None
