"""Change events: what the extractor observed about one record, as a ``ChangeEvent`` datum.

Pure: imports no I/O library (standard library, ``services.core.records``/``topics``/``errors`` and
the webhook event type only); the shells build :class:`Change` objects here and produce them.

- Readers of raw API records (:func:`po_observe`, :func:`wix_observe`) pull out the identity and
  version and raise :class:`ContractError` for a record that has none (no/invalid ``Id``, stamp or
  revision); :func:`po_upsert` / :func:`wix_upsert` also convert the record to its Avro type
  (``records.wrap_record``: unknown fields kept, wrong types -> ``ContractError``), so a change
  that exists can always be encoded. The shells turn ``ContractError`` into a dead letter.
- ``source_version`` is the API's own version as sent: PowerOffice's ``LastChangedDateTimeOffset``
  string, Wix's ``revision`` as a string. ``version_key`` is its comparable form (stamp in ns /
  revision) for the known set.
- ``event_id`` is a uuid5 over ``tenant/system/resource/id/operation/version`` (the version in
  canonical form, so two spellings of one stamp give one id) plus, for a MERGE, the sorted merged
  ids: the same observation always gets the same id, whichever origin (poll, webhook, reconcile)
  made it, so downstream de-duplicates by it.
- Wix merges (:func:`webhook_changes`): a ``merged`` event becomes one MERGE keyed by the target,
  with the target contact as ``record`` and the sources in ``merged_ids`` (they no longer exist).
  Wix also sends ``deleted`` for each source (``originatedFrom: "merge"``): those are *implied* by
  the MERGE and produce no event — a DELETE keyed by the source could overtake the MERGE (other
  partition) and make the mapper delete a person who still exists as the target. If the
  ``merged`` delivery never comes, reconciliation finds the sources missing, and Get answers
  ``MERGED`` -> a MERGE event (origin RECONCILE).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.connectors.wix.webhooks import ContactWebhookEvent
from services.core.errors import ContractError
from services.core.records import wrap_record
from services.core.topics import record_key
from services.extractor.positions import format_po, parse_ns, to_datetime

_EVENT_NAMESPACE = uuid.NAMESPACE_URL


class Operation(StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"
    MERGE = "MERGE"


class Origin(StrEnum):
    POLL = "POLL"
    WEBHOOK = "WEBHOOK"
    RECONCILE = "RECONCILE"


@dataclass(frozen=True)
class Change:
    system: str
    resource: str
    record_id: str
    operation: Operation
    origin: Origin
    source_timestamp: datetime
    source_version: str | None
    version_key: int | None
    record: tuple[str, Any] | None = None  # the Avro union branch (records.wrap_record)
    merged_ids: tuple[str, ...] = ()
    parent_id: str | None = None
    parent_kind: str | None = None  # contact persons: "customer" or "supplier" (parents.py)

    def event_id(self, tenant: str) -> str:
        return event_id(
            tenant,
            self.system,
            self.resource,
            self.record_id,
            self.operation,
            canonical_version(self.system, self.source_version),
            self.merged_ids,
        )

    def key(self, tenant: str) -> bytes:
        return record_key(tenant, self.system, self.resource, self.record_id)

    def to_datum(self, tenant: str, extracted_at: datetime) -> dict[str, Any]:
        return {
            "event_id": self.event_id(tenant),
            "tenant": tenant,
            "system": self.system,
            "resource": self.resource,
            "record_id": self.record_id,
            "operation": self.operation.value,
            "origin": self.origin.value,
            "source_timestamp": self.source_timestamp,
            "source_version": self.source_version,
            "extracted_at": extracted_at,
            "record": self.record,
            "merged_ids": list(self.merged_ids),
            "parent_id": self.parent_id,
            "parent_kind": self.parent_kind,
        }


def event_id(
    tenant: str,
    system: str,
    resource: str,
    record_id: str,
    operation: str,
    version: str | None,
    merged_ids: Sequence[str] = (),
) -> str:
    name = f"tether:change:{tenant}/{system}/{resource}/{record_id}/{operation}/{version or ''}"
    if merged_ids:
        name += "/" + ",".join(sorted(merged_ids))
    return str(uuid.uuid5(_EVENT_NAMESPACE, name))


def canonical_version(system: str, version: str | None) -> str | None:
    """PowerOffice stamps in one spelling (7 digits, UTC, ``Z``); everything else as is."""
    if version is None or system != "poweroffice":
        return version
    try:
        return format_po(parse_ns(version))
    except ValueError:
        return version


def version_key(system: str, version: str | None) -> int | None:
    """The comparable form of a ``source_version`` (None when absent or unreadable)."""
    if version is None:
        return None
    try:
        return parse_ns(version) if system == "poweroffice" else int(version)
    except ValueError:
        return None


def raw_payload(raw: Any) -> bytes:
    """The bytes a dead letter keeps of a raw API record."""
    try:
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError):
        return repr(raw).encode()


# -- PowerOffice ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoObservation:
    record_id: str
    stamp: str  # LastChangedDateTimeOffset as sent
    stamp_ns: int
    parent_id: str | None


def po_record_id(resource: str, raw: Any) -> str:
    if not isinstance(raw, Mapping):
        raise ContractError(f"poweroffice {resource}: record is not an object")
    value = raw.get("Id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"poweroffice {resource}: record has no integer Id")
    return str(value)


def po_parent_id(resource: str, raw: Mapping[str, Any]) -> str | None:
    if resource != "contact_persons":
        return None
    parent = raw.get("ContactId")
    if isinstance(parent, bool) or not isinstance(parent, int):
        return None
    return str(parent)


def po_observe(resource: str, raw: Any) -> PoObservation:
    """Identity and version of a PowerOffice record (``ContractError`` if it has none)."""
    record_id = po_record_id(resource, raw)
    stamp = raw.get("LastChangedDateTimeOffset")
    try:
        if not isinstance(stamp, str):
            raise ValueError("missing")
        stamp_ns = parse_ns(stamp)
    except ValueError:
        raise ContractError(
            f"poweroffice {resource} Id={record_id}: LastChangedDateTimeOffset missing or invalid"
        ) from None
    return PoObservation(record_id, stamp, stamp_ns, po_parent_id(resource, raw))


def po_upsert(
    resource: str,
    raw: Mapping[str, Any],
    obs: PoObservation,
    origin: Origin,
    parent_kind: str | None = None,
) -> Change:
    return Change(
        system="poweroffice",
        resource=resource,
        record_id=obs.record_id,
        operation=Operation.UPSERT,
        origin=origin,
        source_timestamp=to_datetime(obs.stamp_ns),
        source_version=obs.stamp,
        version_key=obs.stamp_ns,
        record=wrap_record("poweroffice", resource, raw),
        parent_id=obs.parent_id,
        parent_kind=parent_kind,
    )


# -- Wix ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WixObservation:
    record_id: str
    revision: int
    updated_ns: int
    created_ns: int | None


def wix_observe(raw: Any) -> WixObservation:
    """Identity, revision and dates of a Wix contact (``ContractError`` if it has none)."""
    if not isinstance(raw, Mapping):
        raise ContractError("wix contact: record is not an object")
    record_id = raw.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise ContractError("wix contact: record has no id")
    revision = raw.get("revision")
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise ContractError(f"wix contact {record_id}: revision missing or not an integer")
    try:
        updated = raw.get("updatedDate")
        if not isinstance(updated, str):
            raise ValueError("missing")
        updated_ns = parse_ns(updated)
    except ValueError:
        raise ContractError(f"wix contact {record_id}: updatedDate missing or invalid") from None
    created = raw.get("createdDate")
    created_ns: int | None = None
    if isinstance(created, str):
        try:
            created_ns = parse_ns(created)
        except ValueError:
            created_ns = None
    return WixObservation(record_id, revision, updated_ns, created_ns)


def wix_upsert(
    raw: Mapping[str, Any], obs: WixObservation, origin: Origin, at: datetime | None = None
) -> Change:
    return Change(
        system="wix",
        resource="contacts",
        record_id=obs.record_id,
        operation=Operation.UPSERT,
        origin=origin,
        source_timestamp=at or to_datetime(obs.updated_ns),
        source_version=str(obs.revision),
        version_key=obs.revision,
        record=wrap_record("wix", "contacts", raw),
    )


def wix_merge(
    target: Mapping[str, Any] | None,
    target_id: str,
    sources: Sequence[str],
    origin: Origin,
    at: datetime,
) -> Change:
    revision = target.get("revision") if target is not None else None
    if isinstance(revision, bool) or not isinstance(revision, int):
        revision = None
    return Change(
        system="wix",
        resource="contacts",
        record_id=target_id,
        operation=Operation.MERGE,
        origin=origin,
        source_timestamp=at,
        source_version=str(revision) if revision is not None else None,
        version_key=revision,
        record=wrap_record("wix", "contacts", target) if target else None,
        merged_ids=tuple(sorted(set(sources) - {target_id})),
    )


def delete(
    system: str,
    resource: str,
    record_id: str,
    origin: Origin,
    at: datetime,
    version: str | None,
    parent_id: str | None = None,
) -> Change:
    return Change(
        system=system,
        resource=resource,
        record_id=record_id,
        operation=Operation.DELETE,
        origin=origin,
        source_timestamp=at,
        source_version=version,
        version_key=version_key(system, version),
        parent_id=parent_id,
    )


def webhook_changes(event: ContactWebhookEvent) -> list[Change]:
    """The changes one verified Wix webhook stands for (``ContractError`` if its contact is
    malformed). ``[]`` for a source's ``deleted`` that a merge implies."""
    at = event.event_time
    if event.kind in ("created", "updated"):
        assert event.contact is not None  # verify_and_parse guarantees it
        obs = wix_observe(event.contact)
        return [wix_upsert(event.contact, obs, Origin.WEBHOOK, at=at)]
    if event.kind == "deleted":
        if event.originated_from == "merge":
            return []
        revision = event.contact.get("revision") if event.contact else None
        version = str(revision) if isinstance(revision, int) else None
        return [delete("wix", "contacts", event.entity_id, Origin.WEBHOOK, at, version)]
    return [wix_merge(event.contact, event.entity_id, event.source_contact_ids, Origin.WEBHOOK, at)]
