"""Operator actions and dead letters through the console's API on the real Kafka.

An action POST lands on ``<prefix>.operator-actions`` as an Avro ``OperatorAction`` naming the
caller (the mapper's side — applying it — is tested with the mapper); a retried request (same
idempotency key) is the same action; invalid ones are refused before anything is published. Dead
letters parked by a stage are listed (messages for operators only) and re-driven into their
source topic through ``REDRIVE_DEAD_LETTERS``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from services.console.settings import ConsoleSettings
from services.core.codec import AvroCodec
from services.core.deadletters import DeadLetterWriter
from services.core.errors import ValidationError
from services.core.kafka import layout_from, provision_topics
from services.core.metrics import CoreMetrics
from services.core.topics import link_key
from services.replay.kafka_ops import KafkaOps
from tests.console import support
from tests.console.support import OPERATOR_TOKEN, READER_TOKEN

pytestmark = pytest.mark.integration


def kafka_settings(bootstrap: str, prefix: str) -> dict[str, Any]:
    return {
        "kafka_bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "topic_partitions": 1,
    }


def read_all(settings: ConsoleSettings, topic: str) -> list[Any]:
    ops = KafkaOps(settings)
    try:
        return list(ops.read(ops.ranges(ops.partitions([topic]))))
    finally:
        ops.close()


def test_an_action_lands_on_the_operator_action_topic(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether.console")
    support.migrate(pg_dsn)
    options = kafka_settings(kafka_bootstrap, topic_prefix)
    settings = support.settings(pg_dsn, **options)
    provision_topics(settings)
    body = {
        "kind": "LINK_TO_CANDIDATE",
        "review_id": "r-000050",
        "contact_id": "c-000050",
        "reason": "same phone number, checked with the customer",
        "idempotency_key": "request-1",
    }
    with support.serve(pg_dsn, kafka=True, **options) as api:
        first = api.post("/api/v1/actions", OPERATOR_TOKEN, json=body)
        assert first.status_code == 202, first.text
        again = api.post("/api/v1/actions", OPERATOR_TOKEN, json=body)
        assert again.json()["action_id"] == first.json()["action_id"]
        refused = [
            {**body, "contact_id": None},  # LINK_TO_CANDIDATE needs the contact
            {**body, "reason": "  "},  # a reason is required
            {**body, "kind": "DELETE_EVERYTHING"},
            {**body, "record": "poweroffice/employees/1"},
        ]
        for bad in refused:
            answer = api.post("/api/v1/actions", OPERATOR_TOKEN, json=bad)
            assert answer.status_code == 400, bad
            assert answer.json()["error"] == "invalid_action"
        assert api.post("/api/v1/actions", OPERATOR_TOKEN, content=b"[1]").status_code == 400
        assert api.post("/api/v1/actions", READER_TOKEN, json=body).status_code == 403
        result = api.get(first.json()["result"], OPERATOR_TOKEN).json()
        assert result["status"] == "pending"  # no mapper runs here
        published = api.console.metrics.actions.labels("LINK_TO_CANDIDATE", "published")
        assert published._value.get() == 2
    # Each published action is logged with its id and the caller's identity; never its reason.
    logged = [r for r in caplog.records if r.name == "tether.console.actions"]
    assert len(logged) == 2
    for entry in logged:
        fields = entry.fields  # type: ignore[attr-defined]
        assert fields["actor"] == "alice" and fields["action_id"] == first.json()["action_id"]
        assert "same phone" not in entry.getMessage() + str(fields)
    records = read_all(settings, layout_from(settings).operator_actions)
    # Both deliveries are on the topic; the mapper applies an action_id once.
    assert len(records) == 2
    codec = AvroCodec()
    for record in records:
        datum = codec.decode(record.value, "OperatorAction")
        assert datum["action_id"] == first.json()["action_id"]
        assert (datum["actor"], datum["role"], datum["kind"]) == (
            "alice",
            "operator",
            "LINK_TO_CANDIDATE",
        )
        assert (datum["review_id"], datum["contact_id"]) == ("r-000050", "c-000050")
        assert record.key == b"r-000050"


def test_dead_letters_are_listed_and_redriven(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    support.migrate(pg_dsn)
    options = kafka_settings(kafka_bootstrap, topic_prefix)
    settings = support.settings(pg_dsn, **options)
    provision_topics(settings)
    layout = layout_from(settings)
    source = layout.commands("wix", "contacts")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_block_ms=180_000)
    try:
        # The shared broker can be slow to serve a fresh topic's metadata: wait for it here,
        # so that parking (whose send gives up after max_block_ms) is not what waits.
        ready = producer.partitions_for(layout.deadletters("loader"))
        assert ready, "the dead-letter topic has no partitions"
        writer = DeadLetterWriter(
            producer, AvroCodec(), layout, "loader", CoreMetrics(CollectorRegistry(), "loader")
        )
        writer.park(
            b"command-bytes",
            ValidationError("Wix refused ola@example.no", system="wix"),
            source_topic=source,
            partition=0,
            offset=7,
            key=link_key("l-000001"),
        )
        writer.park(
            b"other-command",
            ValidationError("Wix refused the phone", system="wix"),
            source_topic=source,
            partition=0,
            offset=8,
            key=link_key("l-000002"),
        )
        producer.flush(10)
    finally:
        producer.close()
    with support.serve(pg_dsn, kafka=True, **options) as api:
        listed = api.get("/api/v1/dead-letters", OPERATOR_TOKEN, params={"stage": "loader"})
        by_record = {d["record"]: d for d in listed.json()["items"]}
        assert set(by_record) == {"link l-000001", "link l-000002"}
        letter = by_record["link l-000001"]
        assert letter["redrivable"] and letter["source_topic"] == source
        assert letter["record"] == "link l-000001" and "ola@example.no" in letter["error_message"]
        reader = api.get("/api/v1/dead-letters", READER_TOKEN, params={"stage": "loader"}).json()
        assert all("error_message" not in d for d in reader["items"])
        assert "ola@example.no" not in str(reader)
        overview = api.get("/api/v1/overview", OPERATOR_TOKEN).json()
        assert overview["dead_letters"]["loader"] == {"not_redriven": 2, "retained": 2}
        # One chosen dead letter: re-driven, the other stays "not re-driven yet".
        one = api.post(
            "/api/v1/actions",
            OPERATOR_TOKEN,
            json={
                "kind": "REDRIVE_DEAD_LETTERS",
                "deadletter_stage": "loader",
                "deadletter_ids": [by_record["link l-000002"]["dead_letter_id"]],
                "reason": "fixed the phone",
            },
        )
        assert one.status_code == 202 and one.json()["redriven"] == 1
        waiting = api.get("/api/v1/dead-letters", OPERATOR_TOKEN, params={"stage": "loader"})
        assert len(waiting.json()["items"]) == 2  # a selection does not move the position
        assert overview["consumer_lag"]["loader"]["group"] == f"{topic_prefix}-loader"
        done = api.post(
            "/api/v1/actions",
            OPERATOR_TOKEN,
            json={
                "kind": "REDRIVE_DEAD_LETTERS",
                "deadletter_stage": "loader",
                "reason": "Wix is back",
            },
        )
        assert done.status_code == 202 and done.json()["redriven"] == 2
        after = api.get("/api/v1/dead-letters", OPERATOR_TOKEN, params={"stage": "loader"})
        assert after.json()["items"] == []
        everything = api.get(
            "/api/v1/dead-letters", OPERATOR_TOKEN, params={"stage": "loader", "all": "1"}
        )
        assert len(everything.json()["items"]) == 2
        assert api.console.metrics.redriven.labels("loader")._value.get() == 3
    redriven = [(r.key, r.value) for r in read_all(settings, source)]
    assert sorted(redriven) == [
        (b"l-000001", b"command-bytes"),
        (b"l-000002", b"other-command"),
        (b"l-000002", b"other-command"),
    ]
    actions = read_all(settings, layout.operator_actions)
    kinds = [AvroCodec().decode(r.value, "OperatorAction")["kind"] for r in actions]
    assert kinds == ["REDRIVE_DEAD_LETTERS", "REDRIVE_DEAD_LETTERS"]  # the audit events
