"""Repair change events: a record's current state as read by verification, as a ``ChangeEvent``.

A repair goes through the normal pipeline, never as a direct write: the verifier produces the
record it read onto the record's change topic (keyed like the extractor's events, so it stays in
order with them), origin ``RECONCILE`` (an existing value of the ``ChangeOrigin`` enum: no
schema release), and the mapper decides as for any change. The record was changed without its
stamp moving, so the event carries the *same* source timestamp / Wix revision as the mapper's last
observation: the mapper treats that as an edit, or — where the value replaced was its own write —
as a write that did not stick, and writes it again (``services.mapper.domain.sync.observe``).

``event_id`` is a uuid5 over the identity, the stamp and a digest of the record's content: the same
state read twice gives the same id (the extractor's ids cover the stamp only; a state changed
behind the engine's back has a stamp it has already used).

Pure: standard library and ``services.core`` records/timestamps/topics only.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.core.errors import ContractError
from services.core.records import wrap_record
from services.core.timestamps import parse_api_timestamp
from services.core.topics import record_key

ORIGIN = "RECONCILE"
_NAMESPACE = uuid.NAMESPACE_URL


def _digest(record: Mapping[str, Any]) -> str:
    text = json.dumps(
        record, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _stamp(system: str, record: Mapping[str, Any]) -> tuple[datetime, str | None]:
    """``(source_timestamp, source_version)`` as the extractor would send them."""
    if system == "wix":
        updated = record.get("updatedDate")
        revision = record.get("revision")
        if not isinstance(updated, str) or not isinstance(revision, int):
            raise ContractError("wix contact without updatedDate/revision")
        return parse_api_timestamp(updated), str(revision)
    stamp = record.get("LastChangedDateTimeOffset")
    if not isinstance(stamp, str):
        raise ContractError("poweroffice record without LastChangedDateTimeOffset")
    return parse_api_timestamp(stamp), stamp


def repair_event_id(
    tenant: str, system: str, resource: str, record_id: str, record: Mapping[str, Any]
) -> str:
    version = _stamp(system, record)[1]
    name = f"tether:verify:{tenant}/{system}/{resource}/{record_id}/{version}/{_digest(record)}"
    return str(uuid.uuid5(_NAMESPACE, name))


def repair_event(
    tenant: str,
    system: str,
    resource: str,
    record_id: str,
    record: Mapping[str, Any],
    *,
    extracted_at: datetime,
    parent_id: str | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """``(key, ChangeEvent datum)`` re-sending ``record``'s current state (raises
    ``ContractError`` for a record that cannot be encoded: no stamp, wrong types)."""
    source_timestamp, source_version = _stamp(system, record)
    if parent_id is None and resource == "contact_persons":
        contact = record.get("ContactId")
        parent_id = str(contact) if contact is not None else None
    datum: dict[str, Any] = {
        "event_id": repair_event_id(tenant, system, resource, record_id, record),
        "tenant": tenant,
        "system": system,
        "resource": resource,
        "record_id": record_id,
        "operation": "UPSERT",
        "origin": ORIGIN,
        "source_timestamp": source_timestamp,
        "source_version": source_version,
        "extracted_at": extracted_at,
        "record": wrap_record(system, resource, record),
        "merged_ids": [],
        "parent_id": parent_id,
        "parent_kind": None,
    }
    return record_key(tenant, system, resource, record_id), datum
