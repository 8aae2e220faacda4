"""Change events (pure): identities, versions, deterministic ids, webhook mapping, contracts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.connectors.poweroffice.stream import PowerOfficeRecords
from services.connectors.wix.receiver import pushed_changes
from services.connectors.wix.stream import WixContacts
from services.connectors.wix.webhooks import ContactWebhookEvent
from services.core.codec import AvroCodec
from services.core.errors import ContractError
from services.core.records import unwrap_record
from services.extractor.changes import Change, ChangeMaker, Operation, Origin, event_id

CONTACTS = ChangeMaker("wix", "contacts", WixContacts())


def po_maker(resource: str) -> ChangeMaker:
    return ChangeMaker("poweroffice", resource, PowerOfficeRecords(resource))


def po_upsert(resource: str, raw: Any, origin: Origin = Origin.POLL) -> Change:
    maker = po_maker(resource)
    return maker.upsert(raw, maker.reader.observe(raw), origin)


def webhook_changes(event: ContactWebhookEvent) -> list[Change]:
    return [CONTACTS.pushed(change) for change in pushed_changes(event)]


NOW = datetime(2025, 11, 27, 8, 0, 5, tzinfo=UTC)
PERSON = {
    "Id": 500001,
    "ContactId": 100001,
    "FirstName": "Åse",
    "LastName": "Sæther",
    "LastChangedDateTimeOffset": "2025-11-27T08:00:00.1234567Z",
    "Hobby": "ski",  # unknown to the schema: kept
}
CONTACT = {
    "id": "c-1",
    "revision": 3,
    "createdDate": "2025-01-01T00:00:00.000Z",
    "updatedDate": "2025-11-27T08:00:00.803Z",
    "info": {"name": {"first": "Ola"}},
    "source": {"sourceType": "OTHER"},
}


def test_event_ids_are_deterministic_per_observation() -> None:
    a = event_id("t", "wix", "contacts", "c-1", "UPSERT", "3")
    assert a == event_id("t", "wix", "contacts", "c-1", "UPSERT", "3")
    assert (
        len(
            {
                a,
                event_id("t", "wix", "contacts", "c-1", "UPSERT", "4"),
                event_id("t", "wix", "contacts", "c-1", "DELETE", "3"),
                event_id("u", "wix", "contacts", "c-1", "UPSERT", "3"),
                event_id("t", "wix", "contacts", "c-1", "MERGE", "3", ["c-2"]),
            }
        )
        == 5
    )
    # Two spellings of one PowerOffice stamp are one observation.
    change = po_upsert("contact_persons", PERSON)
    respelled = {**PERSON, "LastChangedDateTimeOffset": "2025-11-27 08:00:00.1234567+00:00"}
    other = po_upsert("contact_persons", respelled, Origin.RECONCILE)
    assert change.event_id("t") == other.event_id("t")
    assert change.source_version == PERSON["LastChangedDateTimeOffset"]  # as sent


def test_poweroffice_change_carries_the_record_verbatim() -> None:
    change = po_upsert("contact_persons", PERSON)
    assert (change.record_id, change.parent_id, change.operation) == (
        "500001",
        "100001",
        Operation.UPSERT,
    )
    datum = change.to_datum("default", NOW)
    decoded = AvroCodec().decode(AvroCodec().encode("ChangeEvent", datum), "ChangeEvent")
    _, record = unwrap_record(decoded["record"])  # type: ignore[misc]
    assert {k: v for k, v in record.items() if v is not None} == PERSON
    assert decoded["source_timestamp"] == datetime(2025, 11, 27, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        {"FirstName": "x", "LastChangedDateTimeOffset": "2025-01-01T00:00:00Z"},
        {"Id": True, "LastChangedDateTimeOffset": "2025-01-01T00:00:00Z"},
        {"Id": "7", "LastChangedDateTimeOffset": "2025-01-01T00:00:00Z"},
        {"Id": 7},
        {"Id": 7, "LastChangedDateTimeOffset": "soon"},
        ["not", "an", "object"],
    ],
)
def test_poweroffice_records_without_identity_or_stamp_are_contract_errors(raw: Any) -> None:
    with pytest.raises(ContractError):
        PowerOfficeRecords("employees").observe(raw)


def test_wrong_types_are_contract_errors_not_crashes() -> None:
    bad = {**PERSON, "FirstName": 123}
    with pytest.raises(ContractError, match="FirstName"):
        po_upsert("contact_persons", bad)
    for broken in ({**CONTACT, "revision": "3"}, {**CONTACT, "updatedDate": None}, {"id": ""}):
        with pytest.raises(ContractError):
            WixContacts().observe(broken)
    nested = {**CONTACT, "info": {"name": {"first": 42}}}
    with pytest.raises(ContractError):
        CONTACTS.upsert(nested, CONTACTS.reader.observe(nested), Origin.POLL)


def webhook(kind: str, **extra: Any) -> ContactWebhookEvent:
    values: dict[str, Any] = {
        "event_id": "e-1",
        "kind": kind,
        "event_type": f"wix.contacts.v4.contact_{kind}",
        "entity_id": "c-1",
        "event_time": NOW,
        "instance_id": "i",
        "contact": CONTACT if kind != "deleted" else None,
    }
    values.update(extra)
    return ContactWebhookEvent(**values)


def test_webhook_events_become_upserts_deletes_and_merges() -> None:
    (upsert,) = webhook_changes(webhook("updated"))
    assert (upsert.operation, upsert.origin, upsert.source_version) == (
        Operation.UPSERT,
        Origin.WEBHOOK,
        "3",
    )
    assert upsert.source_timestamp == NOW  # the webhook's eventTime

    (gone,) = webhook_changes(webhook("deleted"))
    assert (gone.operation, gone.record_id, gone.record) == (Operation.DELETE, "c-1", None)
    assert webhook_changes(webhook("deleted", originated_from="merge")) == []  # implied

    (merge,) = webhook_changes(webhook("merged", source_contact_ids=("c-9", "c-8")))
    assert merge.operation is Operation.MERGE
    assert merge.merged_ids == ("c-8", "c-9") and merge.record_id == "c-1"
    assert merge.record is not None and merge.source_version == "3"


def test_a_delete_carries_the_version_last_known() -> None:
    change = po_maker("customers").delete(
        "7", Origin.RECONCILE, NOW, "2025-01-01T00:00:00.0000000Z"
    )
    assert change.version_key is not None and change.record is None
    datum = change.to_datum("default", NOW)
    assert json.loads(json.dumps(datum, default=str))["operation"] == "DELETE"
    assert AvroCodec().encode("ChangeEvent", datum)
