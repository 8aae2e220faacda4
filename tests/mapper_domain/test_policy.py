"""Policy defaults (the spec's) and loading from configuration."""

from __future__ import annotations

import pydantic
import pytest

from services.mapper.domain import ConflictRule, Policy


def test_defaults_are_the_specs() -> None:
    policy = Policy()
    assert policy.conflict_rule("email") is ConflictRule.LATEST
    assert policy.create_wix_only_in_poweroffice is False
    assert policy.propagate_deletes is False
    assert policy.contact_persons.include_suppliers is True
    assert policy.contact_persons.exclude_parent_ids == frozenset()


def test_loads_from_mapping_and_json() -> None:
    data = {
        "conflict_rules": {"email": "poweroffice_wins"},
        "create_wix_only_in_poweroffice": True,
        "contact_persons": {"include_suppliers": False, "exclude_parent_ids": ["42"]},
    }
    policy = Policy.from_mapping(data)
    assert policy.conflict_rule("email") is ConflictRule.POWEROFFICE_WINS
    assert policy.conflict_rule("phone") is ConflictRule.LATEST
    assert policy.contact_persons.exclude_parent_ids == frozenset({"42"})
    assert Policy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    "data",
    [{"propagate_delete": True}, {"conflict_rules": {"mail": "latest"}}, {"conflict_default": "x"}],
)
def test_typos_are_rejected(data: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Policy.from_mapping(data)
