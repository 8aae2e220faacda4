"""Operator actions from the console: validate a request, publish it, report its result.

An action is never carried out here: it is an ``OperatorAction`` event
(``services.core.operator_actions``) produced to ``<prefix>.operator-actions`` and applied by the
mapper with its tracking-row and outbox discipline (DESIGN.md "Operators act through events").
The API answers once Kafka has **acknowledged** the event, with its ``action_id``; the caller
polls ``GET /api/v1/actions/{action_id}`` until the mapper's audit row
(``mapper_operator_actions``) shows ``applied`` or ``rejected``.

The one exception is re-driving dead letters: the event is published first (the audit trail),
then the console re-drives with the replay tool's logic (``KafkaView.redrive``) — the mapper
cannot re-drive the loader's dead letters.

Idempotency: the ``action_id`` is derived from the tenant, the caller and the request's
``idempotency_key`` (the web form carries one per confirmation page, the CLI one per command), so
a retried request is the same action and the mapper applies it once.

Logging: one line per action with its id, kind and the caller's identity name — never the
operator's free-text reason, never a value.

Imports: standard library, kafka-python's errors and the core codec/operator-actions/topics
modules; the producer and the dead-letter view are passed in.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.errors import KafkaError

from services.console.auth import Identity
from services.console.metrics import ConsoleMetrics
from services.core.codec import AvroCodec
from services.core.errors import TransportError
from services.core.operator_actions import MESSAGE_TYPE, ActionKind, action_key, new_action
from services.core.topics import TopicLayout

log = logging.getLogger("tether.console.actions")

#: The fields of a request body besides ``kind``/``reason``/``idempotency_key``.
TARGET_FIELDS = (
    "review_id",
    "link_id",
    "contact_id",
    "side",
    "command_id",
    "deadletter_stage",
)
MAX_REASON = 2000


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...


class Redriver(Protocol):
    def redrive(self, stage: str, ids: list[str]) -> int: ...


class ActionRefusedError(ValueError):
    """The request is not a valid action (answered 400 with the message)."""


@dataclass(frozen=True)
class Submitted:
    action_id: str
    kind: str
    redriven: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action_id": self.action_id,
            "kind": self.kind,
            "status": "published",
            "result": f"/api/v1/actions/{self.action_id}",
        }
        if self.redriven is not None:
            out["redriven"] = self.redriven
        return out


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)):
        raise ActionRefusedError(f"{name} must be a string")
    return str(value).strip() or None


def build_action(identity: Identity, tenant: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``OperatorAction`` datum of a request body (``ActionRefusedError`` if invalid). Pure
    apart from the clock and, without an ``idempotency_key``, a random one."""
    if not identity.is_operator:
        raise PermissionError("the operator role is needed to act")
    kind_text = _text(body, "kind")
    try:
        kind = ActionKind(str(kind_text or "").upper())
    except ValueError:
        kinds = ", ".join(k.value for k in ActionKind)
        raise ActionRefusedError(f"kind must be one of {kinds}") from None
    reason = _text(body, "reason") or ""
    if len(reason) > MAX_REASON:
        raise ActionRefusedError(f"reason is longer than {MAX_REASON} characters")
    record = body.get("record")
    record_tuple: tuple[str, str, str] | None = None
    if isinstance(record, Mapping):
        parts = (_text(record, "system"), _text(record, "resource"), _text(record, "id"))
        if not all(parts):
            raise ActionRefusedError("record needs system, resource and id")
        record_tuple = (str(parts[0]), str(parts[1]), str(parts[2]))
    elif record is not None:
        raise ActionRefusedError("record must be an object {system, resource, id}")
    ids = body.get("deadletter_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ActionRefusedError("deadletter_ids must be a list of strings")
    targets = {name: _text(body, name) for name in TARGET_FIELDS}
    try:
        return new_action(
            tenant=tenant,
            actor=identity.name,
            role=identity.role.value,
            kind=kind,
            reason=reason,
            idempotency_key=_text(body, "idempotency_key") or str(uuid.uuid4()),
            record=record_tuple,
            deadletter_ids=ids,
            review_id=targets["review_id"],
            link_id=targets["link_id"],
            contact_id=targets["contact_id"],
            side=targets["side"],
            command_id=targets["command_id"],
            deadletter_stage=targets["deadletter_stage"],
        )
    except ValueError as exc:
        raise ActionRefusedError(str(exc)) from None


class Actions:
    def __init__(
        self,
        producer: Producer,
        codec: AvroCodec,
        layout: TopicLayout,
        metrics: ConsoleMetrics,
        redriver: Redriver | None = None,
        ack_timeout: float = 10.0,
    ) -> None:
        self.producer = producer
        self.codec = codec
        self.layout = layout
        self.metrics = metrics
        self.redriver = redriver
        self.ack_timeout = ack_timeout

    def submit(self, identity: Identity, tenant: str, body: Mapping[str, Any]) -> Submitted:
        """Validate, publish and (re-drive only) carry out; raises ``ActionRefusedError``,
        ``PermissionError`` or ``TransportError``."""
        kind_label = str(body.get("kind") or "unknown").upper()
        if kind_label not in ActionKind.__members__:
            kind_label = "unknown"
        try:
            datum = build_action(identity, tenant, body)
        except (ActionRefusedError, PermissionError):
            self.metrics.actions.labels(kind_label, "refused").inc()
            raise
        try:
            future = self.producer.send(
                self.layout.operator_actions,
                key=action_key(datum),
                value=self.codec.encode(MESSAGE_TYPE, datum),
            )
            self.producer.flush(timeout=self.ack_timeout)  # type: ignore[attr-defined]
            future.get(timeout=self.ack_timeout)
        except KafkaError as exc:
            self.metrics.actions.labels(kind_label, "failed").inc()
            raise TransportError(f"the action was not acknowledged: {type(exc).__name__}") from exc
        self.metrics.actions.labels(kind_label, "published").inc()
        log.info(
            "operator action %s published",
            datum["kind"],
            extra={
                "fields": {
                    "action_id": datum["action_id"],
                    "kind": datum["kind"],
                    "actor": identity.name,
                    "auth": identity.method,
                    "tenant": tenant,
                }
            },
        )
        redriven = None
        if datum["kind"] == ActionKind.REDRIVE_DEAD_LETTERS.value and self.redriver is not None:
            stage = str(datum["deadletter_stage"])
            redriven = self.redriver.redrive(stage, list(datum["deadletter_ids"]))
            self.metrics.redriven.labels(stage).inc(redriven)
            log.info(
                "dead letters re-driven",
                extra={
                    "fields": {
                        "action_id": datum["action_id"],
                        "stage": stage,
                        "count": redriven,
                        "actor": identity.name,
                    }
                },
            )
        return Submitted(str(datum["action_id"]), str(datum["kind"]), redriven)
