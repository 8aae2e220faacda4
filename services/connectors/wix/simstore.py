"""Simulator only: the in-memory contact store and Wix's domain rules for contacts v4.

What it is for: ``simulator.py`` (HTTP) and the admin endpoints call ``ContactStore``; every write
reports a ``ContactChange`` to ``on_change`` (under the store lock, so in commit order), which the
simulator turns into webhooks. Contacts are kept in wire form (REST field names). Production code
must not import this module.

Rules implemented (reference §3-4; decisions in docs/wix-decisions.md):

- Create needs a name, an email or a phone (``INSUFFICIENT_CONTACT_DATA``); revision starts at 1.
- Item ids are server-assigned; an update keeps an item's id when it sends it back (or the same
  value). First item becomes primary when none is flagged; two flagged ->
  ``CANNOT_HAVE_MULTIPLE_PRIMARY_INFO``. ``primary: false`` is omitted in responses.
- ``primaryInfo`` / ``primaryEmail`` / ``primaryPhone`` and the system extended fields are derived,
  never written by callers.
- Duplicate rule (``allowDuplicates`` false): the primary email (trimmed, case-insensitive) is
  *used by another contact* — any of its emails, not only its primary one (reference §3.1); with
  no email, the primary phone (E.164 when derivable, else digits) is any phone of another contact
  -> 409 ``DUPLICATE_CONTACT_EXISTS`` naming the earliest such contact. Updates check only when
  the deciding value changes.
- Indexes (so a write or a look-up costs O(1) in the number of stored contacts): every email
  (normalised), every phone (E.164/digits) and every extended-field value -> contact ids, kept in
  ``_commit`` / ``_remove`` (so create, update, delete, merge and seed all maintain them); and
  ``createdDate`` / ``updatedDate`` in date order (``DateIndex``). ``query`` narrows a filter
  holding an ``$eq``/``$in`` on ``id``, an email or an extended field, or a range (``$gt``,
  ``$gte``, ``$lt``, ``$lte``, ``$eq``) on one of those dates — the extractor's poll — to those
  candidates, then applies the whole filter to them.
- Copy-on-write: a write builds a new contact dict (with new nested objects wherever it changes
  them) and replaces the stored one; the store never mutates a committed contact. So reads,
  returned contacts and ``ContactChange.entity`` share the stored objects instead of copying
  them: callers read or serialize what they get and must not mutate it (``copy.deepcopy`` it
  first). Tests that edit a stored contact in place, behind the API's back, do so under ``lock``.
- Update: ``revision`` must equal the current one (else 409 ``CONTACT_ALREADY_CHANGED``); each
  ``info`` key sent replaces that key, omitted keys are kept; ``extendedFields.items`` replaces
  the ``custom.*`` keys (system keys stay derived).
- Item ids, ``e164Phone`` and ``formattedPhone`` are read-only: ignored when sent, or refused
  (400 ``READ_ONLY``) with the realism option ``strict_read_only_items`` (off by default).
- ``custom.*`` extended fields must be defined first (``find_or_create_field``) unless
  ``strict_extended_fields`` is off; seeding defines them on the fly.
- Merge keeps target data, appends source items, fills empty target fields, deletes the sources
  and remembers them so Get resolves them to the target (``responseType: MERGED``).

Imports: standard library, phonenumbers and the other ``sim*`` modules.
"""

from __future__ import annotations

import bisect
import copy
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Literal

import phonenumbers

from services.connectors.wix.simerrors import SimApiError, app_error, invalid
from services.connectors.wix.simquery import (
    EXTENDED_PREFIXES,
    SortSpec,
    compile_filter,
    parse_sort,
    parse_time,
    project,
    sort_contacts,
)

Contact = dict[str, Any]
ChangeKind = Literal["created", "updated", "deleted", "merged"]

EMAIL_TAGS = frozenset({"UNTAGGED", "MAIN", "HOME", "WORK"})
PHONE_TAGS = frozenset({"UNTAGGED", "MAIN", "HOME", "MOBILE", "WORK", "FAX"})
ADDRESS_TAGS = frozenset({"UNTAGGED", "HOME", "WORK", "BILLING", "SHIPPING"})
FIELD_DATA_TYPES = frozenset({"TEXT", "NUMBER", "DATE", "URL"})
MAX_ITEMS = 50
READ_ONLY_ITEM_FIELDS = ("id", "e164Phone", "formattedPhone")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KNOWN_INFO_KEYS = frozenset(
    {
        "name",
        "emails",
        "phones",
        "addresses",
        "company",
        "jobTitle",
        "birthdate",
        "locale",
        "labelKeys",
        "extendedFields",
        "locations",
        "picture",
    }
)


@dataclass(frozen=True)
class ContactChange:
    """One committed write, as the webhook of that kind reports it."""

    kind: ChangeKind
    entity_id: str
    entity: Contact | None
    actor: Mapping[str, Any]
    originated_from: str | None = None
    source_contact_ids: tuple[str, ...] = ()


ChangeListener = Callable[[ContactChange], None]

#: The contact dates ``DateIndex`` keeps in order (the ones the extractor's polls filter and sort).
INDEXED_DATES = ("createdDate", "updatedDate")
_RANGE_OPS = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte"})
_MOMENT = itemgetter(0)


@dataclass
class DateIndex:
    """Contact ids in the order of one date field: the ids in a range cost O(log n + hits).

    ``dated`` is false while a stored value is not an ISO-8601 date (seeded as is): the store then
    does not narrow by dates, and the full scan refuses the query as it always has."""

    _entries: list[tuple[datetime, str]] = field(default_factory=list)  # sorted
    _moments: dict[str, datetime] = field(default_factory=dict)
    _undated: set[str] = field(default_factory=set)

    def put(self, contact_id: str, value: object) -> None:
        try:
            moment = parse_time(value)
        except SimApiError:
            self.discard(contact_id)
            self._undated.add(contact_id)
            return
        if self._moments.get(contact_id) == moment:
            return  # unchanged (an update keeps createdDate)
        self.discard(contact_id)
        bisect.insort(self._entries, (moment, contact_id))
        self._moments[contact_id] = moment

    def discard(self, contact_id: str) -> None:
        self._undated.discard(contact_id)
        moment = self._moments.pop(contact_id, None)
        if moment is not None:
            del self._entries[bisect.bisect_left(self._entries, (moment, contact_id))]

    def clear(self) -> None:
        self._entries.clear()
        self._moments.clear()
        self._undated.clear()

    @property
    def dated(self) -> bool:
        return not self._undated

    def order(self, matches: list[tuple[int, Contact]], *, descending: bool) -> list[Contact]:
        """``(insertion sequence, contact)`` pairs of indexed contacts by (date, sequence): the
        order ``sort_contacts`` gives (every contact has the date while the index is dated)."""
        moments = self._moments
        ordered = sorted(
            matches, key=lambda pair: (moments[pair[1]["id"]], pair[0]), reverse=descending
        )
        return [contact for _seq, contact in ordered]

    def between(self, bounds: Mapping[str, datetime]) -> set[str]:
        """Ids whose date meets every ``{operator: moment}`` of ``bounds`` (``$eq $gt $gte $lt
        $lte``)."""
        entries = self._entries
        low, high = 0, len(entries)
        for op, moment in bounds.items():
            if op in ("$gt", "$gte", "$eq"):
                find = bisect.bisect_right if op == "$gt" else bisect.bisect_left
                low = max(low, find(entries, moment, key=_MOMENT))
            if op in ("$lt", "$lte", "$eq"):
                find = bisect.bisect_left if op == "$lt" else bisect.bisect_right
                high = min(high, find(entries, moment, key=_MOMENT))
        return {contact_id for _moment, contact_id in entries[low:high]}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """Wix timestamp format: UTC, millisecond precision, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def email_key(value: str) -> str:
    return value.strip().lower()


def phone_key(phone: str, country: str | None) -> str:
    """E.164 when phonenumbers can derive it, else the digits (duplicate matching)."""
    e164 = _e164(phone, country)
    return e164 or re.sub(r"\D", "", phone)


def _e164(phone: str, country: str | None) -> str | None:
    parsed = _valid_number(phone, country)
    if parsed is None:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _valid_number(phone: str, country: str | None) -> phonenumbers.PhoneNumber | None:
    """The parsed number when phonenumbers finds it valid, else None."""
    try:
        parsed = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


@dataclass
class ContactStore:
    """Thread-safe in-memory contacts of one simulated site."""

    clock: Callable[[], datetime] = _utcnow
    on_change: ChangeListener | None = None
    strict_extended_fields: bool = True
    strict_read_only_items: bool = False
    contacts: dict[str, Contact] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    extended_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seq: dict[str, int] = field(default_factory=dict, repr=False)
    _next_seq: int = field(default=0, repr=False)
    _by_email: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _by_phone: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _by_extended: dict[tuple[str, Any], set[str]] = field(default_factory=dict, repr=False)
    _by_date: dict[str, DateIndex] = field(
        default_factory=lambda: {name: DateIndex() for name in INDEXED_DATES}, repr=False
    )
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.contacts.clear()
            self.merged_into.clear()
            self.extended_fields.clear()
            self._seq.clear()
            self._by_email.clear()
            self._by_phone.clear()
            self._by_extended.clear()
            for dates in self._by_date.values():
                dates.clear()

    # -- reads -------------------------------------------------------------------------------

    def get(self, contact_id: str) -> tuple[Contact, str]:
        """The contact and the responseType (``MERGED`` when ``contact_id`` was merged away)."""
        with self.lock:
            if contact_id in self.contacts:
                return self.contacts[contact_id], "REGULAR"
            target = self.merged_into.get(contact_id)
            if target is not None and target in self.contacts:
                return self.contacts[target], "MERGED"
            raise _not_found(contact_id)

    def query(
        self,
        *,
        query_filter: object = None,
        sort: object = None,
        limit: int,
        offset: int,
        search: str | None = None,
        paths: frozenset[str] | None = None,
    ) -> tuple[list[Contact], int]:
        """One page of matching contacts (projected) and the total number of matches."""
        predicate = compile_filter(query_filter)
        sort_spec = parse_sort(sort)
        needle = search.strip().lower() if search else None
        with self.lock:
            ids = self._candidates(query_filter)
            pool = (
                self.contacts.items()
                if ids is None
                else [(cid, self.contacts[cid]) for cid in ids if cid in self.contacts]
            )
            matches = [
                (self._seq[cid], c)
                for cid, c in pool
                if predicate(c) and (needle is None or _search_hit(c, needle))
            ]
            ordered = self._sorted(matches, sort_spec)
            page = [project(c, paths) for c in ordered[offset : offset + limit]]
            return page, len(ordered)

    def all(self) -> list[Contact]:
        with self.lock:
            return list(self.contacts.values())

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        info: object,
        *,
        allow_duplicates: bool = False,
        actor: Mapping[str, Any],
        source: Mapping[str, Any] | None = None,
    ) -> Contact:
        self._refuse_read_only(info)
        with self.lock:
            new_info = self._apply_info({}, info, where="info")
            self._require_data(new_info, "INSUFFICIENT_CONTACT_DATA")
            if not allow_duplicates:
                self._check_duplicate(new_info, exclude=None)
            now = iso_ms(self.clock())
            contact: Contact = {
                "id": str(uuid.uuid4()),
                "revision": 1,
                "source": dict(source or {"sourceType": "OTHER"}),
                "createdDate": now,
                "updatedDate": now,
                "lastActivity": {"activityDate": now, "activityType": "CONTACT_CREATED"},
                "info": new_info,
            }
            self._commit(contact, new=True)
            self._emit("created", contact, actor)
            return contact

    def update(
        self,
        contact_id: str,
        info: object,
        *,
        revision: int | None,
        allow_duplicates: bool = False,
        actor: Mapping[str, Any],
        silent: bool = False,
    ) -> Contact:
        """API update (``revision`` required) or, with ``revision=None``, a dashboard edit.

        ``silent`` (admin, tests of verification only): a change behind the API's back — no
        revision/updatedDate bump, no webhook — that only a full re-read can find."""
        with self.lock:
            current = self.contacts.get(contact_id)
            if current is None:
                raise _not_found(contact_id)
            if revision is not None and revision != current["revision"]:
                raise app_error(
                    409,
                    "CONTACT_ALREADY_CHANGED",
                    "Contact has been updated since the requested revision.",
                    f"current revision is {current['revision']}, request had {revision}",
                    {"contactId": contact_id},
                )
            if not isinstance(info, dict) or not info:
                raise app_error(
                    400,
                    "INSUFFICIENT_UPDATE_CONTACT_DATA",
                    "Nothing to update",
                    "info must contain at least one field",
                )
            if revision is not None:
                self._refuse_read_only(info)
            new_info = self._apply_info(current["info"], info, where="info")
            self._require_data(new_info, "INSUFFICIENT_CONTACT_DATA")
            if not allow_duplicates and _decider(new_info) != _decider(current["info"]):
                self._check_duplicate(new_info, exclude=contact_id)
            contact = dict(current)  # copy-on-write: the top level changes, new_info is new
            contact["info"] = new_info
            if silent:
                self._commit(contact)
                return contact
            self._touch(contact)
            self._commit(contact)
            self._emit("updated", contact, actor)
            return contact

    def delete(self, contact_id: str, *, actor: Mapping[str, Any]) -> None:
        with self.lock:
            if contact_id not in self.contacts:
                raise _not_found(contact_id)
            self._remove(contact_id)
            self._emit("deleted", None, actor, entity_id=contact_id)

    def merge(
        self,
        target_id: str,
        *,
        target_revision: object,
        source_ids: object,
        actor: Mapping[str, Any],
    ) -> Contact:
        if not isinstance(target_revision, int) or isinstance(target_revision, bool):
            raise invalid("is required", "targetContactRevision", "REQUIRED_FIELD")
        if (
            not isinstance(source_ids, list)
            or not 1 <= len(source_ids) <= 5
            or not all(isinstance(s, str) and s for s in source_ids)
        ):
            raise invalid("must hold 1 to 5 contact ids", "sourceContactIds", "SIZE")
        sources: list[str] = list(dict.fromkeys(source_ids))
        if target_id in sources:
            raise app_error(
                400,
                "ILLEGAL_MERGE",
                "Illegal merge",
                "a contact cannot be merged into itself",
            )
        with self.lock:
            target = self.contacts.get(target_id)
            if target is None:
                raise _not_found(target_id)
            for sid in sources:
                if sid not in self.contacts:
                    raise _not_found(sid)
            if target_revision != target["revision"]:
                raise app_error(
                    409,
                    "CONTACT_ALREADY_CHANGED",
                    "Contact has been updated since the requested revision.",
                    f"current revision is {target['revision']}, request had {target_revision}",
                    {"contactId": target_id},
                )
            merged = copy.deepcopy(target)
            info = merged["info"]
            for sid in sources:
                _merge_info(info, self.contacts[sid]["info"])
            merged["info"] = self._apply_info(target["info"], info, where="info", trusted=True)
            self._touch(merged, activity="CONTACT_MERGED")
            for sid in sources:
                self._remove(sid)
                self.merged_into[sid] = target_id
                for old, into in list(self.merged_into.items()):
                    if into == sid:
                        self.merged_into[old] = target_id
                self._emit("deleted", None, actor, entity_id=sid, originated_from="merge")
            self._commit(merged)
            self._emit("updated", merged, actor, originated_from="merge")
            self._emit("merged", merged, actor, sources=tuple(sources))
            return merged

    def seed(self, records: list[object], *, actor: Mapping[str, Any], emit: bool) -> list[Contact]:
        """Import wire-format contacts as is (ids, dates and revisions kept when given)."""
        out: list[Contact] = []
        with self.lock:
            for index, record in enumerate(records):
                if not isinstance(record, dict):
                    raise invalid("must be an object", f"contacts[{index}]", "TYPE")
                raw_info = record.get("info")
                if not isinstance(raw_info, dict):
                    raise invalid("must be an object", f"contacts[{index}].info", "TYPE")
                for key in raw_info.get("extendedFields", {}).get("items", {}):
                    if key.startswith("custom.") and key not in self.extended_fields:
                        self._define_field(key, key[len("custom.") :], "TEXT")
                info = self._apply_info({}, raw_info, where=f"contacts[{index}].info")
                self._require_data(info, "INSUFFICIENT_CONTACT_DATA")
                now = iso_ms(self.clock())
                created = str(record.get("createdDate") or now)
                contact: Contact = {
                    "id": str(record.get("id") or uuid.uuid4()),
                    "revision": int(record.get("revision") or 1),
                    "source": record.get("source") or {"sourceType": "IMPORT"},
                    "createdDate": created,
                    "updatedDate": str(record.get("updatedDate") or created),
                    "lastActivity": record.get("lastActivity")
                    or {"activityDate": created, "activityType": "CONTACT_CREATED"},
                    "info": info,
                }
                self._commit(contact, new=contact["id"] not in self.contacts)
                if emit:
                    self._emit("created", contact, actor)
                out.append(contact)
        return out

    # -- extended field definitions ----------------------------------------------------------

    def find_or_create_field(
        self, display_name: object, data_type: object
    ) -> tuple[dict[str, Any], bool]:
        if not isinstance(display_name, str) or not display_name.strip():
            raise invalid("is required", "displayName", "REQUIRED_FIELD")
        kind = data_type if isinstance(data_type, str) else "TEXT"
        if kind not in FIELD_DATA_TYPES:
            raise invalid("must be TEXT, NUMBER, DATE or URL", "dataType", "ENUM")
        with self.lock:
            for definition in self.extended_fields.values():
                if definition["displayName"] == display_name.strip():
                    return copy.deepcopy(definition), False
            slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")
            base = "custom." + (slug or "field")
            key, n = base, 1
            while key in self.extended_fields:
                n += 1
                key = f"{base}-{n}"
            return copy.deepcopy(self._define_field(key, display_name.strip(), kind)), True

    def _define_field(self, key: str, display_name: str, data_type: str) -> dict[str, Any]:
        now = iso_ms(self.clock())
        definition = {
            "key": key,
            "displayName": display_name,
            "dataType": data_type,
            "namespace": "custom",
            "fieldType": "USER_DEFINED",
            "createdDate": now,
            "updatedDate": now,
        }
        self.extended_fields[key] = definition
        return definition

    # -- internals ---------------------------------------------------------------------------

    def _commit(self, contact: Contact, *, new: bool = False) -> None:
        _derive(contact)
        if new or contact["id"] not in self._seq:
            self._seq[contact["id"]] = self._next_seq
            self._next_seq += 1
        previous = self.contacts.get(contact["id"])
        if previous is not None:
            self._index(previous, add=False)  # before replacing: its old values leave the index
        self.contacts[contact["id"]] = contact
        self._index(contact, add=True)
        for name, dates in self._by_date.items():
            dates.put(contact["id"], contact.get(name))

    def _remove(self, contact_id: str) -> None:
        self._index(self.contacts.pop(contact_id), add=False)
        self._seq.pop(contact_id, None)
        for dates in self._by_date.values():
            dates.discard(contact_id)

    def _index(self, contact: Contact, *, add: bool) -> None:
        cid = contact["id"]
        entries: list[tuple[dict[Any, set[str]], Any]] = []
        entries += [(self._by_email, k) for k in _email_keys(contact["info"])]
        entries += [(self._by_phone, k) for k in _phone_keys(contact["info"])]
        entries += [(self._by_extended, k) for k in _extended_keys(contact["info"])]
        for index, key in entries:
            if add:
                index.setdefault(key, set()).add(cid)
                continue
            ids = index.get(key)
            if ids is not None:
                ids.discard(cid)
                if not ids:
                    del index[key]

    def _candidates(self, spec: object) -> set[str] | None:
        """Ids that can match ``spec`` (a superset), from the indexes; None: no index applies."""
        if not isinstance(spec, dict):
            return None
        for key, value in spec.items():
            if key == "$and" and isinstance(value, list):
                for part in value:
                    found = self._candidates(part)
                    if found is not None:
                        return found
                continue
            if key in self._by_date:
                bounds = _date_bounds(value)
                if bounds and all(dates.dated for dates in self._by_date.values()):
                    return self._by_date[key].between(bounds)
                continue
            wanted = _eq_operands(value)
            if wanted is None:
                continue
            if key == "id":
                return {v for v in wanted if isinstance(v, str)}
            if key in ("info.emails.email", "primaryInfo.email"):
                if not all(isinstance(v, str) for v in wanted):
                    continue
                return _union(self._by_email, [email_key(v) for v in wanted])
            for prefix in EXTENDED_PREFIXES:
                if key.startswith(prefix) and len(key) > len(prefix):
                    if not all(_indexable(v) for v in wanted):
                        break
                    field_key = key[len(prefix) :]
                    return _union(self._by_extended, [(field_key, v) for v in wanted])
        return None

    def _sorted(self, matches: list[tuple[int, Contact]], sort: SortSpec) -> list[Contact]:
        """``sort_contacts``' order; by an indexed date, with the moments the index parsed (the
        values ``sort_contacts`` would parse again from every match, page after page)."""
        dates = self._by_date.get(sort.field)
        if dates is None or not dates.dated:
            return sort_contacts(matches, sort)
        return dates.order(matches, descending=sort.descending)

    def _touch(self, contact: Contact, activity: str | None = None) -> None:
        now = iso_ms(self.clock())
        contact["revision"] = int(contact["revision"]) + 1
        contact["updatedDate"] = max(now, str(contact["updatedDate"]))
        if activity:
            contact["lastActivity"] = {"activityDate": now, "activityType": activity}

    def _emit(
        self,
        kind: ChangeKind,
        contact: Contact | None,
        actor: Mapping[str, Any],
        *,
        entity_id: str | None = None,
        originated_from: str | None = None,
        sources: tuple[str, ...] = (),
    ) -> None:
        if self.on_change is None:
            return
        self.on_change(
            ContactChange(
                kind=kind,
                entity_id=entity_id or (contact["id"] if contact else ""),
                entity=contact,  # shared, not copied: committed contacts are never mutated
                actor=actor,
                originated_from=originated_from,
                source_contact_ids=sources,
            )
        )

    def _refuse_read_only(self, info: object) -> None:
        """With ``strict_read_only_items``: a write carrying a read-only item field is refused."""
        if not self.strict_read_only_items or not isinstance(info, dict):
            return
        for key in ("emails", "phones", "addresses"):
            wrapper = info.get(key)
            items = wrapper.get("items") if isinstance(wrapper, dict) else None
            for index, item in enumerate(items if isinstance(items, list) else []):
                for name in READ_ONLY_ITEM_FIELDS:
                    if isinstance(item, dict) and name in item:
                        raise invalid(
                            "is read-only", f"info.{key}.items[{index}].{name}", "READ_ONLY"
                        )

    def _require_data(self, info: Contact, code: str) -> None:
        name = info.get("name", {})
        if name.get("first") or name.get("last") or info.get("emails") or info.get("phones"):
            return
        raise app_error(
            400,
            code,
            "Insufficient contact data",
            "a contact needs at least a name, an email or a phone",
        )

    def _check_duplicate(self, info: Contact, *, exclude: str | None) -> None:
        decider = _decider(info)
        if decider is None:
            return
        kind, key = decider
        index = self._by_email if kind == "email" else self._by_phone
        others = index.get(key, set()) - {exclude} if exclude else index.get(key, set())
        if not others:
            return
        cid = min(others, key=lambda c: self._seq.get(c, 0))  # the earliest such contact
        data: dict[str, Any] = {"duplicateContactId": cid}
        primary = _primary(info, "emails" if kind == "email" else "phones")
        assert primary is not None
        if kind == "email":
            data["duplicateEmail"] = primary["email"]
        else:
            data["duplicatePhone"] = primary["phone"]
        raise app_error(
            409,
            "DUPLICATE_CONTACT_EXISTS",
            f"Contact with this {kind} already exists",
            f"duplicate contact {cid}",
            data,
        )

    def _apply_info(
        self, previous: Contact, raw: object, *, where: str, trusted: bool = False
    ) -> Contact:
        """``previous`` with the keys of ``raw`` replaced, validated and normalised."""
        if not isinstance(raw, dict):
            raise invalid("must be an object", where, "TYPE")
        info = copy.deepcopy(previous)
        for key, value in raw.items():
            if key not in _KNOWN_INFO_KEYS:
                continue  # unknown input is ignored, not stored
            if value is None:
                info.pop(key, None)
            elif key == "name":
                info[key] = _name(value, f"{where}.name")
            elif key == "emails":
                info[key] = _items(value, previous.get("emails"), f"{where}.emails", _email_item)
            elif key == "phones":
                info[key] = _items(value, previous.get("phones"), f"{where}.phones", _phone_item)
            elif key == "addresses":
                info[key] = _items(
                    value,
                    previous.get("addresses"),
                    f"{where}.addresses",
                    _address_item,
                    has_primary=False,
                )
            elif key == "extendedFields":
                info[key] = self._extended(value, previous.get("extendedFields"), where, trusted)
            elif key in ("company", "jobTitle", "locale"):
                info[key] = _text(value, f"{where}.{key}", 1000)
            elif key == "birthdate":
                text = _text(value, f"{where}.birthdate", 10)
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                    raise invalid("must be YYYY-MM-DD", f"{where}.birthdate", "FORMAT")
                info[key] = text
            elif key == "labelKeys":
                keys = value.get("items") if isinstance(value, dict) else None
                if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                    raise invalid("must be {items: [string]}", f"{where}.labelKeys", "TYPE")
                info[key] = {"items": list(dict.fromkeys(keys))}
            else:
                info[key] = copy.deepcopy(value)
        for key in ("name", "emails", "phones", "addresses", "labelKeys"):
            if key in info and not any(v for v in info[key].values()):
                del info[key]  # an emptied collection or name is not returned
        return info

    def _extended(
        self, value: object, previous: object, where: str, trusted: bool
    ) -> dict[str, Any]:
        items = value.get("items") if isinstance(value, dict) else None
        if not isinstance(items, dict):
            raise invalid("must be {items: {key: value}}", f"{where}.extendedFields", "TYPE")
        before = previous.get("items", {}) if isinstance(previous, dict) else {}
        kept = {k: v for k, v in before.items() if not k.startswith("custom.")}
        for key, item in items.items():
            if not key.startswith("custom."):
                continue  # system namespaces are read-only: ignored
            if item is None or item == "":
                continue
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise app_error(
                    400,
                    "INVALID_EXTENDED_FIELD_VALUE",
                    "Invalid extended field value",
                    "extended field values are text, numbers or dates",
                    {"key": key},
                )
            if self.strict_extended_fields and not trusted and key not in self.extended_fields:
                raise app_error(
                    400,
                    "INVALID_EXTENDED_FIELD_VALUE",
                    "Invalid extended field value",
                    "extended field is not defined",
                    {"key": key},
                )
            kept[key] = item
        return {"items": kept}


# -- pure helpers ---------------------------------------------------------------------------


def _not_found(contact_id: str) -> SimApiError:
    return app_error(
        404,
        "CONTACT_NOT_FOUND",
        "Contact not found",
        f"contact {contact_id} does not exist",
        {"contactId": contact_id},
    )


def _text(value: object, where: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise invalid("must be a string", where, "TYPE")
    if len(value) > max_len:
        raise invalid(f"must be at most {max_len} characters", where, "MAX_LENGTH")
    return value


def _name(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("must be an object", where, "TYPE")
    out: dict[str, Any] = {}
    for part in ("first", "last"):
        if value.get(part) not in (None, ""):
            out[part] = _text(value[part], f"{where}.{part}", 1000)
    return out


ItemBuilder = Callable[[dict[str, Any], str], dict[str, Any]]


def _items(
    value: object, previous: object, where: str, build: ItemBuilder, *, has_primary: bool = True
) -> dict[str, Any]:
    items = value.get("items") if isinstance(value, dict) else None
    if not isinstance(items, list):
        raise invalid("must be {items: [...]}", where, "TYPE")
    if len(items) > MAX_ITEMS:
        raise invalid(f"at most {MAX_ITEMS} items", f"{where}.items", "MAX_SIZE")
    old = previous.get("items", []) if isinstance(previous, dict) else []
    old_ids = {i["id"] for i in old if i.get("id")}
    used: set[str] = set()
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise invalid("must be an object", f"{where}.items[{index}]", "TYPE")
        item = build(raw, f"{where}.items[{index}]")
        # Item ids are read-only: keep a known id sent back, else the id of an old item with the
        # same value, else a new one.
        sent_id = raw.get("id")
        item_id: str = sent_id if isinstance(sent_id, str) else ""
        if item_id not in old_ids or item_id in used:
            item_id = next(
                (
                    o["id"]
                    for o in old
                    if o.get("id") not in used and o.get("id") and _same_value(o, item)
                ),
                str(uuid.uuid4()),
            )
        used.add(item_id)
        out.append({"id": item_id, **item})
    if not has_primary:
        return {"items": out}
    flagged = [i for i in out if i.pop("primary", False)]
    if len(flagged) > 1:
        raise app_error(
            400,
            "CANNOT_HAVE_MULTIPLE_PRIMARY_INFO",
            "Cannot have multiple primary info",
            f"only one item of {where} can be primary",
        )
    primary = flagged[0] if flagged else (out[0] if out else None)
    if primary is not None:
        primary["primary"] = True
    return {"items": out}


def _same_value(old: dict[str, Any], new: dict[str, Any]) -> bool:
    if "email" in new:
        return email_key(str(old.get("email", ""))) == email_key(new["email"])
    if "phone" in new:
        return bool(old.get("phone") == new["phone"])
    return False


def _tag(raw: dict[str, Any], where: str, allowed: frozenset[str]) -> str:
    tag = raw.get("tag") or "UNTAGGED"
    if tag not in allowed:
        raise invalid("unknown tag", f"{where}.tag", "ENUM")
    return str(tag)


def _flag(raw: dict[str, Any], where: str) -> bool:
    flag = raw.get("primary", False)
    if not isinstance(flag, bool):
        raise invalid("must be a boolean", f"{where}.primary", "TYPE")
    return flag


def _email_item(raw: dict[str, Any], where: str) -> dict[str, Any]:
    email = raw.get("email")
    if not isinstance(email, str) or not email.strip():
        raise invalid("is required", f"{where}.email", "REQUIRED_FIELD")
    if len(email) > 320:
        raise invalid("must be at most 320 characters", f"{where}.email", "MAX_LENGTH")
    if not _EMAIL_RE.match(email.strip()):
        raise invalid("is not a valid email", f"{where}.email", "FORMAT")
    return {
        "tag": _tag(raw, where, EMAIL_TAGS),
        "email": email.strip(),
        "primary": _flag(raw, where),
    }


def _phone_item(raw: dict[str, Any], where: str) -> dict[str, Any]:
    phone = raw.get("phone")
    if not isinstance(phone, str) or not phone.strip():
        raise invalid("is required", f"{where}.phone", "REQUIRED_FIELD")
    if len(phone) > 50:
        raise invalid("must be at most 50 characters", f"{where}.phone", "MAX_LENGTH")
    item: dict[str, Any] = {"tag": _tag(raw, where, PHONE_TAGS)}
    country = raw.get("countryCode")
    if country is not None:
        if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}", country):
            raise invalid("must be an ISO-3166 alpha-2 code", f"{where}.countryCode", "FORMAT")
        item["countryCode"] = country
    item["phone"] = phone.strip()
    parsed = _valid_number(item["phone"], country)  # parsed once for both derived forms
    if parsed is not None:
        item["e164Phone"] = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        item["formattedPhone"] = phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
    item["primary"] = _flag(raw, where)
    return item


def _address_item(raw: dict[str, Any], where: str) -> dict[str, Any]:
    address = raw.get("address")
    if not isinstance(address, dict):
        raise invalid("is required", f"{where}.address", "REQUIRED_FIELD")
    return {"tag": _tag(raw, where, ADDRESS_TAGS), "address": copy.deepcopy(address)}


def _primary(info: Contact, key: str) -> dict[str, Any] | None:
    items: list[dict[str, Any]] = info.get(key, {}).get("items", [])
    return next((i for i in items if i.get("primary")), items[0] if items else None)


def _decider(info: Contact) -> tuple[str, str] | None:
    """What the duplicate rule compares: the primary email, else the primary phone."""
    email = _primary(info, "emails")
    if email is not None:
        return "email", email_key(email["email"])
    phone = _primary(info, "phones")
    if phone is not None:
        return "phone", _item_phone_key(phone)
    return None


def _item_phone_key(item: dict[str, Any]) -> str:
    """``phone_key`` of a stored phone item: its derived ``e164Phone`` (computed by the same
    ``_e164`` when the item was stored) saves parsing the number again."""
    e164 = item.get("e164Phone")
    if isinstance(e164, str) and e164:
        return e164
    return phone_key(str(item.get("phone", "")), item.get("countryCode"))


def _email_keys(info: Contact) -> set[str]:
    items = info.get("emails", {}).get("items", [])
    return {email_key(i["email"]) for i in items if isinstance(i.get("email"), str)}


def _phone_keys(info: Contact) -> set[str]:
    items = info.get("phones", {}).get("items", [])
    return {_item_phone_key(i) for i in items if isinstance(i.get("phone"), str)}


def _indexable(value: object) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _extended_keys(info: Contact) -> set[tuple[str, Any]]:
    items = info.get("extendedFields", {}).get("items", {})
    return {(k, v) for k, v in items.items() if _indexable(v)}


def _eq_operands(value: object) -> list[Any] | None:
    """The values an ``$eq`` / ``$in`` / bare-value condition accepts; None for other ops."""
    if isinstance(value, dict):
        if "$eq" in value:
            return [value["$eq"]]
        if isinstance(value.get("$in"), list):
            return list(value["$in"])
        return None
    return [value] if value is not None and not isinstance(value, list) else None


def _date_bounds(value: object) -> dict[str, datetime]:
    """The range operators of a date condition as ``{operator: moment}`` (a bare value is
    ``$eq``); empty when it has none or an operand is not a date (the filter decides)."""
    if isinstance(value, dict) and value and all(str(k).startswith("$") for k in value):
        ops = value
    else:
        ops = {"$eq": value}
    bounds: dict[str, datetime] = {}
    for op, operand in ops.items():
        if op not in _RANGE_OPS:
            continue
        try:
            bounds[op] = parse_time(operand)
        except SimApiError:
            return {}
    return bounds


def _union(index: Mapping[Any, set[str]], keys: list[Any]) -> set[str]:
    out: set[str] = set()
    for key in keys:
        out |= index.get(key, set())
    return out


def _derive(contact: Contact) -> None:
    """Recompute the read-only mirrors and the system extended fields from ``info``."""
    info = contact["info"]
    email = _primary(info, "emails")
    phone = _primary(info, "phones")
    primary_info: dict[str, Any] = {}
    contact.pop("primaryEmail", None)
    contact.pop("primaryPhone", None)
    if email is not None:
        primary_info["email"] = email["email"]
        contact["primaryEmail"] = {
            "email": email["email"],
            "subscriptionStatus": "NOT_SET",
            "deliverabilityStatus": "NOT_SET",
        }
    if phone is not None:
        primary_info["phone"] = phone["phone"]
        mirrored = ("countryCode", "phone", "e164Phone", "formattedPhone")
        contact["primaryPhone"] = {k: phone[k] for k in mirrored if k in phone}
        contact["primaryPhone"]["subscriptionStatus"] = (
            "NOT_SET" if "e164Phone" in phone else "NO_SUBSCRIPTION_STATUS"
        )
    contact["primaryInfo"] = primary_info
    items = {
        k: v
        for k, v in info.get("extendedFields", {}).get("items", {}).items()
        if k.startswith("custom.")
    }
    name = info.get("name", {})
    first, last = name.get("first", ""), name.get("last", "")
    if first or last:
        items["contacts.displayByFirstName"] = " ".join(p for p in (first, last) if p)
        items["contacts.displayByLastName"] = " ".join(p for p in (last, first) if p)
    if email is not None:
        items["emailSubscriptions.subscriptionStatus"] = "NOT_SET"
        items["emailSubscriptions.effectiveEmail"] = email["email"]
    if items:
        info["extendedFields"] = {"items": items}
    else:
        info.pop("extendedFields", None)


def _merge_info(target: Contact, source: Contact) -> None:
    """Fill ``target`` from ``source`` without overwriting anything ``target`` has."""
    name = target.setdefault("name", {})
    for part in ("first", "last"):
        if not name.get(part) and source.get("name", {}).get(part):
            name[part] = source["name"][part]
    for key, same in (
        ("emails", lambda a, b: email_key(a["email"]) == email_key(b["email"])),
        (
            "phones",
            lambda a, b: (
                phone_key(a["phone"], a.get("countryCode"))
                == phone_key(b["phone"], b.get("countryCode"))
            ),
        ),
        ("addresses", lambda a, b: a.get("address") == b.get("address")),
    ):
        have: list[dict[str, Any]] = target.setdefault(key, {"items": []})["items"]
        for item in source.get(key, {}).get("items", []):
            if len(have) < MAX_ITEMS and not any(same(h, item) for h in have):
                have.append({k: v for k, v in item.items() if k != "primary"})
    labels = target.setdefault("labelKeys", {"items": []})["items"]
    for label in source.get("labelKeys", {}).get("items", []):
        if label not in labels:
            labels.append(label)
    for key in ("company", "jobTitle", "birthdate", "locale"):
        if not target.get(key) and source.get(key):
            target[key] = source[key]
    custom = target.setdefault("extendedFields", {"items": {}})["items"]
    for key, value in source.get("extendedFields", {}).get("items", {}).items():
        if key.startswith("custom.") and key not in custom:
            custom[key] = value


def _search_hit(contact: Contact, needle: str) -> bool:
    info = contact.get("info", {})
    values = [info.get("name", {}).get("first"), info.get("name", {}).get("last")]
    values += [i.get("email") for i in info.get("emails", {}).get("items", [])]
    values += [i.get("phone") for i in info.get("phones", {}).get("items", [])]
    return any(isinstance(v, str) and v.lower() == needle for v in values)
