"""Sync policy: the configurable choices of ``spec/dataflows.md``, with the spec's defaults.

``Policy()`` is the default product behaviour:

* conflicting edits of one property: the most recent source timestamp wins
  (``conflict_default``; per property overrides in ``conflict_rules``). A rule is ``"latest"`` or
  ``{"winner": "<system>"}`` — that system's value wins whenever it took part — keyed by the
  system's name, never by a role;
* a hub record that matches no member is not created as a member record
  (``create_members_for_unmatched_hub``);
* deletes are never propagated (``propagate_deletes``) — and even when opted in, only records the
  engine itself created are deleted; the mass-delete breaker lives in the service shell;
* every contact person is synced, suppliers' included (``contact_persons``).

Load from configuration with ``Policy.from_mapping(dict)`` or ``Policy.from_json(text)``; unknown
keys are rejected so that a typo cannot silently fall back to a default. Spellings of earlier
releases are still read (policy files, ``TETHER_MAPPER_POLICY``): a rule ``"<system>_wins"`` and
the flag ``create_<hub system>_only_in_<member system>`` (see ``_LEGACY_CREATE_FLAG``). A rule
is written back in the current form.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue

from services.mapper.domain.mappings import PROPERTIES

LATEST = "latest"
_LEGACY_WINS_SUFFIX = "_wins"
"""A rule of earlier releases: ``"<system>_wins"`` (``{"winner": "<system>"}`` now)."""
_LEGACY_CREATE_FLAG = re.compile(r"^create_[a-z0-9]+_only_in_[a-z0-9]+$")
"""``create_members_for_unmatched_hub`` as earlier releases spelled it, naming the hub system and
the member system (there was one of each)."""


class ConflictRule(BaseModel):
    """How a property edited on several sides since the last sync is resolved: ``"latest"`` (the
    most recent source timestamp wins; ties: a member over the hub, then the smaller record key)
    or ``{"winner": "<system>"}`` (the latest of that system's values wins when it took part)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    winner: str | None = Field(None, min_length=1, description="The system whose value wins.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        if data == LATEST:
            return {}
        system = data.removesuffix(_LEGACY_WINS_SUFFIX)
        if system != data and system:
            return {"winner": system}
        raise ValueError(f'a conflict rule is "latest" or {{"winner": "<system>"}}, not {data!r}')

    @model_serializer
    def _to_json(self) -> str | dict[str, str]:
        return LATEST if self.winner is None else {"winner": self.winner}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"const": LATEST, "type": "string"},
                {
                    "type": "object",
                    "properties": {"winner": {"type": "string", "minLength": 1}},
                    "required": ["winner"],
                    "additionalProperties": False,
                },
            ],
            "description": 'How conflicting edits of a property are resolved: "latest" (the most '
            'recent source timestamp) or {"winner": "<system>"} (that system\'s value).',
        }

    @classmethod
    def wins(cls, system: str) -> ConflictRule:
        return cls(winner=system)

    @property
    def label(self) -> str:
        """The name conflicts are recorded and counted under (``latest``, ``<system>_wins``)."""
        return LATEST if self.winner is None else f"{self.winner}{_LEGACY_WINS_SUFFIX}"


LATEST_WINS = ConflictRule()


class ContactPersonFilter(BaseModel):
    """Which contact persons are synced (default: all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    include_suppliers: bool = True
    """Contact persons whose parent is a supplier (the change says ``parent_kind``)."""
    exclude_parent_ids: frozenset[str] = frozenset()
    """Parent contact ids (``ContactId``) whose contact persons are never synced."""


class Policy(BaseModel):
    """The mapper's per-tenant policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conflict_default: ConflictRule = LATEST_WINS
    conflict_rules: dict[str, ConflictRule] = Field(default_factory=dict)
    """Per canonical property overrides, e.g. ``{"email": {"winner": "<system>"}}``."""
    create_members_for_unmatched_hub: bool = False
    """Create a hub record that matches nothing as a private-person customer (member flow
    ``customers``)."""
    propagate_deletes: bool = False
    """Delete the linked record in the other system — only if the engine created it."""
    contact_persons: ContactPersonFilter = ContactPersonFilter()

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        legacy = [key for key in data if isinstance(key, str) and _LEGACY_CREATE_FLAG.match(key)]
        if not legacy:
            return data
        renamed = {k: v for k, v in data.items() if k not in legacy}
        for key in legacy:
            renamed.setdefault("create_members_for_unmatched_hub", data[key])
        return renamed

    @field_validator("conflict_rules")
    @classmethod
    def _known_properties(cls, value: dict[str, ConflictRule]) -> dict[str, ConflictRule]:
        unknown = sorted(set(value) - set(PROPERTIES))
        if unknown:
            raise ValueError(f"unknown properties in conflict_rules: {unknown}")
        return value

    def conflict_rule(self, prop: str) -> ConflictRule:
        """The rule resolving conflicting edits of ``prop``."""
        return self.conflict_rules.get(prop, self.conflict_default)

    @property
    def winners(self) -> set[str]:
        """The systems the conflict rules name (each must be one the dataflow syncs)."""
        rules = [self.conflict_default, *self.conflict_rules.values()]
        return {rule.winner for rule in rules if rule.winner is not None}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        return cls.model_validate_json(text)

    def to_json(self) -> str:
        return self.model_dump_json()
