"""The wiring every service's ``main`` starts from: one place that builds the shared parts.

``ServiceContext.create(name, settings)`` configures JSON logging, builds the metrics registry,
the core metrics, the codec, the topic layout, the runtime (HTTP port with a Kafka readiness
check) and, on demand, an idempotent producer and the dead-letter writer. A service adds its own
readiness checks (the mapper: PostgreSQL), routes (the extractor: the Wix webhook) and metrics,
then calls ``ctx.runtime.run(loop)``.

Every service loop has the same shape, its steps numbered in comments where they run:
``1. poll -> 2. handle -> 3. flush produced messages -> 4. persist -> 5. commit offsets``
(the mapper persists before it produces: its outbox makes produce-after-commit safe).

Imports: the core modules and kafka-python / prometheus_client through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from services.core.codec import AvroCodec, default_codec
from services.core.deadletters import DeadLetterWriter
from services.core.kafka import layout_from, make_producer
from services.core.metrics import CoreMetrics
from services.core.runtime import CachedCheck, ServiceRuntime, configure_logging, tcp_reachable
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout


@dataclass
class ServiceContext:
    name: str
    settings: TetherSettings
    registry: CollectorRegistry
    metrics: CoreMetrics
    codec: AvroCodec
    layout: TopicLayout
    runtime: ServiceRuntime
    _producer: KafkaProducer | None = field(default=None, init=False)
    _dead_letters: DeadLetterWriter | None = field(default=None, init=False)

    @classmethod
    def create(
        cls, name: str, settings: TetherSettings, *, install_signals: bool = True
    ) -> ServiceContext:
        configure_logging(name, settings.log_level, settings.log_personal_data)
        registry = CollectorRegistry()
        runtime = ServiceRuntime(
            name,
            registry,
            settings.http_host,
            settings.http_port,
            settings.shutdown_timeout_seconds,
        )
        runtime.http.add_check(
            "kafka", CachedCheck(lambda: tcp_reachable(settings.kafka_bootstrap_servers))
        )
        if install_signals:
            runtime.install_signal_handlers()
        return cls(
            name=name,
            settings=settings,
            registry=registry,
            metrics=CoreMetrics(registry, name),
            codec=default_codec(),
            layout=layout_from(settings),
            runtime=runtime,
        )

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = make_producer(self.settings, self.name)
        return self._producer

    @property
    def dead_letters(self) -> DeadLetterWriter:
        if self._dead_letters is None:
            self._dead_letters = DeadLetterWriter(
                self.producer,
                self.codec,
                self.layout,
                self.name,
                self.metrics,
                self.settings.tenant,
            )
        return self._dead_letters

    def send(self, topic: str, key: bytes, message_type: str, datum: dict[str, Any]) -> Any:
        """Encode and produce one message; returns the future (flush before committing)."""
        future = self.producer.send(topic, key=key, value=self.codec.encode(message_type, datum))
        self.metrics.produced.labels(topic).inc()
        return future

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
            self._producer = None
