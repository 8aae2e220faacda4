"""Property-based tests of the decision rules over random edit histories.

A shared link (customer, contact person and employee on one Wix contact) receives random user
edits on both sides; their change events are delivered in a random order with the loader running
at random points. Invariants: events for linked records never create, echoes never command,
non-conflicting edits converge to the same state in any order, and replaying every change again
emits nothing.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.mapper.domain import (
    CommandAction,
    Decision,
    DecisionKind,
    Outcome,
    Policy,
    on_member_change,
)
from services.mapper.domain.merge import cmp

from .support import World, contact_person, customer, employee, po_change, ts

SCALE = int(os.environ.get("MAPPER_DOMAIN_STRESS", "1"))
"""Multiply the number of examples (e.g. ``MAPPER_DOMAIN_STRESS=30`` for a long soak)."""

MEMBERS = {
    # member -> (resource, id, properties it maps)
    "customer": ("customers", "10", ("first_name", "last_name", "email")),
    "contact_person": ("contact_persons", "100", ("first_name", "last_name", "email")),
    "employee": ("employees", "5", ("first_name", "last_name", "phone")),
    "wix": ("contacts", "c-new-1", ("first_name", "last_name", "email", "phone")),
}
PO_FIELD = {
    "first_name": "FirstName",
    "last_name": "LastName",
    "email": "EmailAddress",
    "phone": "PhoneNumber",
}
VALUES: dict[str, list[str | None]] = {
    "first_name": ["Karianne", "Kari Anne", "Siri"],
    "last_name": ["Berg", "Dahl", None],  # clears travel too (first name and email never clear,
    "email": ["kari.berg@example.no", "KB@Example.no", "siri@example.no"],  # so the contact is
    "phone": ["400 00 002", "+47 98765432", None],  # never emptied)
}


def shared_world() -> World:
    world = World()
    world.deliver(world.po_put("customers", customer()))
    world.pump()
    world.deliver(
        world.po_put(
            "contact_persons", contact_person(first="Kari", last="Hansen", email="kari@example.no")
        )
    )
    world.deliver(
        world.po_put(
            "employees", employee(5, "Kari", "Hansen", "+47 400 00 001", "kari@example.no")
        )
    )
    world.pump()
    return world


def value_of(world: World, member: str, prop: str) -> str | None:
    resource, rid, _ = MEMBERS[member]
    if member == "wix":
        from services.mapper.domain import read_hub

        return read_hub(world.wix[rid])[prop]
    return world.po[(resource, rid)].get(PO_FIELD[prop])


def edit(world: World, member: str, prop: str, value: str | None) -> Any:
    resource, rid, _ = MEMBERS[member]
    if member == "wix":
        return world.wix_edit(rid, **{prop: value})
    return world.po_edit(resource, rid, **{PO_FIELD[prop]: value})


class Checked:
    """Delivers events and checks the per-decision invariants."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.delivered: list[Any] = []

    def deliver(self, item: Any) -> Decision:
        shell = self.world.shell
        linked = None
        if not isinstance(item, Outcome):
            link = shell.link_of(item.system, item.resource, item.record_id)
            linked = link is not None and link.hub_record_id is not None
            self.delivered.append(item)
        decision = self.world.deliver(item)
        if linked:
            assert all(c.action is not CommandAction.CREATE for c in decision.commands)
        if decision.kind is DecisionKind.ECHO:
            assert decision.commands == ()
        return decision

    def pump(self) -> None:
        world = self.world
        while world.shell.outbox or world.events:
            assert world.steps < 800, "does not settle"
            if world.shell.outbox:
                world.load(world.shell.outbox.pop(0))
            else:
                self.deliver(world.events.popleft())


# one (member, value index) per property at most: edits that do not conflict
assignments = st.fixed_dictionaries(
    {
        prop: st.one_of(
            st.none(),
            st.tuples(
                st.sampled_from([m for m, (_, _, props) in MEMBERS.items() if prop in props]),
                st.integers(0, 2),
            ),
        )
        for prop in PO_FIELD
    }
)


@settings(max_examples=60 * SCALE, deadline=None)
@given(
    chosen=assignments,
    data=st.data(),
)
def test_non_conflicting_edits_converge_in_any_order(
    chosen: dict[str, tuple[str, int] | None], data: st.DataObject
) -> None:
    world = shared_world()
    checked = Checked(world)
    edits = [(prop, m_v[0], VALUES[prop][m_v[1]]) for prop, m_v in chosen.items() if m_v]
    events = [edit(world, member, prop, value) for prop, member, value in edits]
    order = data.draw(st.permutations(range(len(events))), label="delivery order")
    pump_after = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    for index, pump in zip(order, pump_after, strict=True):
        checked.deliver(events[index])
        if pump:
            checked.pump()
    checked.pump()

    expected = {prop: value for prop, _, value in edits}
    for member, (_, _, props) in MEMBERS.items():
        for prop in props:
            want = expected.get(prop, value_of(shared_world_cache(), member, prop))
            assert cmp(prop, value_of(world, member, prop)) == cmp(prop, want), (member, prop)
    assert world.shell.conflicts == {}

    # replaying every change ever delivered emits nothing
    replay = data.draw(st.permutations(checked.delivered), label="replay order")
    for change in replay:
        decision = world.shell.change(change)
        assert decision.commands == (), decision.kind
        assert decision.kind in (
            DecisionKind.STALE,
            DecisionKind.NOOP,
            DecisionKind.ECHO,
            DecisionKind.UNLINKED,
        )


_BASELINE: list[World] = []


def shared_world_cache() -> World:
    if not _BASELINE:
        _BASELINE.append(shared_world())
    return _BASELINE[0]


@settings(max_examples=50 * SCALE, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(sorted(MEMBERS)),
            st.sampled_from(sorted(PO_FIELD)),
            st.integers(0, 2),
            st.sampled_from(["deliver", "defer", "deliver_and_pump"]),
        ),
        min_size=1,
        max_size=8,
    ),
    data=st.data(),
)
def test_any_edit_history_settles_without_creates_and_converges(
    steps: list[tuple[str, str, int, str]], data: st.DataObject
) -> None:
    """Conflicting edits too, events and outcomes in any order: the system settles and every
    member ends up equal."""
    world = shared_world()
    checked = Checked(world)
    for member, prop, index, how in steps:
        if prop not in MEMBERS[member][2]:
            continue
        change = edit(world, member, prop, VALUES[prop][index])
        if how == "defer":
            world.events.append(change)
            continue
        checked.deliver(change)
        if how == "deliver_and_pump":
            checked.pump()
    while world.shell.outbox:
        world.load(world.shell.outbox.pop(0))
    pending = data.draw(st.permutations(list(world.events)), label="arrival order")
    world.events.clear()
    world.events.extend(pending)
    checked.pump()
    for prop in PO_FIELD:
        holders = [m for m, (_, _, props) in MEMBERS.items() if prop in props]
        values = {cmp(prop, value_of(world, m, prop)) for m in holders}
        assert len(values) == 1, (prop, values)
    assert len(world.wix) == 1
    assert set(world.po) == {("customers", "10"), ("contact_persons", "100"), ("employees", "5")}


@settings(max_examples=60 * SCALE, deadline=None)
@given(
    first=st.sampled_from(["Ola", "Kari", None]),
    phone=st.sampled_from(["912 34 567", "+47 912 34 567", None, "n/a"]),
    second_phone=st.sampled_from(["912 34 567", "400 00 000", None]),
)
def test_a_change_and_its_replay_decide_the_same_and_never_twice(
    first: str | None, phone: str | None, second_phone: str | None
) -> None:
    policy = Policy()
    change = po_change("employees", employee(first=first, phone=phone), ts(1))
    a = on_member_change(None, change, [], policy, ts(2))
    b = on_member_change(None, change, [], policy, ts(2))
    assert a == b
    if a.link is None:
        return
    again = on_member_change(a.link, change, [], policy, ts(3))
    assert again.commands == ()
    later = po_change("employees", employee(first=first, phone=second_phone), ts(4))
    step = on_member_change(a.link, later, [], policy, ts(5))
    assert all(c.action is not CommandAction.CREATE for c in step.commands)
    assert step.link is not None or step.kind is DecisionKind.NOOP
    if step.link is not None:
        replayed = on_member_change(step.link, later, [], policy, ts(6))
        assert replayed.commands == ()
