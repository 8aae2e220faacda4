"""Link state persists as JSON and ids are deterministic."""

from __future__ import annotations

import json

from services.mapper.domain import Link, Policy, link_id_for, on_poweroffice_change

from .support import T0, employee, po_change, po_ref


def test_link_round_trips_through_json() -> None:
    decision = on_poweroffice_change(None, po_change("employees", employee(), T0), [], Policy(), T0)
    link = decision.link
    assert link is not None
    document = link.model_dump(mode="json")
    json.dumps(document)  # plain JSON
    assert Link.model_validate(document) == link
    assert Link.from_json(link.to_json()) == link
    for command in decision.commands:
        json.dumps(command.model_dump(mode="json"))
    json.dumps(decision.model_dump(mode="json"))


def test_link_id_is_derived_from_tenant_and_first_member() -> None:
    ref = po_ref("employees", "1")
    assert link_id_for(ref) == link_id_for(po_ref("employees", "1"))
    assert link_id_for(ref) != link_id_for(po_ref("customers", "1"))
    assert link_id_for(ref) != link_id_for(ref.model_copy(update={"tenant": "t2"}))


def test_same_input_same_decision() -> None:
    change = po_change("employees", employee(), T0)
    first = on_poweroffice_change(None, change, [], Policy(), T0)
    second = on_poweroffice_change(None, change, [], Policy(), T0)
    assert first == second
    assert first.commands[0].command_id == second.commands[0].command_id
    other = on_poweroffice_change(
        None, change.model_copy(update={"event_id": "another"}), [], Policy(), T0
    )
    assert other.commands[0].command_id != first.commands[0].command_id
