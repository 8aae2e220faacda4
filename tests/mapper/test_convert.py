"""The Avro <-> domain translation the loop relies on (pure: no Kafka, no PostgreSQL)."""

from __future__ import annotations

import pytest

from services.core.codec import AvroCodec
from services.core.errors import ContractError
from services.core.records import unwrap_record
from services.mapper.convert import (
    changes_from_event,
    command_datum,
    field_text,
    outcome_from_datum,
)
from services.mapper.domain import (
    CommandAction,
    Operation,
    OutcomeKind,
    Policy,
    on_member_change,
)

from .support import change_event, customer, employee, outcome_event, ts, wix_contact

CODEC = AvroCodec()


def roundtrip(message_type: str, datum: dict) -> dict:  # type: ignore[type-arg]
    return CODEC.decode(CODEC.encode(message_type, datum), message_type)


def test_a_wix_merge_becomes_deletes_of_the_merged_away_contacts_then_the_survivor() -> None:
    survivor = wix_contact("c-keep", email="a@example.no", revision=7, at=ts(5))
    event = change_event(
        "wix",
        "contacts",
        "c-keep",
        survivor,
        ts(5),
        operation="MERGE",
        source_version="7",
        merged_ids=("c-gone-1", "c-gone-2"),
    )
    changes = changes_from_event(roundtrip("ChangeEvent", event))
    assert [(c.record_id, c.operation, c.merged_into) for c in changes] == [
        ("c-gone-1", Operation.DELETE, "c-keep"),
        ("c-gone-2", Operation.DELETE, "c-keep"),
        ("c-keep", Operation.UPSERT, None),
    ]
    assert changes[-1].revision == 7 and changes[-1].record is not None
    assert len({c.event_id for c in changes}) == 3


def test_contract_violations_are_contract_errors() -> None:
    upsert = change_event("poweroffice", "employees", "1", None, ts(1))
    with pytest.raises(ContractError):
        changes_from_event(roundtrip("ChangeEvent", upsert))
    unknown = change_event("poweroffice", "employees", "1", employee(1), ts(1))
    unknown["resource"] = "suppliers"
    with pytest.raises(ContractError):
        changes_from_event(unknown)
    mismatched = change_event("poweroffice", "employees", "1", employee(1), ts(1))
    mismatched["resource"] = "customers"
    with pytest.raises(ContractError):
        changes_from_event(roundtrip("ChangeEvent", mismatched))


def test_an_outcome_carries_kind_revision_source_time_and_a_content_derived_id() -> None:
    command = {
        "command_id": "cmd-1",
        "tenant": "default",
        "link_id": "link-1",
        "target_system": "wix",
        "target_resource": "contacts",
        "target_id": None,
        "action": "CREATE",
    }
    created = wix_contact("c-9", phone="+4791234567", revision=3, at=ts(9))
    datum = roundtrip(
        "Outcome", outcome_event(command, "CREATED", target_record=created, target_id="c-9")
    )
    outcome = outcome_from_datum(datum)
    assert outcome.kind is OutcomeKind.CREATED and outcome.target.id == "c-9"
    assert outcome.revision == 3 and outcome.source_ts == ts(9)
    assert outcome.record is not None and outcome.record["id"] == "c-9"
    assert outcome_from_datum(datum).outcome_id == outcome.outcome_id  # deterministic


def test_a_command_datum_follows_the_loader_contract() -> None:
    decision = on_member_change(
        None,
        changes_from_event(
            roundtrip(
                "ChangeEvent", change_event("poweroffice", "customers", "10", customer(10), ts(1))
            )
        )[0],
        [],
        Policy(),
        ts(2),
    )
    [create] = decision.commands
    datum = roundtrip(
        "Command", command_datum(create, target_record=None, caused_by="ev-1", created_at=ts(2))
    )
    assert datum["action"] == "CREATE" and datum["target_id"] is None
    assert datum["idempotency_key"] == create.link_id
    assert datum["fields"] == {
        "info.emails[primary].email": "kari@example.no",
        "info.name.first": "Kari",
        "info.name.last": "Hansen",
    }
    assert datum["caused_by"] == "ev-1" and datum["target_record"] is None

    po_update = create.model_copy(
        update={
            "action": CommandAction.UPDATE,
            "target": create.target.model_copy(
                update={"system": "poweroffice", "resource": "customers", "id": "10"}
            ),
            "fields": {"FirstName": "Kari", "IsPerson": True},
            "expected": {"FirstName": None},
        }
    )
    datum = roundtrip(
        "Command",
        command_datum(po_update, target_record=customer(10), caused_by="ev-2", created_at=ts(3)),
    )
    assert datum["fields"] == {"FirstName": "Kari", "IsPerson": "true"}
    assert datum["expected"] == {"FirstName": None}
    unwrapped = unwrap_record(datum["target_record"])
    assert unwrapped is not None and unwrapped[1]["Id"] == 10
    assert datum["idempotency_key"] is None
    assert field_text(3) == "3" and field_text(None) is None
