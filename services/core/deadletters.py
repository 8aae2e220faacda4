"""Dead letters: input a stage cannot process is parked with its reason, never dropped.

``DeadLetterWriter.park`` produces a ``DeadLetter`` (original bytes, where it came from, the
error class and message) to ``<prefix>.deadletters.<stage>``, counts it and logs one line; the
caller then moves on (its offset commit covers the parked message). Re-driving dead letters into
their stage after a fix is the replay tool's job.

Imports: the core codec/metrics/topics modules; the producer is passed in.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from services.core.codec import AvroCodec
from services.core.errors import TetherError
from services.core.metrics import CoreMetrics
from services.core.topics import TopicLayout

log = logging.getLogger("tether.deadletters")


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...


def reason_of(error: BaseException) -> str:
    """A low-cardinality reason code for metrics: the error class name."""
    return error.code if isinstance(error, TetherError) else type(error).__name__


class DeadLetterWriter:
    def __init__(
        self,
        producer: Producer,
        codec: AvroCodec,
        layout: TopicLayout,
        stage: str,
        metrics: CoreMetrics,
        tenant: str | None = None,
    ) -> None:
        self.producer = producer
        self.codec = codec
        self.topic = layout.deadletters(stage)
        self.stage = stage
        self.metrics = metrics
        self.tenant = tenant

    def park(
        self,
        payload: bytes,
        error: BaseException,
        *,
        source_topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        attempts: int = 1,
    ) -> Any:
        """Produce the dead letter; returns the producer's future (the caller flushes)."""
        now = datetime.now(UTC)
        # Deterministic id for inputs with a position, so re-parking on replay is recognisable.
        if source_topic is not None and partition is not None and offset is not None:
            name = f"{source_topic}/{partition}/{offset}"
            dead_letter_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tether:dead:{name}"))
        else:
            dead_letter_id = str(uuid.uuid4())
        reason = reason_of(error)
        message = str(error)[:2000]
        record = {
            "dead_letter_id": dead_letter_id,
            "tenant": self.tenant,
            "stage": self.stage,
            "source_topic": source_topic,
            "source_partition": partition,
            "source_offset": offset,
            "key": key,
            "payload": bytes(payload),
            "error_class": reason,
            "error_message": message,
            "first_seen": now,
            "last_seen": now,
            "attempts": attempts,
        }
        future = self.producer.send(
            self.topic, value=self.codec.encode("DeadLetter", record), key=key
        )
        self.metrics.dead_letters.labels(self.stage, reason).inc()
        log.warning(
            "dead letter: %s",
            message,
            extra={
                "fields": {
                    "stage": self.stage,
                    "reason": reason,
                    "source_topic": source_topic,
                    "partition": partition,
                    "offset": offset,
                }
            },
        )
        return future
