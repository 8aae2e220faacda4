"""Fleet test support: tenants on their own simulated Wix sites, replicas in threads, real Kafka.

``Fleets`` registers tenants in the registry (each on its own ``WixSimulator`` over real HTTP,
its API key in its own credentials directory), runs extractor replicas (``Fleet``) in threads of
the test process, and reads back what they emitted and reported.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kafka.partitioner.default import murmur2

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.receiver import PATH
from services.connectors.wix.simulator import WixSimulator
from services.core.codec import AvroCodec
from services.core.kafka import provision_topics
from services.core.service import ServiceContext
from services.core.topics import TopicLayout
from services.extractor.fleet import Fleet
from services.extractor.settings import ExtractorSettings
from services.tenants import credentials
from services.tenants.model import TenantStatus, new_tenant
from services.tenants.registry import TenantDirectory, TenantRegistry
from tests.extractor.support import read_topics

PARTITIONS = 6
PROCESS_SETTINGS = (
    "kafka_bootstrap_servers",
    "topic_prefix",
    "topic_partitions",
    "tenant_partitions",
    "http_host",
    "http_port",
    "public_port",
    "tenants_from_registry",
    "poweroffice_enabled",
    "wix_webhooks_enabled",
    "wix_requests_per_minute",
    "wix_page_size",
    "wix_poll_interval_seconds",
    "poll_overlap_seconds",
    "tenant_session_timeout_seconds",
    "tenant_workers",
)


def tenant_ids(count: int, partitions: int = PARTITIONS) -> list[str]:
    """``count`` tenant ids, spread over the tenants topic's partitions (the producer's default
    partitioner: murmur2 of the key), so that every replica gets some."""
    chosen: list[str] = []
    used: set[int] = set()
    n = 0
    while len(chosen) < count:
        name = f"tenant-{n}"
        partition = (murmur2(name.encode()) & 0x7FFFFFFF) % partitions
        if partition not in used or len(used) == partitions:
            chosen.append(name)
            used.add(partition)
        n += 1
    return chosen


@dataclass
class Site:
    tenant: str
    wix: WixSimulator
    server: ServerThread

    @property
    def admin(self) -> WixAdmin:
        return WixAdmin(self.server.url)


@dataclass
class Replica:
    name: str
    ctx: ServiceContext
    fleet: Fleet
    stopping: threading.Event
    thread: threading.Thread
    public: bool = False

    def tenants(self) -> set[str]:
        return set(self.fleet.units)

    @property
    def webhook_url(self) -> str:
        assert self.ctx.runtime.public is not None
        return f"http://127.0.0.1:{self.ctx.runtime.public.port}{PATH}"

    def deliveries(self, outcome: str, reason: str) -> float:
        labels = {"outcome": outcome, "reason": reason}
        value = self.ctx.registry.get_sample_value(
            "tether_extractor_webhook_deliveries_total", labels
        )
        return value or 0.0

    def stop(self) -> None:
        """A clean stop: the tenants end after their current page, the replica leaves."""
        self.stopping.set()
        self.thread.join(timeout=60)
        if self.public:
            assert self.ctx.runtime.public is not None
            self.ctx.runtime.public.stop()
        self.ctx.close()


@dataclass
class Fleets:
    bootstrap: str
    prefix: str
    secrets: Path
    stack: ExitStack
    sites: dict[str, Site] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    codec: AvroCodec = field(default_factory=AvroCodec)

    @property
    def layout(self) -> TopicLayout:
        return TopicLayout(prefix=self.prefix, partitions=2, tenant_partitions=PARTITIONS)

    def settings(self, **overrides: Any) -> ExtractorSettings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "topic_prefix": self.prefix,
            "topic_partitions": 2,
            "tenant_partitions": PARTITIONS,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "public_port": 0,
            "tenants_from_registry": True,
            "poweroffice_enabled": False,
            "wix_webhooks_enabled": False,
            "wix_requests_per_minute": 0,
            "wix_page_size": 3,
            "wix_poll_interval_seconds": 0.2,
            "poll_overlap_seconds": 1.0,
            "tenant_session_timeout_seconds": 6.0,
            "tenant_workers": 2,
        }
        values.update(overrides)
        return ExtractorSettings(**values)

    def registry(self) -> TenantRegistry:
        return TenantRegistry(self.settings(), self.codec)

    def add_tenant(
        self, tenant: str, contacts: int, *, signing_key: str | None = None, **settings: str
    ) -> Site:
        """A Wix site of its own (its own API key, in the tenant's credentials directory; its app
        installation ``inst-<tenant>``; webhooks signed with ``signing_key``: one app, one key),
        seeded with ``contacts`` contacts, registered as an active tenant."""
        wix = WixSimulator(
            api_key=f"key-{tenant}",
            site_id=f"site-{tenant}",
            instance_id=f"inst-{tenant}",
            private_key_pem=signing_key,
            rate_limit=0,
        )
        server = self.stack.enter_context(wix.server())
        site = Site(tenant, wix, server)
        site.admin.seed(
            [{"info": {"name": {"first": f"P{i}", "last": tenant}}} for i in range(contacts)]
        )
        secrets = self.secrets / tenant
        credentials.write(secrets, {"wix_api_key": wix.api_key})
        registry = self.registry()
        try:
            registry.add(
                new_tenant(
                    tenant,
                    settings={
                        "wix_base_url": server.url,
                        "wix_site_id": wix.site_id,
                        "wix_instance_id": wix.instance_id,
                        **settings,
                    },
                    credentials_ref=f"dir:{secrets}",
                    by="test",
                )
            )
        finally:
            registry.close()
        self.sites[tenant] = site
        return site

    def process_env(self, replica: str, secrets_dir: Path) -> dict[str, str]:
        """The ``TETHER_*`` environment of a replica run as its own process (``settings()``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env.update(
            {
                f"TETHER_{name.upper()}": str(value).lower()
                if isinstance(value, bool)
                else str(value)
                for name, value in self.settings().model_dump().items()
                if name in PROCESS_SETTINGS
            }
        )
        env.update({"HOSTNAME": replica, "TETHER_SECRETS_DIR": str(secrets_dir)})
        return env

    def provision(self) -> None:
        provision_topics(self.settings())

    def start_replica(self, name: str, *, public: bool = False, **overrides: Any) -> Replica:
        settings = self.settings(**overrides)
        ctx = ServiceContext.create("extractor", settings, install_signals=False)
        fleet = Fleet(ctx, settings, replica=name)
        if public:
            assert ctx.runtime.public is not None
            ctx.runtime.public.start()
        stopping = threading.Event()
        thread = threading.Thread(target=fleet.run, args=(stopping,), name=name, daemon=True)
        replica = Replica(name, ctx, fleet, stopping, thread, public)
        thread.start()
        self.replicas.append(replica)
        return replica

    def settled(self) -> bool:
        """Every replica owns some of the tenants topic's partitions, each partition has one
        owner, and every tenant (all active) runs on one replica."""
        owned = [r.fleet.partitions() for r in self.replicas]
        every = set().union(*owned)
        running = [r.tenants() for r in self.replicas]
        return (
            all(owned)
            and len(every) == sum(map(len, owned)) == PARTITIONS
            and sum(map(len, running)) == len(set().union(*running)) == len(self.sites)
        )

    def owners(self) -> dict[str, str]:
        """Per tenant running somewhere, the replica that runs it."""
        return {t: r.name for r in self.replicas for t in r.tenants()}

    def stop_replica(self, replica: Replica) -> None:
        self.replicas.remove(replica)
        replica.stop()

    def events(self, tenant: str | None = None) -> list[dict[str, Any]]:
        messages = read_topics(self.bootstrap, [self.layout.changes("wix", "contacts")])
        events = [self.codec.decode(m.value, "ChangeEvent") for m in messages]
        return [e for e in events if tenant is None or e["tenant"] == tenant]

    def statuses(self) -> dict[str, TenantStatus]:
        directory = TenantDirectory(self.settings(), self.codec)
        try:
            directory.refresh()
            return directory.statuses()
        finally:
            directory.close()

    def versions(self, tenant: str) -> list[tuple[str, str]]:
        """What the tenant's site holds: (contact id, revision) of every contact."""
        return sorted((c["id"], str(c["revision"])) for c in self.sites[tenant].admin.contacts())


def signing_key() -> str:
    """One app's webhook signing key (PEM), shared by every site of the test."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def emitted(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(record id, version) of every event, sorted: duplicates stay visible."""
    return sorted((e["record_id"], e["source_version"]) for e in events)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Wait for an outcome of asynchronous work (the bound only ends a hung test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)
