"""Test support for the mapper domain: builders, an in-memory shell and a simulated world.

* builders make PowerOffice records, Wix contacts, changes and outcomes;
* ``Shell`` plays the service loop: it keeps links, the record->link lookup and the contact index,
  finds candidates, calls the decision functions and collects the outbox;
* ``World`` holds the records of both systems, lets "users" edit them, and plays the loader:
  it applies commands (revision / ``test`` guards), reports outcomes and emits the change events
  (echoes) the extractor would.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.mapper.domain import (
    Candidate,
    Change,
    Command,
    CommandAction,
    ContactIndexEntry,
    Decision,
    Link,
    Operation,
    Outcome,
    OutcomeKind,
    Policy,
    RecordRef,
    flow_for,
    hub_match_keys,
    link_match_keys,
    match_keys,
    on_change,
    on_outcome,
)
from services.mapper.domain.normalize import phone_e164

POWEROFFICE = "poweroffice"
WIX = "wix"
CONTACTS = "contacts"
"""The shipped default dataflow's systems: PowerOffice's flows, Wix contacts as the hub."""

TENANT = "t1"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ts(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------


def employee(
    record_id: int = 1,
    first: str | None = "Ola",
    last: str | None = "Nordmann",
    phone: str | None = "912 34 567",
    email: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "Id": record_id,
        "FirstName": first,
        "LastName": last,
        "PhoneNumber": phone,
        "EmailAddress": email,
        "IsArchived": False,
        **extra,
    }


def customer(
    record_id: int = 10,
    first: str | None = "Kari",
    last: str | None = "Hansen",
    email: str | None = "kari@example.no",
    is_person: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "Id": record_id,
        "IsPerson": is_person,
        "Name": None if is_person else "Acme AS",
        "FirstName": first,
        "LastName": last,
        "EmailAddress": email,
        "PhoneNumber": "22 22 55 55",
        "IsArchived": False,
        **extra,
    }


def contact_person(
    record_id: int = 100,
    contact_id: int = 10,
    first: str | None = "Per",
    last: str | None = "Olsen",
    email: str | None = "per@example.no",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "Id": record_id,
        "ContactId": contact_id,
        "FirstName": first,
        "LastName": last,
        "EmailAddress": email,
        "PhoneNumber": None,
        "IsActive": True,
        **extra,
    }


def wix_contact(
    contact_id: str = "c-1",
    first: str | None = "Ola",
    last: str | None = "Nordmann",
    email: str | None = None,
    phone: str | None = None,
    revision: int = 1,
    extra_emails: tuple[str, ...] = (),
    extra_phones: tuple[str, ...] = (),
) -> dict[str, Any]:
    emails = [{"email": email, "primary": True, "tag": "MAIN"}] if email else []
    emails += [{"email": e, "tag": "WORK"} for e in extra_emails]
    phones = []
    if phone:
        item: dict[str, Any] = {"phone": phone, "primary": True, "tag": "MOBILE"}
        e164 = phone_e164(phone)
        if e164:
            item["e164Phone"] = e164
        phones.append(item)
    phones += [{"phone": p, "tag": "HOME"} for p in extra_phones]
    name = {k: v for k, v in (("first", first), ("last", last)) if v is not None}
    return {
        "id": contact_id,
        "revision": revision,
        "info": {"name": name, "emails": {"items": emails}, "phones": {"items": phones}},
    }


_event_ids = itertools.count(1)


def po_change(
    resource: str,
    record: dict[str, Any] | None,
    at: datetime,
    *,
    record_id: str | None = None,
    operation: Operation = Operation.UPSERT,
    event_id: str | None = None,
    parent_kind: str | None = None,
) -> Change:
    rid = record_id if record_id is not None else str(record["Id"]) if record else "?"
    return Change(
        event_id=event_id or f"po-{resource}-{rid}-{at.isoformat()}-{operation.value}",
        tenant=TENANT,
        system=POWEROFFICE,
        resource=resource,
        record_id=rid,
        operation=operation,
        source_ts=at,
        record=record,
        parent_kind=parent_kind,
    )


def wix_change(
    contact: dict[str, Any] | None,
    at: datetime,
    *,
    contact_id: str | None = None,
    operation: Operation = Operation.UPSERT,
    event_id: str | None = None,
    merged_into: str | None = None,
) -> Change:
    cid = contact_id if contact_id is not None else str(contact["id"]) if contact else "?"
    revision = contact.get("revision") if contact else None
    return Change(
        event_id=event_id or f"wix-{cid}-{revision}-{at.isoformat()}-{operation.value}",
        tenant=TENANT,
        system=WIX,
        resource=CONTACTS,
        record_id=cid,
        operation=operation,
        source_ts=at,
        revision=revision,
        record=contact,
        merged_into=merged_into,
    )


def outcome_for(
    command: Command,
    kind: OutcomeKind,
    *,
    record: dict[str, Any] | None = None,
    target_id: str | None = None,
    at: datetime | None = None,
    revision: int | None = None,
    error_code: str | None = None,
) -> Outcome:
    target = command.target
    if target_id is not None:
        target = target.model_copy(update={"id": target_id})
    return Outcome(
        outcome_id=f"out-{command.command_id}-{kind.value}",
        command_id=command.command_id,
        tenant=command.tenant,
        link_id=command.link_id,
        kind=kind,
        target=target,
        record=record,
        revision=revision if revision is not None else (record or {}).get("revision"),
        source_ts=at,
        error_code=error_code,
    )


# ------------------------------------------------------------------------------------------------
# The shell
# ------------------------------------------------------------------------------------------------


@dataclass
class Shell:
    """What the service loop does around the pure functions, in memory."""

    policy: Policy = field(default_factory=Policy)
    now: datetime = T0
    links: dict[str, Link] = field(default_factory=dict)
    by_record: dict[tuple[str, str, str], str] = field(default_factory=dict)
    index: dict[str, ContactIndexEntry] = field(default_factory=dict)
    outbox: list[Command] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    reviews: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, Any] = field(default_factory=dict)

    def link_of(self, system: str, resource: str, record_id: str) -> Link | None:
        link_id = self.by_record.get((system, resource, record_id))
        return self.links.get(link_id) if link_id else None

    def link_of_contact(self, contact_id: str) -> Link | None:
        return self.link_of(WIX, CONTACTS, contact_id)

    def candidates(self, keys: list[Any]) -> list[Candidate]:
        wanted = set(keys)
        found = [
            Candidate(contact=entry, link=self.link_of_contact(entry.contact_id))
            for entry in self.index.values()
            if wanted & set(entry.keys)
        ]
        found += [
            Candidate(link=link)
            for link in self.links.values()
            if wanted & set(link_match_keys(link))
        ]
        return found

    def change(self, change: Change) -> Decision:
        link = self.link_of(change.system, change.resource, change.record_id)
        candidates: list[Candidate] = []
        if link is None and change.record is not None:
            if change.system == POWEROFFICE:
                keys = match_keys(flow_for(change.resource), change.record)
            else:
                keys = hub_match_keys(change.record)
            candidates = self.candidates(keys)
        decision = on_change(link, change, candidates, self.policy, self.now)
        self.apply(decision)
        return decision

    def outcome(self, outcome: Outcome) -> Decision:
        link = self.links.get(outcome.link_id)
        contact_link = None
        if outcome.kind is OutcomeKind.LINKED_EXISTING and outcome.target.system == WIX:
            contact_link = self.link_of_contact(outcome.target.id or "")
        decision = on_outcome(link, outcome, self.policy, self.now, contact_link)
        self.apply(decision)
        return decision

    def apply(self, decision: Decision) -> None:
        self.decisions.append(decision)
        for link in decision.links:
            old = self.links.get(link.link_id)
            assert old is None or link.version > old.version, "link version must grow"
            self.links[link.link_id] = link
            for ref in link.member_refs():
                self.by_record[(ref.system, ref.resource, ref.id or "")] = link.link_id
        for entry in decision.index_upserts:
            self.index[entry.contact_id] = entry
        for contact_id in decision.index_deletes:
            self.index.pop(contact_id, None)
        self.outbox.extend(decision.commands)
        for item in decision.review_items:
            self.reviews[item.review_id] = item
        for conflict in decision.conflicts:
            self.conflicts[conflict.conflict_id] = conflict


# ------------------------------------------------------------------------------------------------
# The world (both SaaS systems + the loader)
# ------------------------------------------------------------------------------------------------

_PO_FIELDS = ("FirstName", "LastName", "PhoneNumber", "EmailAddress")


@dataclass
class World:
    shell: Shell = field(default_factory=Shell)
    po: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    wix: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock: int = 0
    events: deque[Change | Outcome] = field(default_factory=deque)
    created_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    steps: int = 0

    def tick(self) -> datetime:
        self.clock += 1
        self.shell.now = ts(self.clock)
        return ts(self.clock)

    # --- users -----------------------------------------------------------------------------

    def po_put(self, resource: str, record: dict[str, Any]) -> Change:
        at = self.tick()
        record = {**record, "LastChangedDateTimeOffset": at.isoformat()}
        self.po[(resource, str(record["Id"]))] = record
        return po_change(resource, dict(record), at)

    def po_edit(self, resource: str, record_id: str, **fields: Any) -> Change:
        record = dict(self.po[(resource, record_id)])
        record.update(fields)
        return self.po_put(resource, record)

    def wix_put(self, contact: dict[str, Any]) -> Change:
        at = self.tick()
        contact = {**contact, "updatedDate": at.isoformat()}
        self.wix[contact["id"]] = contact
        return wix_change(_copy(contact), at)

    def wix_edit(self, contact_id: str, **props: str | None) -> Change:
        contact = _copy(self.wix[contact_id])
        _set_wix_props(contact, props)
        contact["revision"] += 1
        return self.wix_put(contact)

    # --- the loader --------------------------------------------------------------------------

    def load(self, command: Command) -> None:
        if command.target.system == WIX:
            self._load_wix(command)
        else:
            self._load_po(command)

    def _load_wix(self, command: Command) -> None:
        if command.action is CommandAction.CREATE:
            contact_id = f"c-new-{next(self.created_ids)}"
            contact = {"id": contact_id, "revision": 1, "info": {}}
            _set_wix_props(contact, dict(command.props))
            change = self.wix_put(contact)
            self.events.append(
                outcome_for(
                    command,
                    OutcomeKind.CREATED,
                    record=_copy(self.wix[contact_id]),
                    target_id=contact_id,
                    at=change.source_ts,
                )
            )
            self.events.append(change)
            return
        contact_id = command.target.id or ""
        current = self.wix.get(contact_id)
        if command.action is CommandAction.DELETE:
            self.wix.pop(contact_id, None)
            self.events.append(outcome_for(command, OutcomeKind.APPLIED))
            self.events.append(
                wix_change(None, self.tick(), contact_id=contact_id, operation=Operation.DELETE)
            )
            return
        assert current is not None
        if (
            command.expected_revision is not None
            and current["revision"] != command.expected_revision
        ):
            self.events.append(
                outcome_for(
                    command,
                    OutcomeKind.CONFLICT,
                    record=_copy(current),
                    at=datetime.fromisoformat(current["updatedDate"]),
                )
            )
            return
        contact = _copy(current)
        _set_wix_props(contact, dict(command.props))
        contact["revision"] += 1
        change = self.wix_put(contact)
        self.events.append(
            outcome_for(
                command,
                OutcomeKind.APPLIED,
                record=_copy(self.wix[contact_id]),
                at=change.source_ts,
            )
        )
        self.events.append(change)

    def _load_po(self, command: Command) -> None:
        resource = command.target.resource
        if command.action is CommandAction.CREATE:
            record_id = str(1000 + next(self.created_ids))
            record = {"Id": int(record_id), "IsArchived": False}
            record.update(command.fields)
            change = self.po_put(resource, record)
            self.events.append(
                outcome_for(
                    command,
                    OutcomeKind.CREATED,
                    record=dict(self.po[(resource, record_id)]),
                    target_id=record_id,
                    at=change.source_ts,
                )
            )
            self.events.append(change)
            return
        key = (resource, command.target.id or "")
        current = self.po[key]
        if command.action is CommandAction.DELETE:
            del self.po[key]
            self.events.append(outcome_for(command, OutcomeKind.APPLIED))
            return
        if any(current.get(f) != v for f, v in command.expected.items()):
            self.events.append(
                outcome_for(
                    command,
                    OutcomeKind.CONFLICT,
                    record=dict(current),
                    at=datetime.fromisoformat(current["LastChangedDateTimeOffset"]),
                )
            )
            return
        record = dict(current)
        record.update(command.fields)
        change = self.po_put(resource, record)
        self.events.append(
            outcome_for(
                command, OutcomeKind.APPLIED, record=dict(self.po[key]), at=change.source_ts
            )
        )
        self.events.append(change)

    # --- running ----------------------------------------------------------------------------

    def deliver(self, item: Change | Outcome) -> Decision:
        self.steps += 1
        if isinstance(item, Outcome):
            return self.shell.outcome(item)
        return self.shell.change(item)

    def pump(self, limit: int = 500) -> None:
        """Run loader and mapper until nothing is left to do."""
        while self.shell.outbox or self.events:
            assert self.steps < limit, "the sync does not settle (ping-pong?)"
            if self.shell.outbox:
                self.load(self.shell.outbox.pop(0))
                continue
            self.deliver(self.events.popleft())


def _copy(contact: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(contact)


def _set_primary(items: list[dict[str, Any]], field_name: str, value: str | None) -> list[Any]:
    primary = next((i for i in items if i.get("primary")), None)
    if value is None:
        return [i for i in items if i is not primary]
    if primary is None:
        primary = {"primary": True, "tag": "MAIN"}
        items = [primary, *items]
    primary[field_name] = value
    if field_name == "phone":
        e164 = phone_e164(value)
        if e164:
            primary["e164Phone"] = e164
        else:
            primary.pop("e164Phone", None)
    return items


def _set_wix_props(contact: dict[str, Any], props: dict[str, str | None]) -> None:
    info = contact.setdefault("info", {})
    name = info.setdefault("name", {})
    for prop, key in (("first_name", "first"), ("last_name", "last")):
        if prop in props:
            if props[prop] is None:
                name.pop(key, None)
            else:
                name[key] = props[prop]
    if "email" in props:
        items = info.setdefault("emails", {}).setdefault("items", [])
        info["emails"]["items"] = _set_primary(items, "email", props["email"])
    if "phone" in props:
        items = info.setdefault("phones", {}).setdefault("items", [])
        info["phones"]["items"] = _set_primary(items, "phone", props["phone"])


def po_ref(resource: str, record_id: str) -> RecordRef:
    return RecordRef(tenant=TENANT, system=POWEROFFICE, resource=resource, id=record_id)


def po_values(world: World, resource: str, record_id: str) -> dict[str, Any]:
    record = world.po[(resource, record_id)]
    return {f: record.get(f) for f in _PO_FIELDS}
