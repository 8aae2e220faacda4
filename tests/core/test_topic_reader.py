"""``tether tail`` / ``tether decode``: topics printed as JSON, any released schema version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.core.codec import DEFAULT_SCHEMAS_DIR, AvroCodec
from services.core.kafka import make_producer
from services.core.schema_release import load_sample, sample_to_datum
from services.core.topic_reader import describe, parse_time, tail
from tests.core.test_kafka_postgres import provisioned

GOLDEN_V1 = DEFAULT_SCHEMAS_DIR / "released" / "v1" / "golden"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_parse_time_takes_iso_times_and_durations() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("90m", now) == now - timedelta(minutes=90)
    assert parse_time("2026-12-01T08:00:00", now) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    with pytest.raises(Exception, match="neither an ISO time nor a duration"):
        parse_time("yesterday", now)


def test_describe_names_what_does_not_decode() -> None:
    codec = AvroCodec()
    assert describe(codec, b"garbage")["error"].startswith(
        "not an Avro single-object or Confluent payload"
    )
    unknown = b"\xc3\x01" + b"\x00" * 8 + b"\x02"
    assert "unknown schema fingerprint" in describe(codec, unknown)["error"]
    dead = describe(codec, (GOLDEN_V1 / "DeadLetter.bin").read_bytes())
    assert dead["type"] == "DeadLetter"
    assert "base64" in json.dumps(dead)  # the original bytes, printable


def test_tail_decodes_every_version_and_filters_by_key_and_time(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings, layout = provisioned(kafka_bootstrap, topic_prefix)
    topic = layout.changes("wix", "contacts")
    codec = AvroCodec()
    current = sample_to_datum(load_sample(DEFAULT_SCHEMAS_DIR / "samples", "ChangeEvent"))
    producer = make_producer(settings, "test")
    sends = [
        (b"old", (GOLDEN_V1 / "ChangeEvent.bin").read_bytes(), T0),
        (b"new", codec.encode("ChangeEvent", {**current, "event_id": str(uuid.uuid4())}), T0),
        (b"bad", b"\x00not avro", T0 + timedelta(hours=1)),
        (b"new", codec.encode("ChangeEvent", {**current, "event_id": str(uuid.uuid4())}), T0),
    ]
    for key, value, at in sends:
        producer.send(topic, key=key, value=value, partition=0, timestamp_ms=_ms(at))
    producer.flush()
    producer.close()

    everything = list(tail(settings, "changes.wix.contacts"))  # relative to the prefix
    assert [m["key"] for m in everything] == ["old", "new", "bad", "new"]
    assert [m["type"] for m in everything] == ["ChangeEvent", "ChangeEvent", None, "ChangeEvent"]
    golden = json.loads((GOLDEN_V1 / "ChangeEvent.json").read_text())
    assert everything[0]["value"]["record_id"] == golden["record_id"]  # a v1 payload, decoded
    assert "error" in everything[2] and "value" not in everything[2]
    assert [m["offset"] for m in tail(settings, topic, key="new")] == [1, 3]
    late = list(tail(settings, topic, since=T0 + timedelta(minutes=30)))
    assert [m["key"] for m in late] == ["bad", "new"]  # the start is found by time; all after
    early = list(tail(settings, topic, until=T0 + timedelta(minutes=30)))
    assert [m["key"] for m in early] == ["old", "new", "new"]
    assert len(list(tail(settings, topic, limit=2))) == 2

    cli = subprocess.run(
        [sys.executable, "-m", "services.cli", "tail", topic, "--key", "old"],
        env={**os.environ, "TETHER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    (line,) = cli.stdout.splitlines()
    assert json.loads(line)["value"]["record_id"] == everything[0]["value"]["record_id"]
