"""``json_text`` (the mapper's jsonb parameters) means what ``json.dumps(default=str)`` meant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.mapper.store.links import json_text


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 2


@dataclass
class Point:
    x: int


def reference(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": {"d": [1, 2.5, None, True], "c": "Bjørn Østby 😀"}},
        {"at": datetime(2026, 12, 6, 3, 4, 5, 123456, tzinfo=UTC), "naive": datetime(2026, 1, 1)},
        {"colour": Colour.RED, "level": Level.HIGH},
        {1: "one", 2: "two"},
        {"point": Point(3)},
        {"huge": 2**70, "negative": -(2**65)},
        [],
        "text",
        None,
    ],
)
def test_same_meaning_as_json_dumps(value: Any) -> None:
    text = json_text(value)
    assert json.loads(text) == json.loads(reference(value))


def test_keys_are_sorted_at_every_level() -> None:
    text = json_text({"b": {"z": 1, "y": 2}, "a": 0})
    assert text.index('"a"') < text.index('"b"') and text.index('"y"') < text.index('"z"')


# NaN and infinity are not JSON (and jsonb refuses them): no API payload carries them.
json_scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(json_values)
def test_any_json_value_means_the_same(value: Any) -> None:
    assert json.loads(json_text(value)) == json.loads(reference(value))
