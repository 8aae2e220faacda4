"""Durable extractor cursors on the compacted cursors topic (the extractor owns no database).

At start-up :meth:`CursorStore.load` reads the cursors topic from the beginning to its end
offsets and keeps the newest value per key. :meth:`CursorStore.save` produces a new value and
**waits for the broker's acknowledgement** — callers save a cursor only after the change events
it covers were acknowledged, so a crash between the two re-reads (de-duplicated downstream)
instead of skipping.

Imports: kafka-python and the core modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.connector import v1_cursor
from services.core.deadletters import DeadLetterWriter
from services.core.errors import DecodeError, TransportError
from services.core.kafka import make_consumer
from services.core.settings import TetherSettings
from services.core.topics import cursor_key

log = logging.getLogger("tether.extractor.cursors")


@dataclass(frozen=True)
class Cursor:
    tenant: str
    system: str
    resource: str
    stream: str
    position: str
    seen: tuple[str, ...] = ()
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> bytes:
        return cursor_key(self.tenant, self.system, self.resource, self.stream)

    def to_datum(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "system": self.system,
            "resource": self.resource,
            "stream": self.stream,
            "position": self.position,
            "seen": list(self.seen),
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_datum(cls, datum: dict[str, Any]) -> Cursor:
        return cls(
            tenant=datum["tenant"],
            system=datum["system"],
            resource=datum["resource"],
            stream=datum["stream"],
            position=datum["position"],
            seen=tuple(datum.get("seen") or ()),
            updated_at=datum["updated_at"],
        )


def _tenant_of(key: bytes | None) -> str | None:
    """The tenant a cursor key names (``cursor_key``: the tenant id comes first)."""
    if key is None:
        return None
    return key.split(b"/", 1)[0].decode("utf-8", "replace")


class CursorStore:
    def __init__(
        self,
        topic: str,
        codec: AvroCodec,
        producer: KafkaProducer,
        settings: TetherSettings,
        ack_timeout: float = 30.0,
        dead_letters: DeadLetterWriter | None = None,
    ) -> None:
        self.topic = topic
        self.codec = codec
        self.producer = producer
        self.settings = settings
        self.dead_letters = dead_letters
        self.ack_timeout = ack_timeout
        self._cursors: dict[bytes, Cursor] = {}

    def load(self, timeout: float = 30.0, tenants: Collection[str] | None = None) -> int:
        """Read the whole cursors topic (newest value per key wins); returns how many cursors.

        ``tenants``: keep only theirs (an extractor serving many tenants reads the topic again
        for the tenants it was just given: their previous owner saved meanwhile; the cursors of
        the tenants it runs are its own, newer than what the topic may still hold)."""
        consumer = make_consumer(self.settings, None)  # no group: reads all, commits nothing
        try:
            deadline = time.monotonic() + timeout
            # A topic provisioned a moment ago may not be in the broker's metadata yet.
            partitions = consumer.partitions_for_topic(self.topic) or set()
            while not partitions:
                if time.monotonic() > deadline:
                    raise TransportError("the cursors topic has no partitions (not provisioned?)")
                time.sleep(0.1)
                partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TransportError("timed out reading the cursors topic")
                for batch in consumer.poll(timeout_ms=500).values():
                    for record in batch:
                        if tenants is None or _tenant_of(record.key) in tenants:
                            self._apply(record)
        except KafkaError as exc:
            raise TransportError(f"cannot read cursors: {type(exc).__name__}") from exc
        finally:
            consumer.close()
        if self.dead_letters is not None:
            try:
                self.producer.flush(timeout=self.ack_timeout)
            except KafkaError as exc:  # parked again (same id) at the next start
                log.warning(
                    "dead letters of the cursors topic not flushed (%s)", type(exc).__name__
                )
        return len(self._cursors)

    def _apply(self, record: Any) -> None:
        key, value = record.key, record.value
        if key is not None and value is None:  # tombstone: cursor reset
            self._cursors.pop(key, None)
            return
        try:
            if key is None:
                raise DecodeError("Cursor: a message without a key (cursors are keyed)")
            self._cursors[key] = Cursor.from_datum(self.codec.decode(value, "Cursor"))
        except DecodeError as exc:
            # An unreadable cursor costs at most a re-read (the key's older cursor, if any, stays
            # in force); it is parked as a dead letter, never dropped silently. Its id follows its
            # position, so parking it again at the next start is recognised as the same one.
            log.warning("undecodable message on the cursors topic: parked as a dead letter")
            if self.dead_letters is not None:
                self.dead_letters.park(
                    bytes(value or b""),
                    exc,
                    source_topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=key,
                )

    def get(self, tenant: str, system: str, resource: str, stream: str) -> Cursor | None:
        return self._cursors.get(cursor_key(tenant, system, resource, stream))

    def save(self, cursor: Cursor) -> None:
        """Produce the cursor and wait until the broker acknowledged it."""
        try:
            future = self.producer.send(
                self.topic, key=cursor.key, value=self.codec.encode("Cursor", cursor.to_datum())
            )
            future.get(timeout=self.ack_timeout)
        except KafkaError as exc:
            raise TransportError(f"cursor not saved: {type(exc).__name__}") from exc
        self._cursors[cursor.key] = cursor

    def stream_cursor(self, tenant: str, system: str, resource: str, stream: str) -> str | None:
        """The stream's opaque cursor (None: nothing stored).

        This version stores it whole in ``position`` (``seen`` empty). The first version spread
        it over ``position``, ``seen`` and ``updated_at`` (the time of the read); such a record
        is handed to the stream wrapped by ``v1_cursor``, which the stream reads as it was, so
        an upgraded extractor resumes where the previous one stopped."""
        cursor = self.get(tenant, system, resource, stream)
        if cursor is None:
            return None
        if cursor.seen:
            return v1_cursor(cursor.position, cursor.seen, cursor.updated_at)
        return cursor.position or None

    def save_stream_cursor(
        self, tenant: str, system: str, resource: str, stream: str, position: str
    ) -> None:
        """Save a stream's opaque cursor and wait for the broker's acknowledgement."""
        self.save(Cursor(tenant, system, resource, stream, position))

    def reset(self, tenant: str, system: str, resource: str, stream: str) -> None:
        """Forget a cursor (tombstone): the next poll starts with a full snapshot."""
        key = cursor_key(tenant, system, resource, stream)
        try:
            self.producer.send(self.topic, key=key, value=None).get(timeout=self.ack_timeout)
        except KafkaError as exc:
            raise TransportError(f"cursor not reset: {type(exc).__name__}") from exc
        self._cursors.pop(key, None)
