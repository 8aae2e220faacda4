"""Stall detection in the mapper (issue #11): a partition forced to stay paused is reported.

The mapper runs on real Kafka and PostgreSQL with ``stall_after_seconds=0`` (stalled as soon as
an observation finds lag and no advance). One employees partition is paused behind the loop's
back and records are sent to it: the stall gauge turns 1 for that partition only, ``/readyz``'s
``partitions_progressing`` check fails, one WARNING names the partition (not one per loop);
resumed, the records are handled and all three turn back.
"""

from __future__ import annotations

import logging
import time

import pytest
from kafka import TopicPartition

from services.core.topics import record_key

from .support import DEADLINE_SECONDS, Harness, employee, harness, po_event, ts

pytestmark = pytest.mark.integration


def _stalled(h: Harness, topic: str, partition: int) -> float | None:
    assert h.ctx is not None
    return h.ctx.registry.get_sample_value(
        "tether_consumer_partition_stalled",
        {"group": h.settings.group_id, "topic": topic, "partition": str(partition)},
    )


def _ready(h: Harness) -> bool:
    assert h.ctx is not None
    return h.ctx.runtime.http.readiness()["partitions_progressing"]


def test_a_partition_kept_paused_is_reported_stalled(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn, stall_after_seconds=0.0) as h:
        mapper = h.start(replay=True)
        employees = h.layout.changes("poweroffice", "employees")
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (mapper.consumer and len(mapper.consumer.assignment()) > 0):
            assert time.monotonic() < deadline, "no assignment"
            mapper.run_once()
        assert _ready(h)
        tp = TopicPartition(employees, 0)
        mapper.consumer.pause(tp)  # forced: nothing in the service will resume it
        for n in range(3):
            datum = po_event("employees", employee(n + 1), ts(1))
            key = record_key(datum["tenant"], "poweroffice", "employees", datum["record_id"])
            value = h.codec.encode("ChangeEvent", datum)
            h.producer.send(employees, key=key, value=value, partition=0).get(timeout=30)
            h.sent += 1
        caplog.set_level(logging.INFO, logger="tether.kafka")
        while _stalled(h, employees, 0) != 1:
            assert time.monotonic() < deadline, "the paused partition was never reported"
            mapper.run_once()
        assert not _ready(h), "/readyz fails while a partition is stalled"
        assert _stalled(h, employees, 1) == 0
        for _ in range(3):  # more loops: the episode is still logged once
            mapper.run_once()
        warnings = [
            r
            for r in caplog.records
            if r.name == "tether.kafka"
            and r.levelno == logging.WARNING
            and f"{employees}-0 stalled" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert h.settings.group_id in warnings[0].getMessage()

        mapper.consumer.resume(tp)
        while mapper.consumed < h.sent or _stalled(h, employees, 0) != 0:
            assert time.monotonic() < deadline, "the resumed partition was not handled"
            mapper.run_once()
        assert _ready(h)
        assert any(
            r.levelno == logging.INFO and f"{employees}-0 progressing again" in r.getMessage()
            for r in caplog.records
        )
