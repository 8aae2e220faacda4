"""Extractor test support: both simulators over real HTTP, the real Kafka, in-process extractors.

``Harness`` holds a PowerOffice and a Wix simulator (limits lifted, each in a ``ServerThread``) and
builds extractors on the test's own topic prefix; ``Harness.events()`` reads the changes topics
back with a consumer and the codec.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simulator import (
    Credentials,
    PowerOfficeSimulator,
)
from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simulator import WixSimulator
from services.core.codec import AvroCodec
from services.core.records import unwrap_record
from services.core.service import ServiceContext
from services.core.topics import TopicLayout
from services.extractor.service import Extractor
from services.extractor.settings import ExtractorSettings

CREDS = Credentials()


def partitions_of(
    consumer: KafkaConsumer, topic: str, timeout: float = 15.0
) -> list[TopicPartition]:
    """The topic's partitions, waiting until a just-provisioned topic shows up in the metadata."""
    deadline = time.monotonic() + timeout
    while not (partitions := consumer.partitions_for_topic(topic)):
        assert time.monotonic() < deadline, f"topic {topic} has no partitions"
        time.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def read_topics(bootstrap: str, topics: list[str], timeout: float = 20.0) -> list[Any]:
    """Every message of ``topics`` from the beginning to the current end offsets."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None)
    try:
        tps = [tp for topic in topics for tp in partitions_of(consumer, topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading topics"
            for batch in consumer.poll(timeout_ms=200).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


@dataclass
class Harness:
    bootstrap: str
    prefix: str
    po: PowerOfficeSimulator
    po_server: ServerThread
    wix: WixSimulator
    wix_server: ServerThread
    codec: AvroCodec = field(default_factory=AvroCodec)
    contexts: list[tuple[ServiceContext, Extractor, bool]] = field(default_factory=list)

    @property
    def layout(self) -> TopicLayout:
        return TopicLayout(prefix=self.prefix, partitions=2)

    @property
    def po_admin(self) -> PowerOfficeSimulatorAdmin:
        return PowerOfficeSimulatorAdmin(self.po_server.url)

    @property
    def wix_admin(self) -> WixAdmin:
        return WixAdmin(self.wix_server.url)

    def settings(self, **overrides: Any) -> ExtractorSettings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "topic_prefix": self.prefix,
            "topic_partitions": 2,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "public_port": 0,
            "poweroffice_base_url": self.po.base_url(self.po_server),
            "poweroffice_token_url": self.po.token_url(self.po_server),
            "poweroffice_app_key": CREDS.application_key,
            "poweroffice_client_key": CREDS.client_key,
            "poweroffice_subscription_key": CREDS.subscription_key,
            "poweroffice_requests_per_second": 0,
            "wix_requests_per_minute": 0,
            "wix_base_url": self.wix_server.url,
            "wix_api_key": self.wix.api_key,
            "wix_site_id": self.wix.site_id,
            "poweroffice_page_size": 7,
            "wix_page_size": 7,
            "poll_overlap_seconds": 2.0,
            "reconcile_breaker_max_delete_share": 0.5,
        }
        values.update(overrides)
        return ExtractorSettings(**values)

    def extractor(self, *, start: bool = True, http: bool = False, **overrides: Any) -> Extractor:
        settings = self.settings(**overrides)
        ctx = ServiceContext.create("extractor", settings, install_signals=False)
        extractor = Extractor(ctx, settings)
        self.contexts.append((ctx, extractor, http))
        if http:
            ctx.runtime.http.start()
            assert ctx.runtime.public is not None
            ctx.runtime.public.start()
        if start:
            extractor.start()
        return extractor

    def stop(self, extractor: Extractor) -> None:
        for entry in list(self.contexts):
            if entry[1] is extractor:
                self.contexts.remove(entry)
                close_extractor(*entry)

    def events(
        self, system: str | None = None, resource: str | None = None
    ) -> list[dict[str, Any]]:
        topics = [
            self.layout.changes(s, r)
            for s, r in (
                ("poweroffice", "employees"),
                ("poweroffice", "customers"),
                ("poweroffice", "contact_persons"),
                ("wix", "contacts"),
            )
            if (system is None or s == system) and (resource is None or r == resource)
        ]
        messages = read_topics(self.bootstrap, topics)
        events = [self.codec.decode(m.value, "ChangeEvent") for m in messages]
        return sorted(events, key=lambda e: e["extracted_at"])

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = read_topics(self.bootstrap, [self.layout.deadletters("extractor")])
        return [self.codec.decode(m.value, "DeadLetter") for m in messages]

    def metric(self, extractor: Extractor, name: str, labels: dict[str, str]) -> float | None:
        return extractor.ctx.registry.get_sample_value(name, labels)


def record_of(event: dict[str, Any]) -> dict[str, Any] | None:
    unwrapped = unwrap_record(event["record"])
    return unwrapped[1] if unwrapped else None


def close_extractor(ctx: ServiceContext, extractor: Extractor, http: bool) -> None:
    extractor.close()
    if http:
        ctx.runtime.http.stop()
        assert ctx.runtime.public is not None
        ctx.runtime.public.stop()
    ctx.close()
