"""Applying one command to its target API: the I/O half of the loader's rules (``plan``).

Each ``Target.apply(command) -> Result`` makes the calls, asks ``plan`` what the answers mean and
raises ``TetherError``s it cannot turn into a result (the executor retries the retriable ones and
reports the others). Every write is naturally idempotent, so re-applying a command whose earlier
attempt (or an earlier process) already wrote never writes twice:

Wix (``WixTarget``)
  create  — ``allowDuplicates: false``; ``DUPLICATE_CONTACT_EXISTS`` -> GET that contact ->
            LINKED_EXISTING. A contact with neither e-mail nor phone (nothing the duplicate rule
            can find) carries the link id in the extended field ``tether-link-id`` and is looked
            up by it before it is created (-> CREATED with the one found); so does one a command
            creates with ``allow_duplicates`` (an operator's CREATE_NEW_CONTACT: ``allowDuplicates:
            true``, so Wix would not refuse a retry either). When the Extended
            Fields API refuses (403: the API key lacks the permission; 404; 5xx), the refusal is
            cached (``LINK_FIELD_REFUSED_SECONDS`` / ``LINK_FIELD_OUTAGE_SECONDS``: one call per
            period, not one per record), logged once and exported
            (``tether_loader_wix_link_field_unavailable``), and the contact is created by the
            *fallback*: look first for a name-only contact with exactly this name created since
            the change (``cause_changed_at``, else this process's first attempt, minus
            ``FALLBACK_CLOCK_SKEW``); one -> CREATED with it, none -> create without the field,
            several -> REJECTED ``KEYLESS_CREATE_AMBIGUOUS`` (a review item). See
            docs/wix-decisions.md for why no better reference exists.
  update  — computed against ``target_record`` at ``expected_revision`` (every other item kept,
            only the name and the primary e-mail/phone item touched); without a usable record the
            contact is read first and written only if it is still at that revision. 409
            ``CONTACT_ALREADY_CHANGED`` -> GET -> NOOP when it already has the values, else
            CONFLICT with the fresh contact. A contact merged into another is not written: FAILED
            (``CONTACT_MERGED``; the mapper learns of the merge from the contact's events).
  delete  — 404 -> NOOP.

PowerOffice (``PowerOfficeTarget``)
  create  — only when commanded, with ``idempotency_key`` as ``ExternalImportReference`` /
            ``ExternalCode``: the client looks the reference up before posting and after an
            unknown outcome -> CREATED (the record carrying our reference is ours).
  update  — JSON Patch with ``test`` guards from ``expected`` for the properties it changes. A
            refused guard (409, or a 400 the client traces to a failed ``test``) is never
            REJECTED: the client re-reads with back-off until a read explains it (reads may lag
            the writes); desired values there -> NOOP, else CONFLICT with the record it read
            (``GuardFailedError.current``), which the mapper re-merges.
  delete  — 404 -> NOOP.

Imports: the connectors' production clients and models, the core errors, ``plan``; never a
simulator, never Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.connectors.poweroffice.client import GuardFailedError, PowerOfficeClient
from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.poweroffice.models import (
    ContactPerson,
    Customer,
    Employee,
    parse_record,
)
from services.connectors.wix.client import DuplicateContactError, WixClient
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.connectors.wix.fields import NATURAL_KEYS, info_for_create
from services.connectors.wix.models import Contact, parse_contact
from services.core.errors import (
    ConflictError,
    ContractError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    TransportError,
)
from services.loader.metrics import ApiCalls, WixLinkFieldMetrics
from services.loader.plan import (
    Action,
    FieldValues,
    LoaderCommand,
    Result,
    Status,
    Step,
    create_values,
    decide_after_conflict,
    decide_fresh,
    field_values,
    guarded_patch,
    holds,
    numeric_id,
    update_base,
)

log = logging.getLogger("tether.loader.wix")

CONTACTS = WIX.resource("contacts")
FIRST, LAST = "info.name.first", "info.name.last"
EMAIL = "info.emails[primary].email"

CONTACT_ALREADY_CHANGED = "CONTACT_ALREADY_CHANGED"
KEYLESS_CREATE_AMBIGUOUS = "KEYLESS_CREATE_AMBIGUOUS"
#: A refusal that repeats (403 permission missing, 404 API absent) is not asked again for this
#: long; an outage (5xx, no answer) for this long. Either way: one call per period, not per record.
LINK_FIELD_REFUSED_SECONDS = 3600.0
LINK_FIELD_OUTAGE_SECONDS = 60.0
#: Wix's ``createdDate`` and the source's change time come from different clocks.
FALLBACK_CLOCK_SKEW = timedelta(minutes=5)
#: First fallback attempts remembered per command (bounded; oldest forgotten first).
FALLBACK_ATTEMPTS_KEPT = 10_000
CONTACT_MERGED = "CONTACT_MERGED"
TEST_FAILED = "test_failed"


class Target(Protocol):
    """One target system."""

    def apply(self, command: LoaderCommand) -> Result: ...


# ------------------------------------------------------------------------------------------------
# Wix
# ------------------------------------------------------------------------------------------------


def _wire(contact: Contact) -> dict[str, Any]:
    return contact.to_wire()


def _contact_result(status: Status, contact: Contact) -> Result:
    return Result(status, contact.id, _wire(contact), str(contact.revision))


@dataclass(frozen=True)
class LinkFieldRefusal:
    """Why the ``tether-link-id`` field cannot be used, and until when that is assumed."""

    reason: str  # permission_denied | not_found | unavailable
    detail: str  # the error's text: status and code, no secret, no personal data
    until: float  # monotonic


def _refusal_reason(error: Exception) -> str:
    if isinstance(error, PermissionDeniedError):
        return "permission_denied"
    if isinstance(error, NotFoundError):
        return "not_found"
    return "unavailable"


class WixTarget:
    """Applies commands for ``wix/contacts``."""

    def __init__(
        self,
        client: WixClient,
        link_field_name: str = "tether-link-id",
        *,
        metrics: WixLinkFieldMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._link_field_name = link_field_name
        self._link_field_key: str | None = None
        self._refusal: LinkFieldRefusal | None = None
        self._metrics = metrics
        self._clock = clock
        self._now = now
        self._first_attempts: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def apply(self, command: LoaderCommand) -> Result:
        if command.resource != "contacts":
            raise ContractError(f"no wix resource {command.resource!r}")
        if command.action is Action.CREATE:
            return self._create(command)
        if command.action is Action.UPDATE:
            return self._update(command)
        return self._delete(command)

    @property
    def link_field_refusal(self) -> LinkFieldRefusal | None:
        """The cached refusal of the Extended Fields API, while it holds."""
        with self._lock:
            refusal = self._refusal
        return refusal if refusal is not None and self._clock() < refusal.until else None

    def link_field_key(self) -> str | None:
        """The key of the ``tether-link-id`` extended field (found or created once), or None
        while the Extended Fields API refuses (the refusal is cached, see the module docstring)."""
        with self._lock:
            if self._link_field_key is not None:
                return self._link_field_key
            if self._refusal is not None and self._clock() < self._refusal.until:
                return None
            try:
                key = self._client.find_or_create_extended_field(self._link_field_name)
            except (PermissionDeniedError, NotFoundError, ServerError, TransportError) as exc:
                self._refused(exc)
                return None
            if self._refusal is not None:
                log.info("wix extended field %s usable again", self._link_field_name)
                self._refusal = None
            if self._metrics is not None:
                self._metrics.clear()
            self._link_field_key = key
            return key

    def _refused(self, error: Exception) -> None:
        """Cache, log (once per period) and export a refusal. Called under ``_lock``."""
        reason = _refusal_reason(error)
        permanent = reason != "unavailable"
        seconds = LINK_FIELD_REFUSED_SECONDS if permanent else LINK_FIELD_OUTAGE_SECONDS
        self._refusal = LinkFieldRefusal(reason, str(error), self._clock() + seconds)
        if self._metrics is not None:
            self._metrics.refused(reason)
        fix = {
            "permission_denied": "extended fields permission missing: give the Wix API key "
            "(or app) the permission to manage contacts' extended fields",
            "not_found": "the Extended Fields API is not available to this site or key",
            "unavailable": "Wix's Extended Fields API is failing (outage)",
        }[reason]
        log.warning(
            "wix extended field %s cannot be defined (%s): %s; contacts with neither e-mail nor "
            "phone are created by the name-only fallback (docs/wix-decisions.md); asking again "
            "in %.0f s",
            self._link_field_name,
            error,
            fix,
            seconds,
        )

    def _create(self, command: LoaderCommand) -> Result:
        values = field_values(command, CONTACTS.fields)
        has_natural_key = any(values.get(path) is not None for path in NATURAL_KEYS)
        extended: dict[str, str | int | float] | None = None
        # Without a natural key, or creating a duplicate on purpose (an operator's
        # CREATE_NEW_CONTACT: Wix would not refuse a retry), the extended field finds a retry.
        if not has_natural_key or command.allow_duplicates:
            key = self.link_field_key()
            if key is None and not has_natural_key:
                return self._create_without_link_field(command, values)
            if key is not None:
                link_value = command.idempotency_key or command.link_id
                found = self._client.find_by_extended_field(key, link_value)
                if found:
                    # An earlier attempt created it (its outcome was lost): ours, no duplicate.
                    return _contact_result(Status.CREATED, found[0])
                extended = {key: link_value}
        info = info_for_create(values.values, extended_fields=extended)
        if not any(k in info for k in ("name", "emails", "phones")):
            raise ContractError(f"create command {command.command_id} has no name, email or phone")
        try:
            contact = self._client.create_info(info, allow_duplicates=command.allow_duplicates)
        except DuplicateContactError as exc:
            return self._linked_existing(exc, values)
        return _contact_result(Status.CREATED, contact)

    def _create_without_link_field(self, command: LoaderCommand, values: FieldValues) -> Result:
        """The fallback for a keyless contact when ``tether-link-id`` cannot be used: find a
        name-only contact with this exact name created since the change, else create one."""
        first, last = values.get(FIRST), values.get(LAST)
        if first is None and last is None:
            raise ContractError(f"create command {command.command_id} has no name, email or phone")
        since = self._fallback_since(command) - FALLBACK_CLOCK_SKEW
        conditions: list[dict[str, Any]] = [{"createdDate": {"$gte": _iso_ms(since)}}]
        conditions += [
            {f"info.name.{part}": {"$eq": value}}
            for part, value in (("first", first), ("last", last))
            if value is not None
        ]
        found = [
            c
            for c in self._client.iter_query({"$and": conditions})
            if (c.first_name, c.last_name) == (first, last) and not c.emails and not c.phones
        ]
        if len(found) > 1:
            raise ConflictError(
                f"extended fields unusable ({self._refusal_text()}) and {len(found)} name-only "
                "contacts with this name were created since the change: which one is ours "
                "cannot be told",
                system="wix",
                status=409,
                error_code=KEYLESS_CREATE_AMBIGUOUS,
                data={"contactIds": [c.id for c in found]},
            )
        if found:
            # An earlier attempt created it (its outcome was lost): ours, not a duplicate.
            if self._metrics is not None:
                self._metrics.fallback("found")
            return _contact_result(Status.CREATED, found[0])
        contact = self._client.create({FIRST: first, LAST: last}, allow_duplicates=False)
        if self._metrics is not None:
            self._metrics.fallback("created")
        return _contact_result(Status.CREATED, contact)

    def _fallback_since(self, command: LoaderCommand) -> datetime:
        """The earliest moment our contact can have been created: the live change that caused
        the command, else the first time this process tried it (remembered per command)."""
        with self._lock:
            first = self._first_attempts.get(command.command_id)
            if first is None:
                first = self._now()
                self._first_attempts[command.command_id] = first
                while len(self._first_attempts) > FALLBACK_ATTEMPTS_KEPT:
                    self._first_attempts.popitem(last=False)
        cause = command.cause_changed_at
        return min(cause, first) if cause is not None else first

    def _refusal_text(self) -> str:
        refusal = self.link_field_refusal
        return refusal.detail if refusal is not None else "refused"

    def _linked_existing(self, error: DuplicateContactError, values: FieldValues) -> Result:
        contact_id = error.duplicate_contact_id
        if contact_id is None:
            email = values.get(EMAIL)
            candidates = self._client.find_by_email(email) if email else []
            if len(candidates) != 1:
                raise error
            contact_id = candidates[0].id
        existing = self._client.get(contact_id).contact
        return _contact_result(Status.LINKED_EXISTING, existing)

    def _update(self, command: LoaderCommand) -> Result:
        contact_id = command.require_target_id()
        values = field_values(command, CONTACTS.fields)
        base = update_base(command, CONTACTS)
        if not values:
            current = parse_contact(base) if base else self._fresh(contact_id)
            return _contact_result(Status.NOOP, current)
        if base is None:
            fresh = self._fresh(contact_id)
            step = decide_fresh(command, values, _wire(fresh), CONTACTS)
            if step is Step.NOOP:
                return _contact_result(Status.NOOP, fresh)
            if step is Step.CONFLICT:
                return _contact_result(Status.CONFLICT, fresh)
            current = fresh
        elif holds(base, values, CONTACTS.fields):
            return _contact_result(Status.NOOP, parse_contact(base))
        else:
            current = parse_contact(base)
        try:
            updated = self._client.update(current, values.values)
        except DuplicateContactError:
            raise  # the new primary e-mail belongs to another contact: REJECTED
        except ConflictError as exc:
            if exc.error_code != CONTACT_ALREADY_CHANGED:
                raise
            fresh = self._fresh(contact_id)
            status = decide_after_conflict(values, _wire(fresh), CONTACTS.fields)
            return _contact_result(status, fresh)
        return _contact_result(Status.APPLIED, updated)

    def _fresh(self, contact_id: str) -> Contact:
        """The contact as it is now; one merged into another is not the contact we write."""
        found = self._client.get(contact_id)
        if found.merged:
            raise NotFoundError(
                "contact was merged into another contact",
                system="wix",
                status=404,
                error_code=CONTACT_MERGED,
            )
        return found.contact

    def _delete(self, command: LoaderCommand) -> Result:
        contact_id = command.require_target_id()
        try:
            self._client.delete(contact_id)
        except NotFoundError:
            return Result(Status.NOOP, contact_id)
        return Result(Status.APPLIED, contact_id)


def _iso_ms(moment: datetime) -> str:
    """Wix's timestamp form (UTC, milliseconds, ``Z``) for a query filter."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------
# PowerOffice
# ------------------------------------------------------------------------------------------------

PoRecord = Employee | Customer | ContactPerson
_MODELS: Mapping[str, type[PoRecord]] = {
    "employees": Employee,
    "customers": Customer,
    "contact_persons": ContactPerson,
}
#: Tether resource -> the client's operation prefix (``customers.update`` ...).
_OPERATIONS: Mapping[str, str] = {
    "employees": "employees",
    "customers": "customers",
    "contact_persons": "contactpersons",
}


def _po_id(value: str | None, what: str) -> int:
    return numeric_id(value, f"poweroffice {what}")


class PowerOfficeTarget:
    """Applies commands for ``poweroffice/{employees,customers,contact_persons}``."""

    def __init__(self, client: PowerOfficeClient, calls: ApiCalls) -> None:
        self._client = client
        self._calls = calls

    def apply(self, command: LoaderCommand) -> Result:
        if command.resource not in _MODELS:
            raise ContractError(f"no poweroffice resource {command.resource!r}")
        if command.action is Action.CREATE:
            return self._create(command)
        if command.action is Action.UPDATE:
            return self._update(command)
        return self._delete(command)

    # -- per resource ----------------------------------------------------------------------------

    def _get(self, command: LoaderCommand, record_id: int) -> PoRecord:
        if command.resource == "employees":
            return self._client.get_employee(record_id)
        if command.resource == "customers":
            return self._client.get_customer(record_id)
        return self._client.get_contact_person(self._parent(command), record_id)

    def _parse(self, command: LoaderCommand, data: Mapping[str, Any]) -> PoRecord:
        if command.resource == "employees":
            return parse_record(Employee, data)
        if command.resource == "customers":
            return parse_record(Customer, data)
        return parse_record(ContactPerson, data)

    def _parent(self, command: LoaderCommand) -> int:
        return _po_id(command.parent_id, "contact person parent (ContactId)")

    def _create(self, command: LoaderCommand) -> Result:
        values, reference = create_values(command, POWEROFFICE.resource(command.resource))
        created: PoRecord
        if command.resource == "employees":
            created = self._client.create_employee(values, reference=reference).record
        elif command.resource == "customers":
            created = self._client.create_customer(values, reference=reference).record
        else:
            parent = self._parent(command)
            created = self._client.create_contact_person(parent, values, reference=reference).record
        # Found by our reference or just posted: either way the engine created it.
        return Result(Status.CREATED, str(created.id), created.to_wire())

    def _update(self, command: LoaderCommand) -> Result:
        record_id = _po_id(command.target_id, "target_id")
        resource = POWEROFFICE.resource(command.resource)
        patch = guarded_patch(command, resource)
        if not patch.changes:
            current = self._get(command, record_id)
            return Result(Status.NOOP, str(record_id), current.to_wire())
        guards = patch.guards or None
        refused = {(f"{_OPERATIONS[command.resource]}.update", s) for s in (400, 409)}
        with self._calls.capture() as calls:
            try:
                updated = self._patch(command, record_id, patch.changes, guards)
            except ConflictError as exc:
                if exc.error_code != TEST_FAILED:
                    raise
                # The client's read that explained the refusal; a second read here could be
                # served by a lagging replica and undo what the client waited for.
                if isinstance(exc, GuardFailedError) and exc.current is not None:
                    fresh = self._parse(command, exc.current).to_wire()
                else:
                    fresh = self._get(command, record_id).to_wire()
                done = holds(fresh, FieldValues(patch.changes), resource.fields)
                status = Status.NOOP if done else Status.CONFLICT
                return Result(status, str(record_id), fresh)
        # The client answers a refused patch by re-reading: desired values there -> returned.
        status = Status.NOOP if refused & set(calls) else Status.APPLIED
        return Result(status, str(record_id), updated.to_wire())

    def _patch(
        self,
        command: LoaderCommand,
        record_id: int,
        changes: Mapping[str, Any],
        guards: Mapping[str, Any] | None,
    ) -> PoRecord:
        if command.resource == "employees":
            return self._client.update_employee(record_id, changes, expected=guards)
        if command.resource == "customers":
            return self._client.update_customer(record_id, changes, expected=guards)
        return self._client.update_contact_person(
            self._parent(command), record_id, changes, expected=guards
        )

    def _delete(self, command: LoaderCommand) -> Result:
        record_id = _po_id(command.target_id, "target_id")
        try:
            if command.resource == "employees":
                self._client.delete_employee(record_id)
            elif command.resource == "customers":
                self._client.delete_customer(record_id)
            else:
                self._client.delete_contact_person(self._parent(command), record_id)
        except NotFoundError:
            return Result(Status.NOOP, str(record_id))
        return Result(Status.APPLIED, str(record_id))
