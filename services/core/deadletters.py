"""Dead letters: input a stage cannot process is parked with its reason, never dropped.

``DeadLetterWriter.park`` produces a ``DeadLetter`` (original bytes, where it came from, the
error class and message — followed by the record it concerns, ``system/resource/id`` or the
link, and the fix where the cause is known: ``fix_hint``) to ``<prefix>.deadletters.<stage>``,
counts it and logs one line naming the same; the
caller then moves on (its offset commit covers the parked message). Re-driving dead letters into
their stage after a fix is the replay tool's job.

Imports: kafka-python's errors (a failed send becomes a retriable ``TransportError``) and the
core codec/errors/metrics/topics modules; the producer is passed in.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.errors import TetherError, TransportError
from services.core.metrics import CoreMetrics
from services.core.topics import TopicLayout

log = logging.getLogger("tether.deadletters")


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...


def reason_of(error: BaseException) -> str:
    """A low-cardinality reason code for metrics: the error class name."""
    return error.code if isinstance(error, TetherError) else type(error).__name__


#: Failures that repeat until someone changes a permission, a credential or the data: their hints
#: never suggest a plain retry. Error class names and the APIs' own codes.
PERMISSION_CODES = frozenset({"PERMISSION_DENIED", "PermissionDeniedError", "Forbidden"})
CREDENTIAL_CODES = frozenset({"UNAUTHENTICATED", "AuthenticationError"})
CONTRACT_CODES = frozenset({"ContractError", "DecodeError"})
REFUSED_CODES = frozenset({"ValidationError", "INVALID_ARGUMENT"})
#: Transient causes: the same input may well succeed later.
TRANSIENT_CODES = frozenset(
    {
        "ServerError",
        "TransportError",
        "RateLimitedError",
        "RESOURCE_EXHAUSTED",
        "RequestNotSentError",
    }
)
_SAME_WAY = "a re-drive before that fails the same way"


def fix_hint_for(code: str | None, message: str = "", system: str | None = None) -> str | None:
    """What to change so the failed input goes through, from its error code and message; None
    when the cause is unknown. Pure; shared with the mapper's ``explain``."""
    target = system or "the target"
    if code in PERMISSION_CODES and "extended_field" in message:
        return (
            "extended fields permission missing: give the Wix API key (or app) the permission "
            f"to manage extended fields, then re-drive ({_SAME_WAY})"
        )
    if code in PERMISSION_CODES:
        return (
            f"permission missing at {target}: grant the API key/app the permission the error "
            f"names, then re-drive ({_SAME_WAY})"
        )
    if code in CREDENTIAL_CODES:
        return f"{target} refused the credentials: fix them, then re-drive ({_SAME_WAY})"
    if code in CONTRACT_CODES:
        return (
            f"the input breaks the data contract ({message[:200]}): fix the record at its "
            f"source — its next change is read again; {_SAME_WAY}"
        )
    if code in REFUSED_CODES:
        return (
            f"{target} refused these values: fix the record at its source (its next change is "
            f"tried again); {_SAME_WAY}"
        )
    if code in TRANSIENT_CODES:
        return "transient: re-drive once the cause (outage, rate limit) has cleared"
    return None


def fix_hint(error: BaseException) -> str | None:
    """``fix_hint_for`` an exception (an API error's system named; a retriable error is
    transient)."""
    code = reason_of(error)
    system = getattr(error, "system", None)
    hint = fix_hint_for(code, str(error), system if isinstance(system, str) else None)
    if hint is None and isinstance(error, TetherError) and error.retriable:
        hint = fix_hint_for("TransportError")
    return hint


def record_of_key(key: bytes | None) -> str | None:
    """The record a message key names: ``system/resource/id`` for a change (``record_key``),
    ``link <id>`` for a command or outcome (``link_key``); None when there is no readable key."""
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.split("/", 3)
    if len(parts) == 4 and parts[1] in ("poweroffice", "wix"):
        return "/".join(parts[1:])
    return f"link {text}" if "/" not in text else text


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
        identity: str | None = None,
        record: str | None = None,
        tenant: str | None = None,
    ) -> Any:
        """Produce the dead letter; returns the producer's future (the caller flushes).

        ``tenant``: the input's tenant, when a service serves several (default: the writer's).

        ``identity`` names an input without a topic position (e.g. an API record: source plus
        content) so that parking the same input again gets the same ``dead_letter_id``.
        ``record`` names the record (``system/resource/id``; default: read from ``key``); it and
        the fix (``fix_hint``) follow the error in ``error_message`` and in the log line.
        """
        now = datetime.now(UTC)
        # Deterministic id for inputs with a position or an identity, so re-parking on replay
        # (or on the next pass over the same API record) is recognisable.
        if source_topic is not None and partition is not None and offset is not None:
            name = f"{source_topic}/{partition}/{offset}"
            dead_letter_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tether:dead:{name}"))
        elif identity is not None:
            name = f"{self.stage}:{identity}"
            dead_letter_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tether:dead:{name}"))
        else:
            dead_letter_id = str(uuid.uuid4())
        reason = reason_of(error)
        record = record or record_of_key(key)
        hint = fix_hint(error)
        message = str(error)[:1500]
        if record:
            message += f" | record: {record}"
        if hint:
            message += f" | fix: {hint}"
        letter = {
            "dead_letter_id": dead_letter_id,
            "tenant": tenant if tenant is not None else self.tenant,
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
        try:
            future = self.producer.send(
                self.topic, value=self.codec.encode("DeadLetter", letter), key=key
            )
        except KafkaError as exc:  # e.g. no metadata within max_block_ms: Kafka is away
            raise TransportError(f"dead letter not sent: {type(exc).__name__}") from exc
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
                    "record": record,
                    "fix": hint,
                }
            },
        )
        return future
