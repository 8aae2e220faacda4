"""The loader against the PowerOffice simulator over HTTP, with real Kafka: guarded patches,
conflicts, creates found again by their reference, deletes, retries, per-link ordering."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from services.connectors.simkit import FaultRule
from services.loader.plan import Action
from tests.loader.support import LoaderHarness, Stack, po_command, record_of


def employee(sims: Stack, **values: Any) -> dict[str, Any]:
    base = {"FirstName": "Ola", "LastName": "Nordmann", "PhoneNumber": "912 34 567"}
    return sims.po.seed("employees", [{**base, **values}])[0]


def update_employee(record: dict[str, Any], changes: dict[str, str | None], **kw: Any) -> Any:
    return po_command(
        "employees",
        Action.UPDATE,
        target_id=str(record["Id"]),
        fields=changes,
        expected={k: record.get(k) for k in changes},
        **kw,
    )


def test_patch_with_test_guards_is_applied(loader: LoaderHarness, sims: Stack) -> None:
    record = employee(sims)
    command = loader.send(update_employee(record, {"FirstName": "Ole", "PhoneNumber": "+4799"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "APPLIED"
    assert outcome["target_id"] == str(record["Id"])
    stored = sims.po.store.get("employees", record["Id"])
    assert (stored["FirstName"], stored["LastName"], stored["PhoneNumber"]) == (
        "Ole",
        "Nordmann",
        "+4799",
    )
    result = record_of(outcome)
    assert result is not None and result["FirstName"] == "Ole"
    assert outcome["target_revision"] is None


def test_failed_guard_is_a_conflict_with_the_fresh_record(
    loader: LoaderHarness, sims: Stack
) -> None:
    record = employee(sims)
    sims.po.edit("employees", record["Id"], {"FirstName": "Per"})
    command = loader.send(update_employee(record, {"FirstName": "Ole"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CONFLICT"
    fresh = record_of(outcome)
    assert fresh is not None and fresh["FirstName"] == "Per"
    assert sims.po.store.get("employees", record["Id"])["FirstName"] == "Per"
    assert sims.po_count("PATCH", "employees", 200) == 0


def test_failed_guard_with_the_values_already_there_is_a_noop(
    loader: LoaderHarness, sims: Stack
) -> None:
    record = employee(sims)
    sims.po.edit("employees", record["Id"], {"FirstName": "Ole"})
    command = loader.send(update_employee(record, {"FirstName": "Ole"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "NOOP"
    assert sims.po_count("PATCH", "employees", 200) == 0


@pytest.mark.parametrize("status", [400, 409])
def test_failed_guard_while_reads_lag_is_a_conflict_never_a_rejection(
    loader: LoaderHarness, sims: Stack, status: int
) -> None:
    # Reads served ~1 s behind writes: the re-read right after the refusal still shows the old
    # value (which satisfies the guard). Before: the raw refusal was re-raised -> REJECTED and
    # the mapper never sent the value again.
    sims.po.store.patch_test_failure_status = status
    sims.po.set_read_lag(1.0)
    try:
        record = employee(sims)
        sims.po.edit("employees", record["Id"], {"FirstName": "Per"})
        command = loader.send(update_employee(record, {"FirstName": "Ole"}))
        outcome = loader.wait_outcome(command.command_id)
    finally:
        sims.po.set_read_lag(0.0)
        sims.po.store.patch_test_failure_status = 400
    assert outcome["status"] == "CONFLICT", outcome
    fresh = record_of(outcome)
    assert fresh is not None and fresh["FirstName"] == "Per"
    assert sims.po.store.admin_get("employees", record["Id"])["record"]["FirstName"] == "Per"
    assert sims.po_count("PATCH", "employees", 200) == 0
    assert loader.dead_letters() == []


def test_guard_only_covers_the_properties_written(loader: LoaderHarness, sims: Stack) -> None:
    record = employee(sims)
    sims.po.edit("employees", record["Id"], {"LastName": "Hansen"})  # not written by us
    command = loader.send(update_employee(record, {"FirstName": "Ole"}))
    assert loader.wait_outcome(command.command_id)["status"] == "APPLIED"
    stored = sims.po.store.get("employees", record["Id"])
    assert (stored["FirstName"], stored["LastName"]) == ("Ole", "Hansen")


def test_create_with_a_reference_is_found_again_after_a_lost_response(
    loader: LoaderHarness, sims: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    sims.po.add_fault(
        FaultRule(kind="lose_response", path=r"/v2/Customers$", method="POST", status=0, times=1)
    )
    command = po_command(
        "customers",
        Action.CREATE,
        fields={"IsPerson": "true", "FirstName": "Kari", "LastName": "Hansen"},
        idempotency_key="tether-link-1",
    )
    outcome = loader.wait_outcome(loader.send(command).command_id)
    assert outcome["status"] == "CREATED"
    customers = [r for r in sims.po.store.admin_list("customers") if not r["deleted"]]
    assert len(customers) == 1
    stored = customers[0]["record"]
    assert str(stored["Id"]) == outcome["target_id"]
    assert stored["IsPerson"] is True and stored["ExternalImportReference"] == "tether-link-1"

    # The same command re-sent to a loader that never saw its outcome: found, not created.
    other = LoaderHarness(sims, kafka_bootstrap, topic_prefix + "b").start()
    try:
        again = other.wait_outcome(other.send(command).command_id)
    finally:
        other.close()
    assert again["status"] == "CREATED" and again["target_id"] == outcome["target_id"]
    assert sims.po_count("POST", "customers", 201) + sims.po_count("POST", "customers", 200) == 1


def test_contact_person_create_update_delete(loader: LoaderHarness, sims: Stack) -> None:
    (company,) = sims.po.seed("customers", [{"Name": "Acme AS", "IsPerson": False}])
    parent = str(company["Id"])
    create = po_command(
        "contact_persons",
        Action.CREATE,
        parent_id=parent,
        fields={"FirstName": "Kari", "LastName": "Hansen", "EmailAddress": "kari@acme.no"},
        idempotency_key="link-cp-1",
    )
    created = loader.wait_outcome(loader.send(create).command_id)
    assert created["status"] == "CREATED"
    person_id = created["target_id"]
    stored = sims.po.store.get("contactpersons", int(person_id))
    assert stored["ExternalCode"] == "link-cp-1" and stored["ContactId"] == company["Id"]

    update = po_command(
        "contact_persons",
        Action.UPDATE,
        target_id=person_id,
        parent_id=parent,
        fields={"EmailAddress": "kari.hansen@acme.no"},
        expected={"EmailAddress": "kari@acme.no"},
    )
    assert loader.wait_outcome(loader.send(update).command_id)["status"] == "APPLIED"
    assert sims.po.store.get("contactpersons", int(person_id))["EmailAddress"] == (
        "kari.hansen@acme.no"
    )

    delete = po_command("contact_persons", Action.DELETE, target_id=person_id, parent_id=parent)
    delete_again = po_command(
        "contact_persons", Action.DELETE, target_id=person_id, parent_id=parent
    )
    assert loader.wait_outcome(loader.send(delete).command_id)["status"] == "APPLIED"
    assert loader.wait_outcome(loader.send(delete_again).command_id)["status"] == "NOOP"


def test_transient_5xx_is_retried_then_applied(loader: LoaderHarness, sims: Stack) -> None:
    record = employee(sims)
    sims.po.add_fault(
        FaultRule(kind="status", path=r"/v2/Employees/\d+$", method="PATCH", status=502, times=3)
    )
    command = loader.send(update_employee(record, {"FirstName": "Ole"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "APPLIED" and outcome["attempts"] == 2
    assert sims.po.store.get("employees", record["Id"])["FirstName"] == "Ole"


def test_permanent_400_is_rejected_with_a_dead_letter(loader: LoaderHarness, sims: Stack) -> None:
    record = employee(sims)
    command = loader.send(update_employee(record, {"EmailAddress": "not-an-email"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "REJECTED"
    (dead,) = loader.wait_dead_letters(1)
    assert dead["error_class"] == "ValidationError"
    assert dead["source_topic"] == f"{loader.prefix}.commands.poweroffice.employees"


def test_malformed_command_fails_with_a_dead_letter(loader: LoaderHarness, sims: Stack) -> None:
    create = po_command("employees", Action.CREATE, fields={"FirstName": "No-reference"})
    outcome = loader.wait_outcome(loader.send(create).command_id)
    assert outcome["status"] == "FAILED" and outcome["error_code"] == "ContractError"
    assert loader.wait_dead_letters(1)[0]["error_class"] == "ContractError"
    assert sims.po_count("POST", "employees") == 0  # a create that could not be found again


def test_commands_of_one_link_are_applied_in_order(loader: LoaderHarness, sims: Stack) -> None:
    record = employee(sims, FirstName="v0")
    link = "one-link"
    names = [f"v{i}" for i in range(8)]
    commands = [
        po_command(
            "employees",
            Action.UPDATE,
            link_id=link,
            target_id=str(record["Id"]),
            fields={"FirstName": new},
            expected={"FirstName": old},
        )
        for old, new in itertools.pairwise(names)
    ]
    for command in commands:
        loader.send(command)
    statuses = [loader.wait_outcome(c.command_id)["status"] for c in commands]
    assert statuses == ["APPLIED"] * len(commands)
    assert sims.po.store.get("employees", record["Id"])["FirstName"] == "v7"
