"""The wiring every service's ``main`` starts from: one place that builds the shared parts.

``ServiceContext.create(name, settings)`` configures JSON logging, builds the metrics registry,
the core metrics, the tracing (off without an OTLP endpoint), the codec, the topic layout, the
runtime (HTTP port with a Kafka readiness
check; the public port for a service whose settings have one) and, on demand, an idempotent
producer and the dead-letter writer. A service adds its own readiness checks (the mapper:
PostgreSQL), public routes (the extractor: the Wix webhook; the mapper: /explain) and metrics,
then calls ``ctx.runtime.run(loop)``.

Every service loop has the same shape, its steps numbered in comments where they run:
``1. poll -> 2. handle -> 3. flush produced messages -> 4. persist -> 5. commit offsets``
(the mapper persists before it produces: its outbox makes produce-after-commit safe).

Imports: the core modules and kafka-python / prometheus_client through them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from services.core.codec import AvroCodec
from services.core.deadletters import DeadLetterWriter
from services.core.kafka import layout_from, make_producer, retry_while_unreachable
from services.core.kafka_security import check_kafka_security
from services.core.metrics import CoreMetrics
from services.core.public_http import PublicLimits, PublicServer
from services.core.runtime import CachedCheck, ServiceRuntime, configure_logging, tcp_reachable
from services.core.schema_registry import codec_from
from services.core.settings import PublicHttpSettings, TetherSettings
from services.core.topics import TopicLayout
from services.core.tracing import KafkaHeaders, Tracing, tracing_from

log = logging.getLogger("tether.service")


def public_server(settings: TetherSettings) -> PublicServer | None:
    """The public routes' server (uvicorn) for a service whose settings have a public port."""
    if not isinstance(settings, PublicHttpSettings):
        return None
    limits = PublicLimits(
        max_body_bytes=settings.public_max_body_bytes,
        request_timeout=settings.public_request_timeout_seconds,
        keep_alive_timeout=settings.public_keep_alive_seconds,
        max_concurrency=settings.public_max_concurrency,
        max_header_bytes=settings.public_max_header_bytes,
        graceful_shutdown_timeout=min(
            settings.public_request_timeout_seconds, settings.shutdown_timeout_seconds
        ),
    )
    return PublicServer(settings.http_host, settings.public_port, limits)


@dataclass
class ServiceContext:
    name: str
    settings: TetherSettings
    registry: CollectorRegistry
    metrics: CoreMetrics
    codec: AvroCodec
    layout: TopicLayout
    runtime: ServiceRuntime
    tracing: Tracing = field(default_factory=lambda: Tracing("-"))
    """Off unless ``create`` found an OTLP endpoint (tests may set one with their exporter)."""
    _producer: KafkaProducer | None = field(default=None, init=False)
    _dead_letters: DeadLetterWriter | None = field(default=None, init=False)

    @classmethod
    def create(
        cls, name: str, settings: TetherSettings, *, install_signals: bool = True
    ) -> ServiceContext:
        configure_logging(name, settings.log_level, settings.log_personal_data)
        # Untrusted broker certificate, refused credentials: a clear error now, not a 30 s
        # bootstrap timeout later (an unreachable broker is retried like any outage).
        check_kafka_security(settings)
        registry = CollectorRegistry()
        runtime = ServiceRuntime(
            name,
            registry,
            settings.http_host,
            settings.http_port,
            settings.shutdown_timeout_seconds,
            public=public_server(settings),
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
            codec=codec_from(settings),
            layout=layout_from(settings),
            runtime=runtime,
            tracing=tracing_from(name, settings.otel_exporter_otlp_endpoint),
        )

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = retry_while_unreachable(
                lambda: make_producer(self.settings, self.name),
                self.runtime.stopping.is_set,
                f"{self.name} producer",
            )
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

    def send(
        self,
        topic: str,
        key: bytes,
        message_type: str,
        datum: dict[str, Any],
        headers: KafkaHeaders | None = None,
    ) -> Any:
        """Encode and produce one message (``headers``: the trace context, when tracing is on);
        returns the future (flush before committing)."""
        value = self.codec.encode(message_type, datum)
        if headers:
            future = self.producer.send(topic, key=key, value=value, headers=headers)
        else:  # tracing off: the message carries no headers at all
            future = self.producer.send(topic, key=key, value=value)
        self.metrics.produced.labels(topic).inc()
        return future

    def close(self) -> None:
        """Flush and close the producer; a broker that is down at shutdown ends nothing badly.

        Everything a service must not lose was acknowledged before its offsets or cursors moved
        (``PendingSends``, the outbox), so what is still unsent here is re-done after restart."""
        if self._producer is not None:
            try:
                self._producer.flush(timeout=10)
            except KafkaError as exc:
                log.warning("producer flush at shutdown failed (%s)", type(exc).__name__)
            try:
                self._producer.close(timeout=10)
            except KafkaError as exc:
                log.warning("producer close at shutdown failed (%s)", type(exc).__name__)
            self._producer = None
        # Last: the final export of buffered spans (bounded by OTLP_TIMEOUT_SECONDS).
        self.tracing.shutdown()
