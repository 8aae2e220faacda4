"""OpenTelemetry traces across the pipeline, the W3C trace context riding in Kafka headers.

One change is one trace: the extractor starts a span per emitted change event and puts its
``traceparent`` (W3C Trace Context) in the message's Kafka headers; the mapper continues it while
it handles the change and stores the ``traceparent`` of its span with each command in the outbox
(the relay puts it on the command message); the loader continues it for the write and puts it on
the outcome. ``Tracing.span(name, parent)`` is the one call a service makes: it yields the
``traceparent`` to propagate, or ``None`` when tracing is off.

Off by default: without ``TETHER_OTEL_EXPORTER_OTLP_ENDPOINT`` there is no tracer provider,
``span`` returns one shared no-op context (no span, no header, nothing allocated on the hot path).
With an endpoint, spans are batched to the OTLP/HTTP exporter (imported only then); the
``service.name`` resource attribute is the service (extractor, mapper, loader). Each service has
its own ``TracerProvider`` (no global OpenTelemetry state: tests run several in one process).

Imports: opentelemetry (api, sdk; the OTLP exporter lazily) and the standard library only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("tether.tracing")

#: The W3C Trace Context header, as a Kafka header name.
TRACEPARENT = "traceparent"
#: Path of the OTLP/HTTP traces endpoint below a collector's base URL.
OTLP_TRACES_PATH = "/v1/traces"
#: Time one export (retries included) may take: an unreachable collector must not eat the
#: service's shutdown budget (the final flush runs at shutdown).
OTLP_TIMEOUT_SECONDS = 3.0

KafkaHeaders = list[tuple[str, bytes]]

_OFF: AbstractContextManager[str | None] = nullcontext(None)
_KINDS = {"producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}
_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent_of(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    """The ``traceparent`` among a consumed record's Kafka headers (None if absent/unreadable)."""
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def kafka_headers(traceparent: str | None) -> KafkaHeaders | None:
    """The Kafka headers carrying ``traceparent`` (None — no headers at all — without one)."""
    return [(TRACEPARENT, traceparent.encode("ascii"))] if traceparent else None


def otlp_traces_url(endpoint: str) -> str:
    """A collector base URL (``http://collector:4318``) as the OTLP/HTTP traces URL; a URL that
    already ends in ``/v1/traces`` is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(OTLP_TRACES_PATH) else endpoint + OTLP_TRACES_PATH


class Tracing:
    """One service's tracer; ``Tracing(service)`` without a provider is off."""

    def __init__(self, service: str, provider: TracerProvider | None = None) -> None:
        self.service = service
        self._provider = provider
        self._tracer: Tracer | None = (
            provider.get_tracer("tether") if provider is not None else None
        )

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(
        self,
        name: str,
        parent: str | None = None,
        *,
        kind: Literal["producer", "consumer", "internal"] = "internal",
        attributes: Mapping[str, str | int] | None = None,
    ) -> AbstractContextManager[str | None]:
        """A span named ``name``, child of the ``traceparent`` ``parent`` (a new trace without
        one); yields the span's own ``traceparent`` to send on. Off: a no-op yielding None."""
        if self._tracer is None:
            return _OFF
        return self._span(
            self._tracer, name, parent, _KINDS.get(kind, SpanKind.INTERNAL), attributes
        )

    @staticmethod
    @contextmanager
    def _span(
        tracer: Tracer,
        name: str,
        parent: str | None,
        kind: SpanKind,
        attributes: Mapping[str, str | int] | None,
    ) -> Iterator[str | None]:
        # An explicit (possibly empty) context: never a span that happens to be current in
        # this thread, so a message's span has exactly the parent its headers name.
        context = _PROPAGATOR.extract({TRACEPARENT: parent}) if parent else Context()
        with tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=dict(attributes or {})
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
            yield carrier.get(TRACEPARENT)

    def shutdown(self) -> None:
        """Export what is buffered and stop (at service shutdown)."""
        if self._provider is not None:
            self._provider.shutdown()


def tracing_from(service: str, endpoint: str, *, exporter: SpanExporter | None = None) -> Tracing:
    """The service's tracing: off without ``endpoint`` (and without a test's ``exporter``);
    with ``endpoint``, batched OTLP/HTTP export; a given ``exporter`` gets every span at once."""
    if exporter is None and not endpoint:
        return Tracing(service)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "tether"})
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = otlp_traces_url(endpoint)
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=url, timeout=OTLP_TIMEOUT_SECONDS))
        )
        # The host only: a URL may carry credentials (user:password@), never logged.
        log.info("tracing on: spans exported to %s", urlsplit(url).hostname)
    return Tracing(service, provider)
