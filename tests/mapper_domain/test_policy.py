"""Policy defaults (the spec's) and loading from configuration, current and earlier spellings."""

from __future__ import annotations

import json

import pydantic
import pytest

from services.mapper.domain import ConflictRule, Policy
from services.mapper.domain.policy import LATEST_WINS


def test_defaults_are_the_specs() -> None:
    policy = Policy()
    assert policy.conflict_rule("email") == LATEST_WINS
    assert policy.conflict_rule("email").label == "latest"
    assert policy.create_members_for_unmatched_hub is False
    assert policy.propagate_deletes is False
    assert policy.contact_persons.include_suppliers is True
    assert policy.contact_persons.exclude_parent_ids == frozenset()


def test_loads_from_mapping_and_json() -> None:
    data = {
        "conflict_rules": {"email": {"winner": "poweroffice"}},
        "create_members_for_unmatched_hub": True,
        "contact_persons": {"include_suppliers": False, "exclude_parent_ids": ["42"]},
    }
    policy = Policy.from_mapping(data)
    assert policy.conflict_rule("email") == ConflictRule.wins("poweroffice")
    assert policy.conflict_rule("phone") == LATEST_WINS
    assert policy.create_members_for_unmatched_hub is True
    assert policy.contact_persons.exclude_parent_ids == frozenset({"42"})
    assert policy.winners == {"poweroffice"}
    assert Policy.from_json(policy.to_json()) == policy


def test_rules_are_written_in_the_current_form() -> None:
    policy = Policy.from_mapping(
        {"conflict_default": {"winner": "wix"}, "conflict_rules": {"phone": "latest"}}
    )
    dumped = policy.model_dump(mode="json")
    assert dumped["conflict_default"] == {"winner": "wix"}
    assert dumped["conflict_rules"] == {"phone": "latest"}
    assert Policy().model_dump(mode="json")["conflict_default"] == "latest"


def test_the_spellings_of_earlier_releases_are_still_read() -> None:
    """A TETHER_MAPPER_POLICY / policy file written for the release before policies were keyed
    by system name (literal text of that release's documentation)."""
    old = (
        '{"conflict_default": "wix_wins", "conflict_rules": {"email": "poweroffice_wins"}, '
        '"create_wix_only_in_poweroffice": true, "propagate_deletes": false}'
    )
    policy = Policy.from_json(old)
    assert policy.conflict_default == ConflictRule.wins("wix")
    assert policy.conflict_rule("email") == ConflictRule.wins("poweroffice")
    # Conflicts are still recorded and counted under the names they had.
    assert policy.conflict_rule("email").label == "poweroffice_wins"
    assert policy.conflict_default.label == "wix_wins"
    assert policy.create_members_for_unmatched_hub is True
    assert Policy.from_mapping(json.loads(old)) == policy


@pytest.mark.parametrize(
    "data",
    [
        {"propagate_delete": True},
        {"conflict_rules": {"mail": "latest"}},
        {"conflict_default": "x"},
        {"conflict_default": "_wins"},
        {"conflict_default": {"winner": ""}},
        {"conflict_default": {"winner": "wix", "loser": "poweroffice"}},
    ],
)
def test_typos_are_rejected(data: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Policy.from_mapping(data)
