"""The mapper's rule for a change found by verification: content differs, stamp did not move.

A record changed behind the engine's back (no webhook, no LastChanged/revision bump) reaches the
mapper as a change event with the SAME source timestamp / revision as the state it last observed.
Such a change must not be dropped as stale/echo/no-op; and where the replaced value was the one
the engine itself wrote there, the write did not stick: the engine writes it again (the link's
value wins) instead of taking the reverted value as a new edit.
"""

from __future__ import annotations

import copy
from datetime import datetime

from services.mapper.domain import DecisionKind, Link
from tests.mapper_domain.support import (
    World,
    _set_wix_props,
    employee,
    po_change,
    po_values,
    wix_change,
)


def linked_employee() -> World:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    return world


def silent_po_edit(world: World, record_id: str, **fields: str) -> None:
    """Change the PowerOffice record without moving its LastChanged stamp, and deliver what a
    verification read would emit (same stamp as the last observation)."""
    record = world.po[("employees", record_id)]
    record.update(fields)
    at = datetime.fromisoformat(record["LastChangedDateTimeOffset"])
    world.deliver(po_change("employees", dict(record), at, event_id=f"verify-po-{fields}"))


def silent_wix_edit(world: World, contact_id: str, **props: str | None) -> None:
    """Change the Wix contact without bumping revision/updatedDate, and deliver the verify read."""
    contact = world.wix[contact_id]
    _set_wix_props(contact, props)
    at = datetime.fromisoformat(contact["updatedDate"])
    world.deliver(wix_change(copy.deepcopy(contact), at, event_id=f"verify-wix-{props}"))


def test_a_source_record_changed_behind_our_back_is_propagated() -> None:
    world = linked_employee()
    silent_po_edit(world, "1", LastName="Berg")
    assert world.shell.decisions[-1].kind is DecisionKind.MAPPED
    world.pump()
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Berg"
    assert po_values(world, "employees", "1")["LastName"] == "Berg"


def test_a_lost_write_is_written_again_not_taken_as_an_edit() -> None:
    world = linked_employee()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    world.pump()
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Hansen"
    revision = world.wix["c-new-1"]["revision"]
    # The write we made to Wix is gone (reverted behind our back, revision unchanged).
    silent_wix_edit(world, "c-new-1", last_name="Nordmann")
    decision = world.shell.decisions[-1]
    assert decision.kind is DecisionKind.MAPPED
    [command] = decision.commands
    assert command.target.system == "wix" and command.props == {"last_name": "Hansen"}
    assert command.expected_revision == revision
    world.pump()
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Hansen"
    assert po_values(world, "employees", "1")["LastName"] == "Hansen"
    assert world.shell.conflicts == {}


def test_after_a_lost_write_is_repaired_a_real_edit_of_that_property_still_wins() -> None:
    world = linked_employee()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    world.pump()
    silent_wix_edit(world, "c-new-1", last_name="Nordmann")
    world.pump()
    world.deliver(world.wix_edit("c-new-1", last_name="Dahl"))
    world.pump()
    assert po_values(world, "employees", "1")["LastName"] == "Dahl"
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Dahl"


def test_replaying_the_same_unstamped_read_twice_changes_nothing_more() -> None:
    world = linked_employee()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    world.pump()
    silent_wix_edit(world, "c-new-1", last_name="Nordmann")
    world.pump()
    record = dict(world.po[("employees", "1")])
    at = datetime.fromisoformat(record["LastChangedDateTimeOffset"])
    decision = world.deliver(po_change("employees", record, at, event_id="verify-again"))
    assert decision.kind is DecisionKind.NOOP and decision.commands == ()


def test_the_reverted_mark_is_stored_only_while_set() -> None:
    """A link document without a reverted property is byte-for-byte what the previous version
    wrote (its replicas forbid unknown fields and keep reading during a rolling update)."""
    world = linked_employee()
    [link] = world.shell.links.values()
    assert "reverted" not in link.to_json()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    world.pump()
    silent_wix_edit(world, "c-new-1", last_name="Nordmann")
    [link] = world.shell.links.values()
    stored = link.to_json()
    assert '"reverted":["last_name"]' in stored
    assert Link.from_json(stored) == link
