"""Pure parts of the console's read model: how a search is read, cursors, page sizes, the
field-level changes of ``mapper_history.fields`` and dead-letter record names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.console.kafkaview import record_of_message
from services.console.readmodel import (
    BadRequestError,
    _fields,
    decode_cursor,
    encode_cursor,
    page_size,
    search_kind,
    stable_seq,
)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("ola@example.no", "email"),
        ("+47 912 34 567", "phone"),
        ("91234567", "phone"),
        ("(0047) 912-34-567", "phone"),
        ("100005", "text"),  # a record id: too short for a phone number
        ("c-000005", "text"),
        ("Ola Nordmann", "text"),
        ("8f1c2d3e-aaaa-bbbb-cccc-000000000001", "text"),  # a Wix contact id
    ],
)
def test_search_kind(query: str, kind: str) -> None:
    assert search_kind(query) == kind


def test_cursors_round_trip_and_refuse_garbage() -> None:
    at = datetime(2026, 11, 1, 8, 0, 5, 123000, tzinfo=UTC)
    cursor = encode_cursor([at, "r-1"])
    assert decode_cursor(cursor, (datetime, str)) == [at, "r-1"]
    assert decode_cursor(encode_cursor([at, 3, 7]), (datetime, int, int)) == [at, 3, 7]
    assert decode_cursor(None, (str,)) is None
    for bad in ("!!!", encode_cursor(["x"]), encode_cursor(["not a time", "r"])):
        with pytest.raises(BadRequestError):
            decode_cursor(bad, (datetime, str))


def test_page_size() -> None:
    assert page_size(None, 50) == 50 and page_size("20") == 20
    for bad in ("0", "501", "ten"):
        with pytest.raises(BadRequestError):
            page_size(bad)


def test_field_changes_in_each_shape() -> None:
    expected = [{"property": "phone", "before": "1", "after": "2"}]
    assert _fields({"phone": {"before": "1", "after": "2"}}) == expected
    assert (
        _fields({"before": {"phone": "1", "email": "a"}, "after": {"phone": "2", "email": "a"}})
        == expected
    )
    assert _fields([{"property": "phone", "before": "1", "after": "2"}]) == expected
    assert _fields(None) == [] and _fields({}) == []


def test_stable_seq_and_dead_letter_record() -> None:
    assert stable_seq("x-1") == stable_seq("x-1") != stable_seq("x-2")
    message = "refused | record: wix/contacts/c-1 | fix: grant the permission"
    assert record_of_message(message) == "wix/contacts/c-1"
    assert record_of_message("no record here") is None
