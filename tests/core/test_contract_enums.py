"""The contract enums in ``services.core.contract`` are exactly the Avro enums in ``schemas/``."""

from __future__ import annotations

import json
from enum import StrEnum

import pytest

from services.core import contract
from services.core.codec import DEFAULT_SCHEMAS_DIR

ENUMS: list[type[StrEnum]] = [
    contract.ChangeOperation,
    contract.ChangeOrigin,
    contract.CommandAction,
    contract.OutcomeStatus,
    contract.OperatorActionKind,
]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_enum_matches_its_schema(enum: type[StrEnum]) -> None:
    schema = json.loads((DEFAULT_SCHEMAS_DIR / f"tether.{enum.__name__}.avsc").read_text())
    assert schema["type"] == "enum"
    assert [member.value for member in enum] == schema["symbols"]
    assert [member.name for member in enum] == schema["symbols"]


def test_every_schema_enum_has_a_class() -> None:
    schema_enums = sorted(
        path.name.removeprefix("tether.").removesuffix(".avsc")
        for path in DEFAULT_SCHEMAS_DIR.glob("tether.*.avsc")
        if json.loads(path.read_text()).get("type") == "enum"
    )
    assert schema_enums == sorted(enum.__name__ for enum in ENUMS)
