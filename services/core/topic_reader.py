"""Readable topics: ``tether tail`` prints a topic as JSON lines, ``tether decode`` one payload.

Tether's topics carry Avro single-object payloads (``codec.py``) that generic Kafka tools show as
bytes. These commands decode them with the schemas that ship with the code, any released version
(the writer schema is found by the payload's fingerprint and resolved into the current one), and
print one JSON object per message::

    {"topic": ..., "partition": 0, "offset": 12, "timestamp": "2026-...Z", "key": "...",
     "type": "ChangeEvent", "value": {...}}

A payload that does not decode is printed with ``"error"`` instead of ``"value"`` (it is what a
dead letter would say), never a crash. Bytes inside a message (a dead letter's original payload)
are printed as base64.

Filters: ``--key`` (exact key), ``--since``/``--until`` (ISO time or a duration like ``90m``,
``2h``, ``1d`` before now; the start is found with ``offsets_for_times``), ``--partition``,
``--limit``; ``--follow`` keeps reading new messages. A topic is named in full or relative to the
configured prefix (``changes.wix.contacts`` for ``<prefix>.changes.wix.contacts``).

This is an operator tool: it prints personal data from the topics as they are, to the operator's
terminal only (it logs nothing).

Imports: the core codec, kafka wiring and settings; kafka-python.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from kafka import TopicPartition

from services.core.codec import AvroCodec
from services.core.errors import DecodeError
from services.core.kafka import make_consumer
from services.core.schema_registry import codec_from
from services.core.settings import TetherSettings

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a duration before ``now``."""
    found = DURATION.match(text.strip())
    if found:
        return now - timedelta(seconds=float(found[1]) * UNITS[found[2]])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO time nor a duration like 90m, 2h, 1d"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_json(value: Any) -> Any:
    """A decoded Avro datum as JSON-ready values (bytes as base64, times as ISO strings)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def describe(codec: AvroCodec, payload: bytes | None) -> dict[str, Any]:
    """``{"type", "value"}`` of a payload, or ``{"error"}`` saying why it does not decode."""
    if payload is None:
        return {"type": None, "value": None}  # a tombstone (compacted topics)
    try:
        message_type = codec.message_type_of(payload)
        return {"type": message_type, "value": to_json(codec.decode(payload, message_type))}
    except DecodeError as exc:
        return {"type": None, "error": str(exc), "bytes": len(payload)}


def resolve_topic(name: str, prefix: str, existing: set[str]) -> str:
    if name in existing:
        return name
    prefixed = f"{prefix}.{name}"
    if prefixed in existing:
        return prefixed
    raise SystemExit(f"tether tail: no topic {name!r} (nor {prefixed!r}); see `tether topics list`")


def _start_offsets(
    consumer: Any, partitions: list[TopicPartition], since: datetime | None
) -> dict[TopicPartition, int]:
    beginning = consumer.beginning_offsets(partitions)
    if since is None:
        return dict(beginning)
    found = consumer.offsets_for_times(dict.fromkeys(partitions, int(since.timestamp() * 1000)))
    end = consumer.end_offsets(partitions)
    return {tp: (hit.offset if hit is not None else end[tp]) for tp, hit in found.items()}


def tail(
    settings: TetherSettings,
    topic: str,
    *,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    partition: int | None = None,
    limit: int | None = None,
    follow: bool = False,
    codec: AvroCodec | None = None,
) -> Iterator[dict[str, Any]]:
    """The topic's messages as JSON-ready dicts, oldest first per partition."""
    codec = codec or codec_from(settings)
    consumer = make_consumer(settings, None)
    try:
        name = resolve_topic(topic, settings.topic_prefix, set(consumer.topics()))
        deadline = time.monotonic() + 15
        ids = sorted(consumer.partitions_for_topic(name) or ())
        while not ids and time.monotonic() < deadline:  # metadata of a topic made a moment ago
            time.sleep(0.2)
            ids = sorted(consumer.partitions_for_topic(name) or ())
        if partition is not None:
            ids = [p for p in ids if p == partition]
        partitions = [TopicPartition(name, p) for p in ids]
        consumer.assign(partitions)
        for tp, offset in _start_offsets(consumer, partitions, since).items():
            consumer.seek(tp, offset)
        end = consumer.end_offsets(partitions)
        until_ms = int(until.timestamp() * 1000) if until else None
        printed = 0
        while True:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if until_ms is not None and record.timestamp > until_ms:
                        continue
                    record_key = record.key.decode("utf-8", "replace") if record.key else None
                    if key is not None and record_key != key:
                        continue
                    yield {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "timestamp": datetime.fromtimestamp(record.timestamp / 1000, UTC)
                        .isoformat()
                        .replace("+00:00", "Z"),
                        "key": record_key,
                        **describe(codec, record.value),
                    }
                    printed += 1
                    if limit is not None and printed >= limit:
                        return
            if not follow and all(consumer.position(tp) >= end[tp] for tp in partitions):
                return
            if follow and not batch:
                time.sleep(0.2)
    finally:
        consumer.close()


def _print(lines: Iterator[dict[str, Any]], out: TextIO) -> None:
    for line in lines:
        out.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")
        out.flush()


def tail_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether tail",
        description="Print a topic's messages as JSON lines, decoded with any released schema.",
    )
    parser.add_argument("topic", help="full topic name, or relative to the prefix")
    parser.add_argument("--key", help="only messages with exactly this key")
    parser.add_argument("--since", help="ISO time or duration before now (90m, 2h, 1d)")
    parser.add_argument("--until", help="ISO time or duration before now")
    parser.add_argument("--partition", type=int, help="only this partition")
    parser.add_argument("--limit", type=int, help="stop after this many messages")
    parser.add_argument("--follow", "-f", action="store_true", help="keep reading new messages")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    settings = TetherSettings.load()
    try:
        _print(
            tail(
                settings,
                args.topic,
                key=args.key,
                since=since,
                until=until,
                partition=args.partition,
                limit=args.limit,
                follow=args.follow,
            ),
            sys.stdout,
        )
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # | head
        return 0
    return 0


def decode_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether decode",
        description="Decode one Avro single-object payload (a file, or standard input) to JSON.",
    )
    parser.add_argument("file", nargs="?", help="the payload's bytes (default: standard input)")
    parser.add_argument("--base64", action="store_true", help="the input is base64 text")
    args = parser.parse_args(argv)
    raw = Path(args.file).read_bytes() if args.file else sys.stdin.buffer.read()
    payload = base64.b64decode(raw) if args.base64 else raw
    result = describe(codec_from(TetherSettings.load()), payload)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if "error" not in result else 1
