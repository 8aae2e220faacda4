"""The loader's pure rules: what to write for a command, and what an answer means.

Everything here is a function of a command, the target resource's descriptor (its accessor
table, key/version/reference fields: ``services.core.connector.ResourceDescriptor``) and the
target state the shell read — no HTTP, no Kafka — so each rule is tested on its own
(``tests/loader/test_plan.py``). No system is named: what a field means comes from the
connector's accessor table.

- ``LoaderCommand`` / ``Result``: a decoded command and the outcome the shell reports for it;
- ``field_values`` turns the command's field paths into the values the API takes (the
  accessors' ``value``: trimmed text, or the property's JSON type — ``"true"`` -> ``True``);
  ``holds`` says a record already has them (each field's comparison form: names with
  collapsed whitespace, e-mails case-folded, phones in E.164, or exact equality);
- updates guarded by a version: ``update_base`` is the record the update is computed against
  (``target_record`` at ``expected_revision``); ``decide_fresh`` / ``decide_after_conflict``
  turn a freshly read record into write / NOOP / CONFLICT;
- updates guarded by values: ``guarded_patch`` builds the ``replace`` values and the ``test``
  guards (from ``expected``, for exactly the properties written); ``create_values`` the create
  values and the idempotency reference;
- ``failure`` classifies a permanent (or exhausted) error into a REJECTED/FAILED result whose
  code and message carry no personal data.

Pure module: it imports no I/O library (only the standard library, ``services.core.errors``
and the connector interface's types, ``services.core.connector``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.core.connector import FieldAccessor, FieldTable, ResourceDescriptor
from services.core.contract import CommandAction as Action
from services.core.contract import OutcomeStatus as Status
from services.core.errors import ApiError, ContractError, TetherError

__all__ = [
    "Action",
    "FieldValues",
    "LoaderCommand",
    "Patch",
    "Result",
    "Status",
    "Step",
    "create_values",
    "decide_after_conflict",
    "decide_fresh",
    "failure",
    "field_values",
    "guarded_patch",
    "holds",
    "matches_expected",
    "numeric_id",
    "record_version",
    "strip_nulls",
    "update_base",
]


def _clean(value: object) -> str | None:
    """The value as text, trimmed; ``None`` for missing or blank values."""
    if value is None:
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text or None


@dataclass(frozen=True)
class LoaderCommand:
    """A ``tether.Command`` as the loader uses it (``target_record`` in API form, or None)."""

    command_id: str
    tenant: str
    link_id: str
    system: str
    resource: str
    action: Action
    target_id: str | None = None
    parent_id: str | None = None
    fields: Mapping[str, str | None] = field(default_factory=dict)
    expected: Mapping[str, str | None] = field(default_factory=dict)
    expected_revision: int | None = None
    target_record: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    caused_by: str = ""
    cause_changed_at: datetime | None = None
    """When the live change that caused it was made at its source (None: not a live change)."""
    allow_duplicates: bool = False
    """A create even when another record has its natural key (an operator's CREATE_NEW_CONTACT)."""

    def require_target_id(self) -> str:
        if not self.target_id:
            raise ContractError(f"{self.action.value} command {self.command_id} has no target_id")
        return self.target_id


@dataclass(frozen=True)
class Result:
    """What happened to one command (becomes a ``tether.Outcome``)."""

    status: Status
    target_id: str | None = None
    record: Mapping[str, Any] | None = None
    """The target record in API form: after the write, or the fresh state for a conflict."""
    revision: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def is_failure(self) -> bool:
        return self.status in (Status.REJECTED, Status.FAILED)


class Step(StrEnum):
    """What to do after reading the current target state."""

    WRITE = "write"
    NOOP = "noop"
    CONFLICT = "conflict"


# ------------------------------------------------------------------------------------------------
# Field values (through the target resource's accessor table)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldValues:
    """The values a command writes, by field path, as the API takes them.

    A missing path is left alone; ``None`` clears.
    """

    values: Mapping[str, Any]

    def __bool__(self) -> bool:
        return bool(self.values)

    def get(self, path: str) -> Any:
        return self.values.get(path)


def _accessor(fields: FieldTable, command: LoaderCommand, path: str) -> FieldAccessor:
    accessor = fields.get(path)
    if accessor is None:
        raise ContractError(f"{command.system} command writes an unknown field {path!r}")
    return accessor


def field_values(command: LoaderCommand, fields: FieldTable) -> FieldValues:
    """The command's fields as the values the API takes; an unknown path is a
    ``ContractError``."""
    return FieldValues(
        {
            path: _accessor(fields, command, path).value(text)
            for path, text in command.fields.items()
        }
    )


def holds(record: Mapping[str, Any], values: FieldValues, fields: FieldTable) -> bool:
    """Whether ``record`` already has every value (each field's comparison form)."""
    return all(fields[path].holds(record, value) for path, value in values.values.items())


def matches_expected(
    record: Mapping[str, Any], expected: Mapping[str, str | None], fields: FieldTable
) -> bool:
    """Whether ``record`` still has the values the command was computed against (known paths
    only; the guard used when a command carries no version)."""
    for path, text in expected.items():
        accessor = fields.get(path)
        if accessor is not None and not accessor.holds(record, accessor.value(text)):
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Updates guarded by a version (the record's revision)
# ------------------------------------------------------------------------------------------------


def strip_nulls(value: Any) -> Any:
    """Drop ``None`` members recursively (an Avro record brings absent API fields back as null;
    for a JSON record null and absent mean the same)."""
    if isinstance(value, Mapping):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value


def record_version(record: Mapping[str, Any], version_field: str) -> int | None:
    """A record's numeric version (a revision), or None."""
    value = record.get(version_field)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def update_base(command: LoaderCommand, resource: ResourceDescriptor) -> dict[str, Any] | None:
    """The record the update was computed against: ``target_record`` at ``expected_revision``
    (or its own version when the command names none). ``None`` when the command carries no
    usable record (another id, no version): the shell then reads the record first."""
    record = command.target_record
    if record is None or record.get(resource.key_field) != command.target_id:
        return None
    base: dict[str, Any] = strip_nulls(dict(record))
    revision = command.expected_revision
    if revision is None:
        revision = record_version(base, resource.version_field)
    if revision is None:
        return None
    base[resource.version_field] = revision
    return base


def decide_fresh(
    command: LoaderCommand,
    values: FieldValues,
    fresh: Mapping[str, Any],
    resource: ResourceDescriptor,
) -> Step:
    """Given the record as it is now: NOOP when it already has the values; WRITE when it is
    still the state the command was computed against (same version, or — without a version —
    the ``expected`` values); else CONFLICT."""
    if holds(fresh, values, resource.fields):
        return Step.NOOP
    if command.expected_revision is not None:
        version = record_version(fresh, resource.version_field)
        return Step.WRITE if version == command.expected_revision else Step.CONFLICT
    if matches_expected(fresh, command.expected, resource.fields):
        return Step.WRITE
    return Step.CONFLICT


def decide_after_conflict(
    values: FieldValues, fresh: Mapping[str, Any], fields: FieldTable
) -> Status:
    """A write refused because the target changed: NOOP if the fresh state already has the
    desired values (e.g. a re-sent command whose first write landed), else CONFLICT."""
    return Status.NOOP if holds(fresh, values, fields) else Status.CONFLICT


# ------------------------------------------------------------------------------------------------
# Updates guarded by the expected values (JSON Patch ``test``), creates with a reference field
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    """``replace`` values and ``test`` guards (the API's types) of one guarded update."""

    changes: dict[str, Any]
    guards: dict[str, Any]


def guarded_patch(command: LoaderCommand, resource: ResourceDescriptor) -> Patch:
    """The patch of an update: every field replaced, and a guard from ``expected`` for exactly
    the properties it changes (none for a property the mapper had no value for). The
    idempotency reference is never changed."""
    changes: dict[str, Any] = {}
    guards: dict[str, Any] = {}
    for path, text in command.fields.items():
        if path == resource.reference_field:
            raise ContractError(f"an update must not change the idempotency reference {path}")
        accessor = _accessor(resource.fields, command, path)
        changes[path] = accessor.value(text)
        if path in command.expected:
            guards[path] = accessor.value(command.expected[path])
    return Patch(changes, guards)


def create_values(
    command: LoaderCommand, resource: ResourceDescriptor
) -> tuple[dict[str, Any], str]:
    """Create values and the idempotency reference (``idempotency_key``; required where the
    resource says so: a create that could not be found again is never sent — elsewhere the link
    id stands in). A field holding the reference must hold this one; it is left to the target,
    which writes the reference itself."""
    reference = _clean(command.idempotency_key)
    if reference is None:
        if resource.reference_required:
            raise ContractError(f"create command {command.command_id} has no idempotency_key")
        reference = command.link_id
    values: dict[str, Any] = {}
    for path, text in command.fields.items():
        if path == resource.reference_field:
            if _clean(text) not in (None, reference):
                raise ContractError(f"{path} differs from the command's idempotency_key")
            continue
        values[path] = _accessor(resource.fields, command, path).value(text)
    if not values:
        raise ContractError(f"create command {command.command_id} has no fields")
    return values, reference


def numeric_id(value: str | None, what: str) -> int:
    """A numeric record id from the command's text."""
    if value is None or not value.strip().isdigit():
        raise ContractError(f"{what} is not a numeric id")
    return int(value)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------

DUPLICATE_CONTACT = "DUPLICATE_CONTACT_EXISTS"
MESSAGE_LIMIT = 500


def failure(error: BaseException, *, attempts: int = 1) -> Result:
    """The outcome of a command that ended in ``error``.

    - The target refused the write itself (400/422 validation, a duplicate on update, a 409 that
      is not a stale guard): REJECTED — the mapper records the refused values.
    - Anything else (exhausted transient errors, 401/403/404, a malformed command, a bug):
      FAILED.

    ``error_code`` is the API's code or the error class; ``error_message`` the error's text,
    which the connectors keep free of personal data — an unexpected exception contributes only
    its class name.
    """
    if not isinstance(error, TetherError):
        return Result(
            Status.FAILED,
            error_code="InternalError",
            error_message=f"unexpected {type(error).__name__} (see the loader log)",
        )
    message = str(error)
    if error.retriable:
        message = f"gave up after {attempts} attempts: {message}"
    code = error.code
    status = Status.FAILED
    if isinstance(error, ApiError):
        code = error.error_code or error.code
        if not error.retriable and error.status in (400, 409, 422):
            status = Status.REJECTED
    return Result(status, error_code=code, error_message=message[:MESSAGE_LIMIT])
