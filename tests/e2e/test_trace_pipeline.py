"""One change is one trace: extractor -> Kafka -> mapper (PostgreSQL outbox) -> Kafka -> loader.

The real extractor emitter, the real mapper loop (real PostgreSQL, its outbox and relay) and the
real loader service (against the Wix simulator over HTTP) run in this process on one topic
prefix, each with its own ``InMemorySpanExporter``. A new PowerOffice employee goes through the
pipeline (the loader creates the Wix contact); the W3C ``traceparent`` travels in the Kafka
headers of the change, the command and the outcome, and the three services' spans form one trace
(extractor.emit -> mapper.change -> loader.apply). With tracing off (the default) the same flow
works and no message carries a header.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.core.service import ServiceContext
from services.core.settings import TetherSettings
from services.core.tracing import TRACEPARENT, tracing_from
from services.extractor.changes import Change, Operation, Origin
from services.extractor.emitter import Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from tests.loader.support import LoaderHarness, Stack
from tests.mapper.support import Harness, employee, mapper_settings, po_event, ts

pytestmark = pytest.mark.integration

PARTITIONS = 3


@dataclass
class Message:
    topic: str
    value: bytes
    headers: list[tuple[str, bytes]]


def read_with_headers(bootstrap: str, topics: list[str]) -> list[Message]:
    """Every message of ``topics`` up to their current end, with its Kafka headers."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: list[Message] = []
        for _ in range(200):
            if all(consumer.position(tp) >= end[tp] for tp in partitions):
                break
            for batch in consumer.poll(timeout_ms=200).values():
                out += [Message(r.topic, r.value, list(r.headers or [])) for r in batch]
        return out
    finally:
        consumer.close()


@dataclass
class Pipeline:
    mapper: Harness
    loader: LoaderHarness
    extractor: ServiceContext
    spans: dict[str, InMemorySpanExporter]

    def run_one_change(self) -> dict[str, Any]:
        """A new PowerOffice employee through the three services; returns the outcome."""
        record = po_event("employees", employee(4711, "Trace", "Tester", at=ts(1)), ts(1))["record"]
        change = Change(
            system="poweroffice",
            resource="employees",
            record_id="4711",
            operation=Operation.UPSERT,
            origin=Origin.POLL,
            source_timestamp=datetime.now(UTC),
            source_version="v1",
            version_key=None,
            record=record,
        )
        known = {("poweroffice", "employees"): KnownSet("poweroffice", "employees")}
        batch = Emitter(self.extractor, ExtractorMetrics(self.extractor.registry), known).batch()
        batch.add(change)
        batch.wait(timeout=30)
        self.mapper.sent += 1  # the harness waits until its mapper consumed it
        self.mapper.drain()  # handle -> outbox -> relay to the command topic
        (command,) = self.mapper.commands()
        assert command["target_system"] == "wix" and command["action"] == "CREATE"
        return self.loader.wait_outcome(command["command_id"], timeout=30)

    def messages(self) -> dict[str, Message]:
        layout = self.extractor.layout
        bootstrap = self.mapper.settings.kafka_bootstrap_servers
        (change,) = read_with_headers(bootstrap, [layout.changes("poweroffice", "employees")])
        (command,) = read_with_headers(bootstrap, [layout.commands("wix", "contacts")])
        (outcome,) = read_with_headers(bootstrap, [layout.outcomes])
        return {"change": change, "command": command, "outcome": outcome}


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> Iterator[Pipeline]:
    traced = bool(request.param)
    spans = {name: InMemorySpanExporter() for name in ("extractor", "mapper", "loader")}

    def tracing(name: str) -> Any:
        return tracing_from(name, "", exporter=spans[name] if traced else None)

    sims = Stack.start()
    mapper = Harness(
        mapper_settings(kafka_bootstrap, topic_prefix, pg_dsn, topic_partitions=PARTITIONS)
    )
    mapper.provision()
    loader = LoaderHarness(sims, kafka_bootstrap, topic_prefix, topic_partitions=PARTITIONS)
    extractor = ServiceContext.create(
        "extractor",
        TetherSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_prefix=topic_prefix,
            topic_partitions=PARTITIONS,
            http_host="127.0.0.1",
            http_port=0,
        ),
        install_signals=False,
    )
    extractor.tracing = tracing("extractor")
    try:
        mapper.start()
        assert mapper.ctx is not None
        mapper.ctx.tracing = tracing("mapper")
        loader.start()  # it gets its first command only once the mapper relays it (below)
        assert loader.ctx is not None
        loader.ctx.tracing = tracing("loader")
        yield Pipeline(mapper, loader, extractor, spans)
    finally:
        loader.close()
        mapper.close()
        extractor.close()
        sims.stop()


def _only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


def _traceparent(message: Message) -> str:
    values = [v.decode() for k, v in message.headers if k == TRACEPARENT]
    assert len(values) == 1, message.headers
    return values[0]


def _context(span: ReadableSpan) -> str:
    assert span.context is not None
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@pytest.mark.parametrize("pipeline", [True], indirect=True, ids=["tracing-on"])
def test_one_change_is_one_trace_across_extractor_mapper_and_loader(pipeline: Pipeline) -> None:
    outcome = pipeline.run_one_change()
    assert outcome["status"] == "CREATED"

    emitted = _only(pipeline.spans["extractor"], "extractor.emit")
    decided = _only(pipeline.spans["mapper"], "mapper.change")
    applied = _only(pipeline.spans["loader"], "loader.apply")
    assert emitted.parent is None  # the change starts the trace
    assert decided.parent is not None and applied.parent is not None
    assert emitted.context is not None and decided.context is not None
    assert applied.context is not None
    trace = emitted.context.trace_id
    assert decided.context.trace_id == trace and applied.context.trace_id == trace
    assert decided.parent.span_id == emitted.context.span_id
    assert applied.parent.span_id == decided.context.span_id
    for service, span in (("extractor", emitted), ("mapper", decided), ("loader", applied)):
        assert span.resource.attributes["service.name"] == service

    # What carried it: each message's header is the context of the span that produced it.
    messages = pipeline.messages()
    assert _traceparent(messages["change"]) == _context(emitted)
    assert _traceparent(messages["command"]) == _context(decided)
    assert _traceparent(messages["outcome"]) == _context(applied)
    # ... and the outbox row the relay sent it from kept it.
    rows = pipeline.mapper.query("SELECT traceparent FROM mapper_outbox")
    assert rows == [(_context(decided),)]


@pytest.mark.parametrize("pipeline", [False], indirect=True, ids=["tracing-off"])
def test_with_tracing_off_no_message_carries_a_header_and_the_flow_works(
    pipeline: Pipeline,
) -> None:
    outcome = pipeline.run_one_change()
    assert outcome["status"] == "CREATED"
    for name, message in pipeline.messages().items():
        assert message.headers == [], name
    assert pipeline.mapper.query("SELECT traceparent FROM mapper_outbox") == [(None,)]
    for exporter in pipeline.spans.values():
        assert exporter.get_finished_spans() == ()
