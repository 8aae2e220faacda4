"""Sync policy: the configurable choices of ``spec/dataflows.md``, with the spec's defaults.

``Policy()`` is the default product behaviour:

* conflicting edits of one property: the most recent source timestamp wins
  (``conflict_default``; per property overrides in ``conflict_rules``);
* Wix-only contacts are not created in PowerOffice (``create_wix_only_in_poweroffice``);
* deletes are never propagated (``propagate_deletes``) — and even when opted in, only records the
  engine itself created are deleted; the mass-delete breaker lives in the service shell;
* every contact person is synced, suppliers' included (``contact_persons``).

Load from configuration with ``Policy.from_mapping(dict)`` or ``Policy.from_json(text)``; unknown
keys are rejected so that a typo cannot silently fall back to a default.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.mapper.domain.mappings import PROPERTIES


class ConflictRule(StrEnum):
    """How a property edited on several sides since the last sync is resolved."""

    LATEST = "latest"
    """The most recent source timestamp wins (ties: PowerOffice, then the smaller record key)."""
    POWEROFFICE_WINS = "poweroffice_wins"
    WIX_WINS = "wix_wins"


class ContactPersonFilter(BaseModel):
    """Which PowerOffice contact persons are synced (default: all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    include_suppliers: bool = True
    """Contact persons whose parent is a supplier (the change says ``parent_kind``)."""
    exclude_parent_ids: frozenset[str] = frozenset()
    """Parent contact ids (``ContactId``) whose contact persons are never synced."""


class Policy(BaseModel):
    """The mapper's per-tenant policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conflict_default: ConflictRule = ConflictRule.LATEST
    conflict_rules: dict[str, ConflictRule] = Field(default_factory=dict)
    """Per canonical property overrides, e.g. ``{"email": "poweroffice_wins"}``."""
    create_wix_only_in_poweroffice: bool = False
    """Create a Wix contact that matches nothing as a private-person PowerOffice customer."""
    propagate_deletes: bool = False
    """Delete the linked record in the other system — only if the engine created it."""
    contact_persons: ContactPersonFilter = ContactPersonFilter()

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

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        return cls.model_validate_json(text)

    def to_json(self) -> str:
        return self.model_dump_json()
