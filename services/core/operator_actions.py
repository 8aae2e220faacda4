"""Operator actions: building the ``OperatorAction`` datum the console and the CLI publish.

An operator's decision (link a record in review to a candidate, create anyway, ignore, unlink,
re-sync, retry a write, re-drive dead letters, release held deletes) is an event on
``TopicLayout.operator_actions``, applied by the mapper with the same tracking-row and outbox
discipline as a change (``docs/mapper.md``, "Operator actions"). This module is the one place
that knows the datum's shape:

* ``new_action(...)`` checks the targets the kind needs and returns the datum to encode
  (``codec.encode("OperatorAction", datum)``); its ``action_id`` is derived from the tenant, the
  actor and the request's idempotency key, so a retried request is the same action (the mapper
  applies an ``action_id`` once);
* ``action_key(datum)`` is the Kafka key: the link id, else the record identity, else the review
  id, else the action id;
* ``ACTING_ROLES`` are the roles allowed to act (the mapper records any other as rejected).

The ``reason`` is the operator's free text and may hold personal data: never log it.

Imports: standard library and the core topics and contract modules only (no I/O).
``ActionKind`` is ``services.core.contract.OperatorActionKind``, re-exported here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from services.core.contract import OperatorActionKind as ActionKind
from services.core.topics import link_key, record_key

__all__ = [
    "ACTING_ROLES",
    "MESSAGE_TYPE",
    "SIDES",
    "ActionKind",
    "action_id_for",
    "action_key",
    "new_action",
]

MESSAGE_TYPE: Final = "OperatorAction"
#: Roles that may act; a read-only caller is refused by the API and, should an action with
#: another role reach the topic, recorded as rejected by the mapper.
ACTING_ROLES: Final = frozenset({"operator", "admin"})
SIDES: Final = ("wix", "poweroffice")
DEADLETTER_STAGES: Final = ("mapper", "loader")

#: Namespace of action ids (never change it: retried requests would become new actions).
_NAMESPACE: Final = uuid.UUID("0b5f3f8a-9d2e-5c4b-8a61-7e746865722d")


def action_id_for(tenant: str, actor: str, idempotency_key: str) -> str:
    """The action id of a request: same tenant, actor and idempotency key -> same id."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((tenant, actor, idempotency_key))))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def new_action(
    *,
    tenant: str,
    actor: str,
    role: str,
    kind: ActionKind | str,
    reason: str,
    idempotency_key: str,
    at: datetime | None = None,
    review_id: str | None = None,
    link_id: str | None = None,
    record: tuple[str, str, str] | None = None,
    contact_id: str | None = None,
    side: str | None = None,
    command_id: str | None = None,
    deadletter_stage: str | None = None,
    deadletter_ids: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``OperatorAction`` datum for one request; ``ValueError`` when a target is missing.

    ``record`` is ``(system, resource, record_id)``. Which targets each kind needs is listed in
    ``docs/mapper.md``; the mapper re-checks everything against its state (an action naming an
    unknown review or a contact that is not a candidate is recorded as rejected)."""
    kind = ActionKind(kind)
    _require(bool(tenant and actor and role), "tenant, actor and role are required")
    _require(bool(reason and reason.strip()), "a reason is required")
    _require(bool(idempotency_key), "an idempotency key is required")
    has_record = record is not None and all(record)
    if kind is ActionKind.LINK_TO_CANDIDATE:
        _require(bool(review_id and contact_id), "LINK_TO_CANDIDATE needs review_id and contact_id")
    elif kind is ActionKind.CREATE_NEW_CONTACT:
        _require(bool(review_id) or has_record, "CREATE_NEW_CONTACT needs review_id or a record")
    elif kind in (ActionKind.IGNORE_RECORD, ActionKind.UNIGNORE_RECORD):
        _require(has_record or bool(review_id), f"{kind.value} needs a record (or review_id)")
    elif kind is ActionKind.UNLINK:
        _require(bool(link_id), "UNLINK needs link_id")
    elif kind is ActionKind.RESYNC:
        _require(bool(link_id) and side in SIDES, f"RESYNC needs link_id and side in {SIDES}")
    elif kind is ActionKind.RETRY_COMMAND:
        _require(bool(link_id and command_id), "RETRY_COMMAND needs link_id and command_id")
    elif kind is ActionKind.REDRIVE_DEAD_LETTERS:
        _require(
            deadletter_stage in DEADLETTER_STAGES,
            f"REDRIVE_DEAD_LETTERS needs deadletter_stage in {DEADLETTER_STAGES}",
        )
    when = at if at is not None else datetime.now(UTC)
    system, resource, record_id = record if record is not None else (None, None, None)
    return {
        "action_id": action_id_for(tenant, actor, idempotency_key),
        "tenant": tenant,
        "actor": actor,
        "role": role,
        "at": when,
        "reason": reason,
        "kind": kind.value,
        "review_id": review_id,
        "link_id": link_id,
        "record_system": system,
        "record_resource": resource,
        "record_id": record_id,
        "contact_id": contact_id,
        "side": side,
        "command_id": command_id,
        "deadletter_stage": deadletter_stage,
        "deadletter_ids": list(deadletter_ids),
    }


def action_key(datum: dict[str, Any]) -> bytes:
    """The Kafka key of an action: link id, else record identity, else review id, else its id."""
    if datum.get("link_id"):
        return link_key(str(datum["link_id"]))
    if datum.get("record_system") and datum.get("record_resource") and datum.get("record_id"):
        return record_key(
            str(datum["tenant"]),
            str(datum["record_system"]),
            str(datum["record_resource"]),
            str(datum["record_id"]),
        )
    if datum.get("review_id"):
        return str(datum["review_id"]).encode()
    return str(datum["action_id"]).encode()
