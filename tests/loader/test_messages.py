"""The loader's Avro edges: commands decoded, outcomes encoded, command ids read fast."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.core.errors import ContractError, DecodeError
from services.core.records import unwrap_record
from services.loader.messages import (
    command_datum,
    command_from_datum,
    decode_command,
    outcome_command_id,
    outcome_datum,
)
from services.loader.plan import (
    Action,
    LoaderCommand,
    Result,
    Status,
    field_values,
    holds,
    matches_expected,
    update_base,
)
from tests.loader.support import CODEC

CONTACT = {
    "id": "w1",
    "revision": 4,
    "info": {
        "name": {"first": "Ola"},
        "emails": {"items": [{"email": "ola@example.no", "primary": True, "tag": "MAIN"}]},
    },
    "lastActivity": {"activityType": "CONTACT_CREATED"},
}


def wix_command() -> LoaderCommand:
    return LoaderCommand(
        command_id="cmd-1",
        tenant="default",
        link_id="link-1",
        system="wix",
        resource="contacts",
        action=Action.UPDATE,
        target_id="w1",
        fields={"info.name.first": "Ole", "info.phones[primary].phone": None},
        expected={"info.name.first": "Ola"},
        expected_revision=4,
        target_record=CONTACT,
        caused_by="event-1",
    )


def test_command_round_trip_keeps_the_target_record() -> None:
    payload = CODEC.encode("Command", command_datum(wix_command()))
    decoded = decode_command(CODEC, payload)
    assert decoded.fields == {"info.name.first": "Ole", "info.phones[primary].phone": None}
    assert decoded.expected_revision == 4 and decoded.action is Action.UPDATE
    assert decoded.target_record is not None
    assert decoded.target_record["info"]["emails"]["items"][0]["email"] == "ola@example.no"
    assert decoded.target_record["lastActivity"] == {"activityType": "CONTACT_CREATED"}
    assert decoded.cause_changed_at is None


def test_command_round_trip_keeps_the_cause_time() -> None:
    changed = datetime(2026, 11, 27, 9, 0, 1, 250000, tzinfo=UTC)
    command = replace(wix_command(), cause_changed_at=changed)
    decoded = decode_command(CODEC, CODEC.encode("Command", command_datum(command)))
    assert decoded.cause_changed_at == changed


def test_undecodable_and_meaningless_commands_raise() -> None:
    with pytest.raises(DecodeError):
        decode_command(CODEC, b"\xc3\x01garbage!")
    datum = command_datum(wix_command())
    datum["target_resource"] = "employees"
    with pytest.raises(ContractError):
        command_from_datum(datum)


def test_outcome_datum_encodes_and_reads_back() -> None:
    result = Result(Status.CONFLICT, "w1", CONTACT, "4")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    payload = CODEC.encode("Outcome", outcome_datum(wix_command(), result, attempts=2, now=now))
    outcome = CODEC.decode(payload, "Outcome")
    assert (outcome["status"], outcome["target_id"], outcome["target_revision"]) == (
        "CONFLICT",
        "w1",
        "4",
    )
    assert outcome["attempts"] == 2 and outcome["completed_at"] == now
    unwrapped = unwrap_record(outcome["target_record"])
    assert unwrapped is not None and unwrapped[1]["revision"] == 4
    assert outcome_command_id(CODEC, payload) == "cmd-1"


def test_outcome_keeps_the_command_target_and_drops_a_record_that_does_not_fit() -> None:
    result = Result(Status.APPLIED, record={"no": "id"})
    datum = outcome_datum(wix_command(), result, attempts=1)
    assert datum["target_id"] == "w1" and datum["target_record"] is None
    CODEC.encode("Outcome", datum)


def test_outcome_command_id_rejects_other_payloads() -> None:
    command = CODEC.encode("Command", command_datum(wix_command()))
    with pytest.raises(DecodeError):
        outcome_command_id(CODEC, command)
    with pytest.raises(DecodeError):
        outcome_command_id(CODEC, b"nope")


RELEASED = Path(__file__).resolve().parents[2] / "schemas" / "released"


@pytest.mark.parametrize(
    "golden", sorted(RELEASED.glob("v*/golden/Command.bin")), ids=lambda p: p.parts[-3]
)
def test_commands_of_every_release_plan_through_the_accessor_table(golden: Path) -> None:
    """A command an earlier release's mapper wrote (its fields keyed by the same paths) is still
    planned the same way now that the paths resolve through the connector's accessor table."""
    command = decode_command(CODEC, golden.read_bytes())
    contacts = WIX.resource(command.resource)
    base = update_base(command, contacts)
    assert base is not None and base["revision"] == command.expected_revision
    paths = {p: v for p, v in command.fields.items() if p in contacts.fields}
    values = field_values(replace(command, fields=paths), contacts.fields)
    assert values.values == {"info.name.first": "Åse Marie"}
    assert not holds(base, values, contacts.fields)  # the update still has something to write
    assert matches_expected(base, command.expected, contacts.fields)
    with pytest.raises(ContractError, match="unknown field 'phone'"):
        field_values(command, contacts.fields)  # a bare name was never a path (as before)
