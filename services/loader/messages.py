"""``tether.Command`` in, ``tether.Outcome`` out: the loader's side of the Avro contracts.

- ``decode_command`` turns a Command payload into a ``plan.LoaderCommand`` (``target_record``
  unwrapped to its API form with ``records.unwrap_record``). Undecodable bytes raise
  ``DecodeError``; a command that decodes but cannot be meant (unknown system/resource) raises
  ``ContractError`` — both become dead letters.
- ``outcome_datum`` builds the Outcome for a command and its ``Result``: ``target_record`` wrapped
  with ``records.wrap_record``; ``target_revision`` is the version a version-guarded target
  reported (none for a value-guarded one); ``target_id`` is the created/linked id, else the
  command's target.
- ``outcome_command_id`` reads just the ``command_id`` of an Outcome payload (the start-up index
  of completed commands reads the whole outcomes topic, so it skips decoding the records).

Imports: the core codec/records/errors/topics modules and ``plan``; no Kafka client, no HTTP.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.core.codec import HEADER_LENGTH, MAGIC, AvroCodec
from services.core.errors import ContractError, DecodeError
from services.core.records import unwrap_record, wrap_record
from services.core.topics import RESOURCES
from services.loader.plan import Action, LoaderCommand, Result

log = logging.getLogger("tether.loader")


def decode_command(codec: AvroCodec, payload: bytes) -> LoaderCommand:
    datum = codec.decode(payload, "Command")
    return command_from_datum(datum)


def command_from_datum(datum: dict[str, Any]) -> LoaderCommand:
    system = datum["target_system"]
    resource = datum["target_resource"]
    if resource not in RESOURCES.get(system, ()):
        raise ContractError(f"command for an unknown target {system}/{resource}")
    try:
        action = Action(datum["action"])
    except ValueError:
        raise ContractError("command with an unknown action") from None
    unwrapped = unwrap_record(datum.get("target_record"))
    return LoaderCommand(
        command_id=datum["command_id"],
        tenant=datum["tenant"],
        link_id=datum["link_id"],
        system=system,
        resource=resource,
        action=action,
        target_id=datum.get("target_id"),
        parent_id=datum.get("target_parent_id"),
        fields=dict(datum.get("fields") or {}),
        expected=dict(datum.get("expected") or {}),
        expected_revision=datum.get("expected_revision"),
        target_record=unwrapped[1] if unwrapped is not None else None,
        idempotency_key=datum.get("idempotency_key"),
        caused_by=datum.get("caused_by") or "",
        cause_changed_at=datum.get("cause_changed_at"),
        allow_duplicates=bool(datum.get("allow_duplicates", False)),
    )


def command_datum(command: LoaderCommand, created_at: datetime | None = None) -> dict[str, Any]:
    """The Avro datum of a command (tests and the benchmark produce commands with it)."""
    return {
        "command_id": command.command_id,
        "tenant": command.tenant,
        "link_id": command.link_id,
        "target_system": command.system,
        "target_resource": command.resource,
        "target_id": command.target_id,
        "target_parent_id": command.parent_id,
        "action": command.action.value,
        "fields": dict(command.fields),
        "expected": dict(command.expected),
        "expected_revision": command.expected_revision,
        "target_record": (
            wrap_record(command.system, command.resource, command.target_record)
            if command.target_record is not None
            else None
        ),
        "idempotency_key": command.idempotency_key,
        "caused_by": command.caused_by or command.command_id,
        "created_at": created_at or datetime.now(UTC),
        "cause_changed_at": command.cause_changed_at,
        "allow_duplicates": command.allow_duplicates,
    }


def outcome_datum(
    command: LoaderCommand, result: Result, *, attempts: int, now: datetime | None = None
) -> dict[str, Any]:
    record: Any = None
    if result.record is not None:
        try:
            record = wrap_record(command.system, command.resource, result.record)
        except ContractError as exc:
            # The outcome still goes out (the mapper needs it); the record is left off.
            log.warning(
                "outcome record does not fit its schema: %s",
                exc,
                extra={"fields": {"command_id": command.command_id}},
            )
    return {
        "command_id": command.command_id,
        "tenant": command.tenant,
        "link_id": command.link_id,
        "target_system": command.system,
        "target_resource": command.resource,
        "target_id": result.target_id if result.target_id is not None else command.target_id,
        "action": command.action.value,
        "status": result.status.value,
        "target_record": record,
        "target_revision": result.revision,
        "error_code": result.error_code,
        "error_message": result.error_message,
        "attempts": max(1, attempts),
        "completed_at": now or datetime.now(UTC),
    }


def _read_long(data: bytes, position: int) -> tuple[int, int]:
    """An Avro zig-zag varint at ``position``: (value, next position)."""
    shift = 0
    raw = 0
    while True:
        if position >= len(data) or shift > 63:
            raise DecodeError("Outcome: truncated varint")
        byte = data[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return (raw >> 1) ^ -(raw & 1), position


def outcome_command_id(codec: AvroCodec, payload: bytes) -> str:
    """The ``command_id`` of an Outcome payload.

    Every released Outcome schema starts with the string field ``command_id``: for those the id
    is read straight from the body (a length-prefixed string after the 10-byte header); any other
    writer schema is decoded in full. Raises ``DecodeError`` for anything that is not an Outcome.
    """
    data = bytes(payload)
    if len(data) < HEADER_LENGTH or data[:2] != MAGIC:
        # Not single-object (the Confluent framing, or garbage): decode in full, which says why.
        return str(codec.decode(data, "Outcome")["command_id"])
    writer = codec.registry.writers.get(data[2:HEADER_LENGTH])
    if writer is None or writer[0] != "Outcome":
        raise DecodeError("Outcome: unknown or foreign schema fingerprint")
    first = writer[1].get("fields", [{}])[0] if isinstance(writer[1], dict) else {}
    if first.get("name") == "command_id" and first.get("type") == "string":
        length, start = _read_long(data, HEADER_LENGTH)
        if length < 0 or start + length > len(data):
            raise DecodeError("Outcome: corrupt command_id")
        try:
            return data[start : start + length].decode()
        except UnicodeDecodeError:
            raise DecodeError("Outcome: command_id is not UTF-8") from None
    return str(codec.decode(data, "Outcome")["command_id"])
