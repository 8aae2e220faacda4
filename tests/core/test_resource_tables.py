"""Core's resource tables are filled from descriptors, in their order, idempotently.

Pure: fake descriptors (no connector), the tables swapped for empty ones for the test."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from services.core import records, registry, topics
from services.core.connector import (
    ConnectorDescriptor,
    RateLimit,
    ResourceDescriptor,
)
from services.core.errors import ContractError


class _Record(BaseModel):
    pass


def _descriptor(system: str, *resources: str) -> ConnectorDescriptor[Any, Any]:
    def unused(*args: Any) -> Any:
        raise AssertionError("not called")

    return ConnectorDescriptor(
        system=system,
        resources={
            name: ResourceDescriptor(
                name=name,
                record_schema=_Record,
                key_field="id",
                version_field="v",
                reference_field="ref",
                record_type=f"test.{system}.{name.title()}",
            )
            for name in resources
        },
        settings_model=BaseSettings,
        rate_limit=RateLimit(1, 1.0),
        client_factory=unused,
        streams=unused,
        targets=unused,
    )


@pytest.fixture
def empty_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty tables, as core has them before the wiring installs anything."""
    resources: dict[str, tuple[str, ...]] = {}
    types: dict[tuple[str, str], str] = {}
    monkeypatch.setattr(topics, "RESOURCES", resources)
    monkeypatch.setattr(registry, "RESOURCES", resources)
    monkeypatch.setattr(records, "RECORD_TYPES", types)
    monkeypatch.setattr(registry, "RECORD_TYPES", types)


@pytest.mark.usefixtures("empty_tables")
def test_nothing_is_known_before_install() -> None:
    assert topics.TopicLayout().all_changes() == []
    with pytest.raises(ValueError, match="unknown system/resource"):
        topics.TopicLayout().changes("crm", "people")
    with pytest.raises(ContractError, match="no record type for crm/people"):
        records.record_type_for("crm", "people")


@pytest.mark.usefixtures("empty_tables")
def test_install_registers_topics_and_record_types_in_descriptor_order() -> None:
    registry.install([_descriptor("crm", "people", "firms"), _descriptor("shop", "buyers")])
    registry.install([_descriptor("crm", "people", "firms")])  # again: nothing changes

    layout = topics.TopicLayout(prefix="t")
    assert layout.all_changes() == [
        "t.changes.crm.people",
        "t.changes.crm.firms",
        "t.changes.shop.buyers",
    ]
    assert layout.commands("shop", "buyers") == "t.commands.shop.buyers"
    assert records.record_type_for("crm", "firms") == "test.crm.Firms"
    assert records.RECORD_TYPES == {
        ("crm", "people"): "test.crm.People",
        ("crm", "firms"): "test.crm.Firms",
        ("shop", "buyers"): "test.shop.Buyers",
    }
