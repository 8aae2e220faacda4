"""The loader's pure rules: what to write for a command, and what an answer means.

Everything here is a function of a command and the target state the shell read — no HTTP, no
Kafka — so each rule is tested on its own (``tests/loader/test_plan.py``):

- ``LoaderCommand`` / ``Result``: a decoded command and the outcome the shell reports for it;
- Wix: ``wix_values`` turns the command's Wix paths (``info.name.first``, ``info.name.last``,
  ``info.emails[primary].email``, ``info.phones[primary].phone``) into the four values the client
  writes; ``read_wix`` reads them back from a contact (the primary items); ``wix_holds`` says a
  contact already has them (comparison forms, as the mapper compares: names with collapsed
  whitespace, e-mails case-folded, phones in E.164); ``wix_base`` is the contact the update is
  computed against (``target_record`` at ``expected_revision``); ``decide_wix_fresh`` /
  ``decide_after_conflict`` turn a freshly read contact into write / NOOP / CONFLICT;
- PowerOffice: ``po_patch`` builds the ``replace`` values and the ``test`` guards (from
  ``expected``, for exactly the properties written), ``po_create`` the create values and the
  idempotency reference, ``po_holds`` says a record already has the desired values; values arrive
  as strings (the Avro map) and are coerced to the field's JSON type (``IsPerson`` -> bool);
- ``failure`` classifies a permanent (or exhausted) error into a REJECTED/FAILED result whose
  code and message carry no personal data.

Pure module: it imports no I/O library (only the standard library, ``phonenumbers`` and
``services.core.errors``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import phonenumbers

from services.core.errors import ApiError, ContractError, TetherError
from services.core.wix_items import clean_text as _clean
from services.core.wix_items import primary_item

__all__ = [
    "PO_REFERENCE_FIELDS",
    "WIX_FIELDS",
    "Action",
    "FieldTypes",
    "LoaderCommand",
    "PoPatch",
    "Result",
    "Status",
    "Step",
    "WixValues",
    "coerce",
    "contact_revision",
    "decide_after_conflict",
    "decide_wix_fresh",
    "failure",
    "po_create",
    "po_holds",
    "po_id",
    "po_patch",
    "read_wix",
    "strip_nulls",
    "wix_base",
    "wix_holds",
    "wix_matches_expected",
    "wix_values",
]


class Action(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class Status(StrEnum):
    """``tether.OutcomeStatus``."""

    CREATED = "CREATED"
    APPLIED = "APPLIED"
    NOOP = "NOOP"
    LINKED_EXISTING = "LINKED_EXISTING"
    CONFLICT = "CONFLICT"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


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
    """Wix create: create even when another contact has its e-mail/phone (CREATE_NEW_CONTACT)."""

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
# Comparison forms (the mapper's: format-only differences are no difference)
# ------------------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
_PHONE_CHARS = re.compile(r"[^0-9+]")
DEFAULT_REGION = "NO"


def _name_key(value: object) -> str | None:
    text = _clean(value)
    return _WHITESPACE.sub(" ", text) if text is not None else None


def _email_key(value: object) -> str | None:
    text = _clean(value)
    return text.casefold() if text is not None else None


def _phone_key(value: object, region: str | None = None) -> str | None:
    text = _clean(value)
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, (region or DEFAULT_REGION).upper())
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return f"{e164};ext={number.extension}" if number.extension else e164
    digits = _PHONE_CHARS.sub("", text)
    return digits or text.casefold()


_KEYS = {
    "first_name": _name_key,
    "last_name": _name_key,
    "email": _email_key,
    "phone": _phone_key,
}


# ------------------------------------------------------------------------------------------------
# Wix
# ------------------------------------------------------------------------------------------------

#: The Wix paths a command may write -> the value the client writes.
WIX_FIELDS: Mapping[str, str] = {
    "info.name.first": "first_name",
    "info.name.last": "last_name",
    "info.emails[primary].email": "email",
    "info.phones[primary].phone": "phone",
}


@dataclass(frozen=True)
class WixValues:
    """The values a Wix command writes, by ``first_name``/``last_name``/``email``/``phone``.

    A missing key is left alone; ``None`` clears.
    """

    values: Mapping[str, str | None]

    def __bool__(self) -> bool:
        return bool(self.values)

    def get(self, name: str) -> str | None:
        return _clean(self.values.get(name))

    @property
    def has_natural_key(self) -> bool:
        """Whether Wix's duplicate rule can find the contact again (an e-mail or a phone)."""
        return self.get("email") is not None or self.get("phone") is not None


def wix_values(fields: Mapping[str, str | None]) -> WixValues:
    """The command's Wix paths as values; an unknown path is a ``ContractError``."""
    values: dict[str, str | None] = {}
    for path, value in fields.items():
        name = WIX_FIELDS.get(path)
        if name is None:
            raise ContractError(f"wix command writes an unknown field {path!r}")
        values[name] = _clean(value)
    return WixValues(values)


def strip_nulls(value: Any) -> Any:
    """Drop ``None`` members recursively (an Avro record brings absent API fields back as null;
    for a Wix contact null and absent mean the same)."""
    if isinstance(value, Mapping):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value


def read_wix(contact: Mapping[str, Any]) -> dict[str, str | None]:
    """``first_name``, ``last_name``, ``email``, ``phone`` of a contact (primary items)."""
    info = contact.get("info")
    name = info.get("name") if isinstance(info, Mapping) else None
    name = name if isinstance(name, Mapping) else {}
    email = primary_item(contact, "emails", "email")
    phone = primary_item(contact, "phones", "phone")
    phone_value: str | None = None
    if phone is not None:
        phone_value = _clean(phone.get("e164Phone")) or _clean(phone.get("phone"))
    return {
        "first_name": _clean(name.get("first")),
        "last_name": _clean(name.get("last")),
        "email": _clean(email.get("email")) if email is not None else None,
        "phone": phone_value,
    }


def _phone_region(contact: Mapping[str, Any]) -> str | None:
    item = primary_item(contact, "phones", "phone")
    region = item.get("countryCode") if item is not None else None
    return region if isinstance(region, str) and region else None


def _same(name: str, current: str | None, wanted: str | None, region: str | None) -> bool:
    if name == "phone":
        return _phone_key(current, region) == _phone_key(wanted)
    return _KEYS[name](current) == _KEYS[name](wanted)


def wix_holds(contact: Mapping[str, Any], values: WixValues) -> bool:
    """Whether ``contact`` already has every value the command writes (comparison forms)."""
    current = read_wix(contact)
    region = _phone_region(contact)
    return all(_same(name, current[name], value, region) for name, value in values.values.items())


def wix_matches_expected(contact: Mapping[str, Any], expected: Mapping[str, str | None]) -> bool:
    """Whether ``contact`` still has the values the command was computed against (known paths
    only; the guard used when a command carries no revision)."""
    current = read_wix(contact)
    region = _phone_region(contact)
    for path, value in expected.items():
        name = WIX_FIELDS.get(path)
        if name is not None and not _same(name, current[name], value, region):
            return False
    return True


def contact_revision(contact: Mapping[str, Any]) -> int | None:
    value = contact.get("revision")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def wix_base(command: LoaderCommand) -> dict[str, Any] | None:
    """The contact the update was computed against: ``target_record`` at ``expected_revision``
    (or its own revision when the command names none). ``None`` when the command carries no
    usable record (another id, no revision): the shell then reads the contact first."""
    record = command.target_record
    if record is None or record.get("id") != command.target_id:
        return None
    base: dict[str, Any] = strip_nulls(dict(record))
    revision = command.expected_revision
    if revision is None:
        revision = contact_revision(base)
    if revision is None:
        return None
    base["revision"] = revision
    return base


def decide_wix_fresh(command: LoaderCommand, values: WixValues, fresh: Mapping[str, Any]) -> Step:
    """Given the contact as it is now: NOOP when it already has the values; WRITE when it is
    still the state the command was computed against (same revision, or — without a revision —
    the ``expected`` values); else CONFLICT."""
    if wix_holds(fresh, values):
        return Step.NOOP
    if command.expected_revision is not None:
        return Step.WRITE if contact_revision(fresh) == command.expected_revision else Step.CONFLICT
    return Step.WRITE if wix_matches_expected(fresh, command.expected) else Step.CONFLICT


def decide_after_conflict(values: WixValues, fresh: Mapping[str, Any]) -> Status:
    """A write refused because the target changed: NOOP if the fresh state already has the
    desired values (e.g. a re-sent command whose first write landed), else CONFLICT."""
    return Status.NOOP if wix_holds(fresh, values) else Status.CONFLICT


# ------------------------------------------------------------------------------------------------
# PowerOffice
# ------------------------------------------------------------------------------------------------

#: Tether resource -> the property the API keeps unique and the loader uses as idempotency key.
PO_REFERENCE_FIELDS: Mapping[str, str] = {
    "employees": "ExternalImportReference",
    "customers": "ExternalImportReference",
    "contact_persons": "ExternalCode",
}

FieldTypes = Mapping[str, type]
"""PascalCase property -> its JSON scalar type (``bool``, ``int``, ``float``; else string)."""

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def coerce(name: str, value: str | None, types: FieldTypes) -> Any:
    """A command value (a string in the Avro map) as the JSON type of property ``name``."""
    if value is None:
        return None
    kind = types.get(name)
    try:
        if kind is bool:
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("not a boolean")
        if kind is int:
            return int(value.strip())
        if kind is float:
            return float(value.strip())
    except ValueError:
        raise ContractError(
            f"value of {name} is not a valid {kind.__name__ if kind else 'value'}"
        ) from None
    return value


@dataclass(frozen=True)
class PoPatch:
    """``replace`` values and ``test`` guards (JSON types) of one PowerOffice update."""

    changes: dict[str, Any]
    guards: dict[str, Any]


def po_patch(command: LoaderCommand, types: FieldTypes) -> PoPatch:
    """The patch of an update: every field replaced, and a ``test`` guard from ``expected`` for
    exactly the properties it changes (none for a property the mapper had no value for)."""
    reference = PO_REFERENCE_FIELDS.get(command.resource)
    changes: dict[str, Any] = {}
    guards: dict[str, Any] = {}
    for name, value in command.fields.items():
        if name == reference:
            raise ContractError(f"an update must not change the idempotency reference {name}")
        changes[name] = coerce(name, value, types)
        if name in command.expected:
            guards[name] = coerce(name, command.expected[name], types)
    return PoPatch(changes, guards)


def po_create(command: LoaderCommand, types: FieldTypes) -> tuple[dict[str, Any], str]:
    """Create values and the idempotency reference (``idempotency_key``; required: a create
    that could not be found again is never sent)."""
    reference_field = PO_REFERENCE_FIELDS.get(command.resource)
    if reference_field is None:
        raise ContractError(f"no poweroffice resource {command.resource!r}")
    reference = _clean(command.idempotency_key)
    if reference is None:
        raise ContractError(f"create command {command.command_id} has no idempotency_key")
    values: dict[str, Any] = {}
    for name, value in command.fields.items():
        if name == reference_field:
            if _clean(value) not in (None, reference):
                raise ContractError(f"{name} differs from the command's idempotency_key")
            continue
        values[name] = coerce(name, value, types)
    if not values:
        raise ContractError(f"create command {command.command_id} has no fields")
    return values, reference


def po_holds(record: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether the record already has exactly these values (as the API compares ``test``)."""
    return all(record.get(name) == value for name, value in values.items())


def po_id(value: str | None, what: str) -> int:
    """A PowerOffice id from the command's text."""
    if value is None or not value.strip().isdigit():
        raise ContractError(f"poweroffice {what} is not a numeric id")
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
