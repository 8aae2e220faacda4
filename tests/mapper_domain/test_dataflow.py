"""The dataflow configuration: the shipped default is today's behaviour exactly; bad files are
refused with the path of every problem; a changed file changes the mapping without code."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from services.mapper.domain import Policy
from services.mapper.domain.dataflow import Dataflow
from services.mapper.domain.mappings import (
    EMAIL,
    FIRST_NAME,
    FLOW_A_EMPLOYEES,
    FLOW_B_CONTACT_PERSONS,
    FLOW_C_CUSTOMERS,
    FLOWS,
    LAST_NAME,
    PHONE,
    PROPERTIES,
    observe_poweroffice,
    poweroffice_patch_values,
    use_dataflow,
)

from .support import World, customer

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "dataflows" / "default.json"


def default_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_FILE.read_text())
    return data


@pytest.fixture
def restore_registries() -> Iterator[None]:
    flows, props = dict(FLOWS), dict(PROPERTIES)
    yield
    use_dataflow(flows, props)


def test_the_default_file_compiles_to_the_built_in_flows_properties_and_policy() -> None:
    compiled = Dataflow.from_mapping(default_data()).compile()
    builtin_flows = {
        "employees": FLOW_A_EMPLOYEES,
        "contact_persons": FLOW_B_CONTACT_PERSONS,
        "customers": FLOW_C_CUSTOMERS,
    }
    builtin_props = {p.name: p for p in (FIRST_NAME, LAST_NAME, EMAIL, PHONE)}
    assert set(compiled.flows) == set(builtin_flows)
    for name, spec in builtin_flows.items():
        # Field by field first (a readable failure), then the whole spec.
        got = compiled.flows[name]
        assert got.label == spec.label
        assert got.properties == spec.properties, name
        assert got.match_rules == spec.match_rules, name
        assert got.is_inactive == spec.is_inactive, name
        assert dict(got.create_fields) == dict(spec.create_fields), name
        assert got.parent_field == spec.parent_field, name
        assert got == spec
    assert dict(compiled.properties) == builtin_props
    assert list(compiled.properties) == list(builtin_props)
    assert compiled.policy == Policy()


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
    compiled = Dataflow.from_mapping(data).compile()
    assert compiled.flows[differs] != FLOWS[differs]


def test_a_changed_file_changes_the_mapping_without_code(restore_registries: None) -> None:
    data = default_data()
    # Customers also sync their phone number (not in the default).
    data["flows"][2]["properties"].append({"property": "phone", "field": "PhoneNumber"})
    data["policy"]["conflict_rules"] = {"phone": "poweroffice_wins"}
    customer = {"Id": 7, "EmailAddress": "a@example.com", "PhoneNumber": "41234567"}
    assert "phone" not in observe_poweroffice("customers", customer).props
    compiled = Dataflow.from_mapping(data).compile()
    use_dataflow(compiled.flows, compiled.properties)
    assert observe_poweroffice("customers", customer).props["phone"] == "41234567"
    assert poweroffice_patch_values("customers", {"phone": "+4799999999"}) == {
        "PhoneNumber": "+4799999999"
    }
    assert compiled.policy.conflict_rule("phone").value == "poweroffice_wins"


def _errors(data: dict[str, Any]) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        Dataflow.from_mapping(data)
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
            lambda d: d["properties"][0].update({"name": "given_name"}),
            "properties[0].name: the hub field 'info.name.first' is written under the name "
            "'first_name'",
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
        (lambda d: d["hub"].update({"system": "hubspot"}), ("hub", "system")),
        (lambda d: d.update({"version": 2}), ("version",)),
    ],
)
def test_malformed_fields_are_refused_with_their_location(edit: Any, loc: Any) -> None:
    data = default_data()
    edit(data)
    with pytest.raises(pydantic.ValidationError) as info:
        Dataflow.from_mapping(data)
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
    compiled = Dataflow.from_mapping(data).compile()
    use_dataflow(compiled.flows, compiled.properties)
    world = World()
    world.deliver(world.po_put("customers", customer(PhoneNumber="912 34 567")))
    world.pump()
    link = world.shell.link_of("poweroffice", "customers", "10")
    assert link is not None and link.wix_contact_id is not None
    contact = world.wix[link.wix_contact_id]
    assert contact["info"]["phones"]["items"][0]["phone"] == "+4791234567"
    world.deliver(world.wix_edit(link.wix_contact_id, phone="+4740000000"))
    world.pump()
    assert world.po[("customers", "10")]["PhoneNumber"] == "+4740000000"


def test_without_the_line_the_phone_stays_put(restore_registries: None) -> None:
    """The control: the shipped default does not sync a customer's phone."""
    world = World()
    world.deliver(world.po_put("customers", customer(PhoneNumber="912 34 567")))
    world.pump()
    link = world.shell.link_of("poweroffice", "customers", "10")
    assert link is not None and link.wix_contact_id is not None
    assert "phones" not in world.wix[link.wix_contact_id]["info"]
    world.deliver(world.wix_edit(link.wix_contact_id, phone="+4740000000"))
    world.pump()
    assert world.po[("customers", "10")]["PhoneNumber"] == "912 34 567"
