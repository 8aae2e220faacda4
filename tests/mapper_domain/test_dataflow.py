"""The dataflow configuration: the shipped default is today's behaviour exactly; bad files are
refused with the path of every problem; a changed file changes the mapping without code."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from services.mapper.domain import Policy
from services.mapper.domain.dataflow import Dataflow, Registered
from services.mapper.domain.mappings import (
    ALWAYS,
    FLOWS,
    PROPERTIES,
    CanonicalProperty,
    FieldIs,
    FlowSpec,
    Hub,
    KeyKind,
    MatchRule,
    PropertyMap,
    hub,
    member_field_values,
    observe_member,
    use_dataflow,
)
from services.mapper.domain.normalize import ValueKind
from services.mapper.wiring import REGISTERED
from services.mapper.wiring import WIX_CONTACT_ACCESSORS as CONTACT_ACCESSORS

from .support import World, customer

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "dataflows" / "default.json"


def default_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_FILE.read_text())
    return data


def compile_data(data: dict[str, Any]) -> Any:
    return Dataflow.from_mapping(data, REGISTERED).compile(REGISTERED)


@pytest.fixture
def restore_registries() -> Iterator[None]:
    saved = (hub(), dict(FLOWS), dict(PROPERTIES))
    yield
    use_dataflow(*saved)


# The flows, properties and hub the mapper had built in before dataflow files (and before the hub
# became a role): the shipped default must compile to exactly these.
FIRST_NAME = CanonicalProperty("first_name", ValueKind.NAME, "info.name.first")
LAST_NAME = CanonicalProperty("last_name", ValueKind.NAME, "info.name.last")
EMAIL = CanonicalProperty("email", ValueKind.EMAIL, "info.emails[primary].email", KeyKind.EMAIL)
PHONE = CanonicalProperty("phone", ValueKind.PHONE, "info.phones[primary].phone", KeyKind.PHONE)
BUILT_IN_HUB = Hub("wix", "contacts", CONTACT_ACCESSORS)
BUILT_IN_FLOWS = {
    "employees": FlowSpec(
        name="employees",
        system="poweroffice",
        label="A",
        properties=(
            PropertyMap(FIRST_NAME, "FirstName"),
            PropertyMap(LAST_NAME, "LastName"),
            PropertyMap(PHONE, "PhoneNumber"),
        ),
        match_rules=(
            MatchRule(KeyKind.EMAIL, "EmailAddress"),
            MatchRule(KeyKind.PHONE, "PhoneNumber"),
        ),
        is_inactive=FieldIs("IsArchived", True),
    ),
    "contact_persons": FlowSpec(
        name="contact_persons",
        system="poweroffice",
        label="B",
        properties=(
            PropertyMap(EMAIL, "EmailAddress"),
            PropertyMap(FIRST_NAME, "FirstName"),
            PropertyMap(LAST_NAME, "LastName"),
        ),
        match_rules=(MatchRule(KeyKind.EMAIL, "EmailAddress"),),
        is_inactive=FieldIs("IsActive", False),
        parent_field="ContactId",
    ),
    "customers": FlowSpec(
        name="customers",
        system="poweroffice",
        label="C",
        properties=(
            PropertyMap(EMAIL, "EmailAddress"),
            PropertyMap(FIRST_NAME, "FirstName", applies=FieldIs("IsPerson", True)),
            PropertyMap(LAST_NAME, "LastName", applies=FieldIs("IsPerson", True)),
        ),
        match_rules=(MatchRule(KeyKind.EMAIL, "EmailAddress"),),
        is_inactive=FieldIs("IsArchived", True),
        create_fields={"IsPerson": True},
    ),
}
BUILT_IN_PROPERTIES = {p.name: p for p in (FIRST_NAME, LAST_NAME, EMAIL, PHONE)}


def test_the_default_file_compiles_to_the_built_in_hub_flows_properties_and_policy() -> None:
    compiled = compile_data(default_data())
    assert compiled.hub == BUILT_IN_HUB
    assert set(compiled.flows) == set(BUILT_IN_FLOWS)
    for name, spec in BUILT_IN_FLOWS.items():
        # Field by field first (a readable failure), then the whole spec.
        got = compiled.flows[name]
        assert got.label == spec.label
        assert got.system == spec.system
        assert got.properties == spec.properties, name
        assert got.match_rules == spec.match_rules, name
        assert got.is_inactive == spec.is_inactive, name
        assert dict(got.create_fields) == dict(spec.create_fields), name
        assert got.parent_field == spec.parent_field, name
        assert got == spec
    assert BUILT_IN_FLOWS["employees"].properties[0].applies == ALWAYS
    assert dict(compiled.properties) == BUILT_IN_PROPERTIES
    assert list(compiled.properties) == list(BUILT_IN_PROPERTIES)
    assert compiled.policy == Policy()


def test_importing_the_mapper_installs_the_shipped_default() -> None:
    assert hub() == BUILT_IN_HUB
    assert FLOWS == BUILT_IN_FLOWS
    assert PROPERTIES == BUILT_IN_PROPERTIES


@pytest.mark.parametrize(
    ("edit", "differs"),
    [
        (lambda d: d["flows"][2]["properties"][1]["when"].update({"is": False}), "customers"),
        (
            lambda d: d["flows"][1]["inactive_when"].update({"field": "IsArchived"}),
            "contact_persons",
        ),
        (lambda d: d["flows"][0]["match"].reverse(), "employees"),
        (lambda d: d["flows"][2]["create_fields"].update({"IsPerson": False}), "customers"),
        (lambda d: d["flows"][1].pop("parent_field"), "contact_persons"),
    ],
)
def test_the_equality_check_can_fail(edit: Any, differs: str) -> None:
    """Conditions are data (``FieldIs``), so a different condition makes a different spec."""
    data = default_data()
    edit(data)
    compiled = compile_data(data)
    assert compiled.flows[differs] != BUILT_IN_FLOWS[differs]


def test_a_changed_file_changes_the_mapping_without_code(restore_registries: None) -> None:
    data = default_data()
    # Customers also sync their phone number (not in the default).
    data["flows"][2]["properties"].append({"property": "phone", "field": "PhoneNumber"})
    data["policy"]["conflict_rules"] = {"phone": {"winner": "poweroffice"}}
    customer = {"Id": 7, "EmailAddress": "a@example.com", "PhoneNumber": "41234567"}
    assert "phone" not in observe_member("customers", customer).props
    compiled = compile_data(data)
    use_dataflow(compiled.hub, compiled.flows, compiled.properties)
    assert observe_member("customers", customer).props["phone"] == "41234567"
    assert member_field_values("customers", {"phone": "+4799999999"}) == {
        "PhoneNumber": "+4799999999"
    }
    assert compiled.policy.conflict_rule("phone").label == "poweroffice_wins"


def _errors(data: dict[str, Any]) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        Dataflow.from_mapping(data, REGISTERED)
    return str(info.value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["flows"][1]["properties"][0].update({"property": "emial"}),
            "flows[1].properties[0].property: unknown property 'emial'",
        ),
        (
            lambda d: d["properties"][0].update({"hub_field": "info.name.middle"}),
            "properties[0].hub_field: 'info.name.middle' is not a hub field",
        ),
        (
            # A property's name is free (commands write the hub by path), but its uses must follow.
            lambda d: d["properties"][0].update({"name": "given_name"}),
            "flows[0].properties[0].property: unknown property 'first_name'",
        ),
        (
            lambda d: d["properties"][0].update({"match_key": "email"}),
            "properties[0].match_key: a name value cannot yield a email key",
        ),
        (lambda d: d["flows"][2].update({"resource": "employees"}), "flows[2].resource: a second"),
        (lambda d: d["flows"][2].update({"resource": "suppliers"}), "'suppliers' is not a"),
        (lambda d: d["flows"][2].update({"label": "A"}), "flows[2].label: label 'A' is used twice"),
        (
            lambda d: d["flows"][0]["properties"].append(
                {"property": "phone", "field": "MobileNumber"}
            ),
            "flows[0].properties[3].property: 'phone' is mapped twice",
        ),
        (
            lambda d: d["policy"].update({"conflict_rules": {"mail": "latest"}}),
            "unknown properties in conflict_rules: ['mail']",
        ),
        (
            lambda d: d["hub"].update({"system": "hubspot"}),
            "hub.system: 'hubspot' is not a registered system; registered: ['poweroffice', 'wix']",
        ),
        (
            lambda d: d["hub"].update({"resource": "members"}),
            "hub.resource: 'members' is not a wix resource; known: ['contacts']",
        ),
        (
            lambda d: d["hub"].update({"system": "poweroffice", "resource": "customers"}),
            "hub.system: 'poweroffice' cannot be the hub (no field accessors registered)",
        ),
        (
            lambda d: d["flows"][0].update({"system": "visma"}),
            "flows[0].system: 'visma' is not a registered system",
        ),
        (
            lambda d: d["flows"][0].update({"system": "wix", "resource": "contacts"}),
            "flows[0].resource: the hub's resource cannot be a member flow",
        ),
        (
            lambda d: d["policy"].update({"conflict_default": {"winner": "hubspot"}}),
            "policy: the conflict rule winner 'hubspot' is not a system of the dataflow "
            "(poweroffice, wix)",
        ),
    ],
)
def test_inconsistent_files_name_the_path(edit: Any, expected: str) -> None:
    data = copy.deepcopy(default_data())
    edit(data)
    assert expected in _errors(data)


@pytest.mark.parametrize(
    ("edit", "loc"),
    [
        (lambda d: d["properties"][2].update({"kind": "mail"}), ("properties", 2, "kind")),
        (lambda d: d["flows"][0]["properties"][0].update({"direction": "to_hub"}), "direction"),
        (lambda d: d["flows"][0]["inactive_when"].pop("is"), ("inactive_when", "is")),
        (lambda d: d["flows"][0].update({"matchRules": []}), ("flows", 0, "matchRules")),
        (lambda d: d["hub"].update({"system": ""}), ("hub", "system")),
        (lambda d: d.update({"version": 2}), ("version",)),
    ],
)
def test_malformed_fields_are_refused_with_their_location(edit: Any, loc: Any) -> None:
    data = default_data()
    edit(data)
    with pytest.raises(pydantic.ValidationError) as info:
        Dataflow.from_mapping(data, REGISTERED)
    locs = [tuple(e["loc"]) for e in info.value.errors()]
    wanted = (loc,) if isinstance(loc, str) else loc
    assert any(tuple(got[-len(wanted) :]) == tuple(wanted) for got in locs), locs


def test_a_mapping_added_in_the_file_syncs_both_ways_in_the_decisions(
    restore_registries: None,
) -> None:
    """Customer ``PhoneNumber`` <-> the Wix primary phone: one line in the file, no code. The
    decision code and the simulated world (tests/mapper_domain/support.py) play both systems;
    the real pipeline's proof is issue 15's next step."""
    data = default_data()
    data["flows"][2]["properties"].append({"property": "phone", "field": "PhoneNumber"})
    compiled = compile_data(data)
    use_dataflow(compiled.hub, compiled.flows, compiled.properties)
    world = World()
    world.deliver(world.po_put("customers", customer(PhoneNumber="912 34 567")))
    world.pump()
    link = world.shell.link_of("poweroffice", "customers", "10")
    assert link is not None and link.hub_record_id is not None
    contact = world.wix[link.hub_record_id]
    assert contact["info"]["phones"]["items"][0]["phone"] == "+4791234567"
    world.deliver(world.wix_edit(link.hub_record_id, phone="+4740000000"))
    world.pump()
    assert world.po[("customers", "10")]["PhoneNumber"] == "+4740000000"


def test_without_the_line_the_phone_stays_put(restore_registries: None) -> None:
    """The control: the shipped default does not sync a customer's phone."""
    world = World()
    world.deliver(world.po_put("customers", customer(PhoneNumber="912 34 567")))
    world.pump()
    link = world.shell.link_of("poweroffice", "customers", "10")
    assert link is not None and link.hub_record_id is not None
    assert "phones" not in world.wix[link.hub_record_id]["info"]
    world.deliver(world.wix_edit(link.hub_record_id, phone="+4740000000"))
    world.pump()
    assert world.po[("customers", "10")]["PhoneNumber"] == "912 34 567"


def test_validation_needs_the_registered_systems() -> None:
    with pytest.raises(pydantic.ValidationError, match="without the registered systems"):
        Dataflow.model_validate(default_data())


def test_the_hub_is_whichever_registered_system_the_file_names(restore_registries: None) -> None:
    """Roles, not systems: with a CRM registered as a possible hub and an ERP as a member
    system, a dataflow joining them needs no code in the domain."""
    crm = dataclasses.replace(
        CONTACT_ACCESSORS,
        fields={
            "email": lambda record: record.get("email"),
            "given": lambda record: record.get("given"),
        },
        identifiers=lambda record: [(KeyKind.EMAIL, record.get("email"))],
        has_other_items=lambda record: False,
        revision=lambda record: None,
    )
    registered = Registered(resources={"crm": ("people",), "erp": ("staff",)}, hubs={"crm": crm})
    data = {
        "version": 1,
        "hub": {"system": "crm", "resource": "people"},
        "properties": [
            {"name": "email", "kind": "email", "hub_field": "email", "match_key": "email"},
            {"name": "first_name", "kind": "name", "hub_field": "given"},
        ],
        "flows": [
            {
                "label": "S",
                "system": "erp",
                "resource": "staff",
                "properties": [
                    {"property": "email", "field": "Mail"},
                    {"property": "first_name", "field": "Name"},
                ],
                "match": [{"key": "email", "field": "Mail"}],
                "inactive_when": {"field": "Gone", "is": True},
            }
        ],
        "policy": {"conflict_default": {"winner": "erp"}},
    }
    compiled = Dataflow.from_mapping(data, registered).compile(registered)
    use_dataflow(compiled.hub, compiled.flows, compiled.properties)
    world = World()
    change = world.po_put("staff", {"Id": 5, "Mail": "ada@example.no", "Name": "Ada"})
    decision = world.shell.change(change.model_copy(update={"system": "erp"}))
    (command,) = decision.commands
    assert (command.target.system, command.target.resource) == ("crm", "people")
    assert command.fields == {"email": "ada@example.no", "given": "Ada"}
    link = decision.link
    assert link is not None and link.hub_member is not None
    assert [m.ref.system for m in link.flow_members] == ["erp"]
    assert compiled.policy.conflict_rule("email").label == "erp_wins"
