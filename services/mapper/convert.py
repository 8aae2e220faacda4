"""Translation between the Avro contracts and the domain's inputs/outputs (pure, no I/O).

* ``changes_from_event`` — a decoded ``ChangeEvent`` -> domain ``Change`` objects: UPSERT and
  DELETE give one; a MERGE of hub records gives a delete per merged-away record
  (``merged_into`` = the survivor) followed by the survivor's upsert when the event carries its
  state;
* ``outcome_from_datum`` — a decoded ``Outcome`` -> domain ``Outcome`` (status -> kind; the
  outcome id is derived from its content, the revision and the source timestamp are read from
  the carried target record);
* ``command_datum`` — a domain ``Command`` -> the Avro ``Command`` datum (see ``docs/mapper.md``
  for the exact semantics the loader codes against).

NUL (U+0000) is removed here, at the mapper's boundary, from the record an event or outcome
carries and from an outcome's error text (the NUL rule, ``domain.normalize``; PostgreSQL cannot
store it): everything after this point — comparison, state, history, commands — sees one value.
An *identifier* holding NUL is not rewritten (that would address another record): it is a
``ContractError``.

Anything that violates the contract raises ``ContractError`` (the loop turns it into a dead
letter). What differs per system (id and timestamp fields, revisions, create references) comes
from ``wiring.RECORDS``. Imports: the core records/errors/timestamps modules, pydantic, the domain
and ``wiring`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.core.errors import ContractError
from services.core.records import record_type_for, unwrap_record, wrap_record
from services.core.timestamps import parse_api_timestamp
from services.core.topics import RESOURCES
from services.mapper.domain import (
    FLOWS,
    Change,
    Command,
    CommandAction,
    Operation,
    Outcome,
    OutcomeKind,
    RecordRef,
    is_hub,
)
from services.mapper.domain.identity import derive_id
from services.mapper.domain.normalize import has_nul, without_nul
from services.mapper.wiring import RECORDS, RecordConventions

OUTCOME_KINDS: dict[str, OutcomeKind] = {
    "CREATED": OutcomeKind.CREATED,
    "APPLIED": OutcomeKind.APPLIED,
    "NOOP": OutcomeKind.NOOP,
    "LINKED_EXISTING": OutcomeKind.LINKED_EXISTING,
    "CONFLICT": OutcomeKind.CONFLICT,
    "REJECTED": OutcomeKind.REJECTED,
    "FAILED": OutcomeKind.FAILED,
}


def _conventions(system: str) -> RecordConventions:
    conventions = RECORDS.get(system)
    if conventions is None:
        raise ContractError(f"unknown system {system}")
    return conventions


def referenced_link_id(system: str, resource: str, record: Mapping[str, Any] | None) -> str | None:
    """The link id a record's create reference names (a record the engine created), else None."""
    conventions = RECORDS.get(system)
    field = conventions.reference_fields.get(resource) if conventions is not None else None
    value = record.get(field) if field is not None and record is not None else None
    if conventions is not None and isinstance(value, str):
        prefix = conventions.reference_prefix
        if value.startswith(prefix):
            return value.removeprefix(prefix) or None
    return None


def _check_resource(system: str, resource: str) -> None:
    if resource not in RESOURCES.get(system, ()):
        raise ContractError(f"unknown system/resource {system}/{resource}")


def _record(branch: Any, system: str, resource: str) -> dict[str, Any] | None:
    """The API record carried by a decoded union branch, checked against system/resource."""
    unwrapped = unwrap_record(branch)
    if unwrapped is None:
        return None
    type_name, record = unwrapped
    if type_name != record_type_for(system, resource):
        raise ContractError(f"{system}/{resource} event carries a {type_name}")
    return without_nul(record)


#: Envelope fields that identify something: a NUL there is a broken contract, not a value.
_ID_FIELDS = (
    "event_id",
    "tenant",
    "record_id",
    "parent_id",
    "merged_ids",
    "command_id",
    "link_id",
    "target_id",
)


def _check_ids(datum: Mapping[str, Any]) -> None:
    for name in _ID_FIELDS:
        if has_nul(datum.get(name)):
            raise ContractError(f"{name} contains a NUL character")


def _revision(system: str, text: str | None) -> int | None:
    """A version text as the record's revision, for a system whose records have one."""
    if text is None or not _conventions(system).revisioned:
        return None
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else None


def changes_from_event(datum: Mapping[str, Any]) -> list[Change]:
    """Domain changes for one decoded ``ChangeEvent``."""
    _check_ids(datum)
    system = str(datum["system"])
    resource = str(datum["resource"])
    _check_resource(system, resource)
    record = _record(datum.get("record"), system, resource)
    operation = str(datum["operation"])
    record_id = str(datum["record_id"])
    if not record_id:
        raise ContractError(f"{system}/{resource} event without a record id")
    revision = _revision(system, datum.get("source_version"))
    base: dict[str, Any] = {
        "event_id": str(datum["event_id"]),
        "tenant": str(datum["tenant"]),
        "system": system,
        "resource": resource,
        "record_id": record_id,
        "source_ts": datum["source_timestamp"],
        "parent_id": datum.get("parent_id"),
        "parent_kind": datum.get("parent_kind"),
    }
    try:
        if operation == "UPSERT":
            if record is None:
                raise ContractError(f"upsert of {system}/{resource} without a record")
            return [Change(**base, revision=revision, record=record)]
        if operation == "DELETE":
            return [Change(**base, operation=Operation.DELETE)]
        if operation == "MERGE":
            if not is_hub(system, resource):
                raise ContractError(f"MERGE event for {system}/{resource} (not the hub)")
            changes = [
                Change(
                    event_id=f"{base['event_id']}/merged/{merged}",
                    tenant=base["tenant"],
                    system=system,
                    resource=resource,
                    record_id=str(merged),
                    operation=Operation.DELETE,
                    source_ts=base["source_ts"],
                    merged_into=record_id,
                )
                for merged in datum.get("merged_ids") or []
                if str(merged) != record_id
            ]
            if record is not None:
                changes.append(Change(**base, revision=revision, record=record))
            return changes
    except ValidationError as exc:
        raise ContractError(
            f"invalid {system}/{resource} change: {exc.error_count()} errors"
        ) from exc
    raise ContractError(f"unknown operation {operation!r}")


def record_timestamp(system: str, record: Mapping[str, Any] | None) -> datetime | None:
    """When the source system says ``record`` last changed (its ``changed_at_field``), or
    ``None``."""
    if record is None:
        return None
    value = record.get(_conventions(system).changed_at_field)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_api_timestamp(value)
    except ValueError:
        return None


def outcome_from_datum(datum: Mapping[str, Any]) -> Outcome:
    """The domain outcome for one decoded ``Outcome``."""
    _check_ids(datum)
    system = str(datum["target_system"])
    resource = str(datum["target_resource"])
    _check_resource(system, resource)
    status = str(datum["status"])
    kind = OUTCOME_KINDS.get(status)
    if kind is None:
        raise ContractError(f"unknown outcome status {status!r}")
    record = _record(datum.get("target_record"), system, resource)
    target_id = datum.get("target_id")
    if target_id is None and record is not None:
        raw_id = record.get(_conventions(system).id_field)
        target_id = str(raw_id) if raw_id is not None else None
    parent_id = None
    flow = FLOWS.get(resource)
    if flow is not None and flow.system == system and flow.parent_field is not None:
        parent = record.get(flow.parent_field) if record is not None else None
        parent_id = str(parent) if parent is not None else None
    revision = _revision(system, datum.get("target_revision"))
    completed_at = datum["completed_at"]
    outcome_id = derive_id(
        "outcome",
        datum["command_id"],
        status,
        target_id,
        datum.get("target_revision"),
        completed_at.isoformat() if isinstance(completed_at, datetime) else completed_at,
    )
    try:
        return Outcome(
            outcome_id=outcome_id,
            command_id=str(datum["command_id"]),
            tenant=str(datum["tenant"]),
            link_id=str(datum["link_id"]),
            kind=kind,
            target=RecordRef(
                tenant=str(datum["tenant"]),
                system=system,
                resource=resource,
                id=str(target_id) if target_id is not None else None,
                parent_id=parent_id,
            ),
            record=record,
            revision=revision,
            source_ts=record_timestamp(system, record),
            error_code=without_nul(datum.get("error_code")),
            error_message=without_nul(datum.get("error_message")),
        )
    except ValidationError as exc:
        raise ContractError(f"invalid outcome: {exc.error_count()} errors") from exc


def field_text(value: object) -> str | None:
    """A command field value as carried by the Avro map (string or null): strings as they are,
    booleans ``"true"``/``"false"``, numbers in JSON notation. The loader converts by the target
    field's type."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def idempotency_key(command: Command) -> str | None:
    """The key that finds a create again on retry: the target system's reference prefix + the
    link id (``wiring.RecordConventions``; the loader writes it where that system keeps it)."""
    if command.action is not CommandAction.CREATE:
        return None
    return f"{_conventions(command.target.system).reference_prefix}{command.link_id}"


def command_datum(
    command: Command,
    *,
    target_record: Mapping[str, Any] | None,
    caused_by: str,
    created_at: datetime,
    cause_changed_at: datetime | None = None,
) -> dict[str, Any]:
    """The Avro ``Command`` datum of a domain command (``cause_changed_at``: the source time
    of the live change that caused it, for freshness; None otherwise)."""
    target = command.target
    branch = None
    if target_record is not None and command.action is not CommandAction.CREATE:
        try:
            branch = wrap_record(target.system, target.resource, target_record)
        except ContractError:
            branch = None  # a stored record that no longer fits: the loader reads it fresh
    return {
        "command_id": command.command_id,
        "tenant": command.tenant,
        "link_id": command.link_id,
        "target_system": target.system,
        "target_resource": target.resource,
        "target_id": target.id,
        "target_parent_id": target.parent_id,
        "action": command.action.value.upper(),
        "fields": {name: field_text(value) for name, value in command.fields.items()},
        "expected": {name: field_text(value) for name, value in command.expected.items()},
        "expected_revision": command.expected_revision,
        "target_record": branch,
        "allow_duplicates": command.allow_duplicates,
        "idempotency_key": idempotency_key(command),
        "caused_by": caused_by,
        "created_at": created_at,
        "cause_changed_at": cause_changed_at,
    }
