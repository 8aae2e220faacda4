"""Tracing on its own: off is a no-op without headers; on, spans continue the trace a
``traceparent`` names and yield their own; Kafka header helpers; the OTLP URL."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.core.settings import TetherSettings
from services.core.tracing import (
    TRACEPARENT,
    kafka_headers,
    otlp_traces_url,
    traceparent_of,
    tracing_from,
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracing_is_off_by_default_and_off_yields_no_context_and_records_nothing() -> None:
    assert TetherSettings().otel_exporter_otlp_endpoint == ""
    tracing = tracing_from("mapper", "")
    assert not tracing.enabled
    with tracing.span("mapper.change", PARENT) as traceparent:
        assert traceparent is None
    assert kafka_headers(None) is None
    tracing.shutdown()


def test_a_span_continues_the_trace_of_its_parent_and_yields_its_own_context() -> None:
    exporter = InMemorySpanExporter()
    tracing = tracing_from("loader", "", exporter=exporter)
    assert tracing.enabled
    with tracing.span("loader.apply", PARENT, kind="consumer") as traceparent:
        assert traceparent is not None
    (span,) = exporter.get_finished_spans()
    assert span.name == "loader.apply"
    assert span.resource.attributes["service.name"] == "loader"
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{span.parent.span_id:016x}" == PARENT.split("-")[2]
    assert traceparent == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


def test_without_a_parent_a_span_starts_a_new_trace_even_inside_another_span() -> None:
    exporter = InMemorySpanExporter()
    tracing = tracing_from("extractor", "", exporter=exporter)
    with tracing.span("outer"), tracing.span("extractor.emit") as inner:
        pass
    emitted, outer = exporter.get_finished_spans()
    assert emitted.parent is None
    assert emitted.context.trace_id != outer.context.trace_id
    assert inner is not None and f"{emitted.context.trace_id:032x}" in inner


def test_kafka_header_helpers() -> None:
    headers = kafka_headers(PARENT)
    assert headers == [(TRACEPARENT, PARENT.encode())]
    assert traceparent_of([("other", b"x"), *headers]) == PARENT
    assert traceparent_of([]) is None
    assert traceparent_of(None) is None
    assert traceparent_of([(TRACEPARENT, b"\xff\xfe")]) is None


def test_the_otlp_endpoint_is_a_collector_base_url_or_the_traces_url() -> None:
    assert otlp_traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("https://c.example/v1/traces") == "https://c.example/v1/traces"


def test_with_an_endpoint_the_otlp_exporter_is_configured() -> None:
    tracing = tracing_from("mapper", "http://127.0.0.1:9/")  # nothing listens: export fails
    assert tracing.enabled
    with tracing.span("mapper.change") as traceparent:
        assert traceparent is not None
    tracing.shutdown()  # a failed export is logged by the SDK, never raised
