"""Value forms: display, comparison, Wix write form, validation issues."""

from __future__ import annotations

import pytest

from services.mapper.domain import normalize
from services.mapper.domain.normalize import (
    IssueCode,
    ValueKind,
    check,
    clean,
    compare_key,
    e164_form,
    normalize_email,
    normalize_phone,
    phone_e164,
    same,
)


@pytest.mark.parametrize("raw", ["912 34 567", "+47 912 34 567", "0047 91234567", "91234567"])
def test_norwegian_phone_formats_normalize_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+4791234567"
    assert phone_e164(raw) == "+4791234567"
    assert e164_form(ValueKind.PHONE, raw) == "+4791234567"


def test_foreign_number_keeps_its_country() -> None:
    assert normalize_phone("+46 70 123 45 67") == "+46701234567"


def test_unparseable_phone_is_kept_as_typed_and_reported() -> None:
    assert e164_form(ValueKind.PHONE, " call me ") == "call me"
    assert check(ValueKind.PHONE, "call me") is IssueCode.UNPARSEABLE_PHONE
    assert check(ValueKind.PHONE, "123") is IssueCode.UNPARSEABLE_PHONE
    # still compares stably, on its digits
    assert same(ValueKind.PHONE, "12-3", "123")


def test_phone_with_extension_is_not_flattened() -> None:
    assert phone_e164("91234567 ext 3") is None
    assert normalize_phone("91234567 ext 3") == "+4791234567;ext=3"
    assert not same(ValueKind.PHONE, "91234567 ext 3", "91234567")


def test_email_compares_case_insensitively_but_is_written_as_typed() -> None:
    assert normalize_email("  Ola.Nordmann@Example.NO ") == "ola.nordmann@example.no"
    assert same(ValueKind.EMAIL, "Ola@Example.no", "ola@example.NO ")
    assert e164_form(ValueKind.EMAIL, "  Ola@Example.no ") == "Ola@Example.no"


@pytest.mark.parametrize("bad", ["ola", "ola@", "@example.no", "ola@example", "o la@example.no"])
def test_invalid_emails_are_reported(bad: str) -> None:
    assert check(ValueKind.EMAIL, bad) is IssueCode.INVALID_EMAIL


def test_valid_and_empty_values_have_no_issue() -> None:
    assert check(ValueKind.EMAIL, "ola@example.no") is None
    assert check(ValueKind.EMAIL, None) is None
    assert check(ValueKind.PHONE, "  ") is None


def test_names_ignore_surrounding_and_repeated_whitespace_but_not_case() -> None:
    assert same(ValueKind.NAME, " Ola  Nordmann ", "Ola Nordmann")
    assert not same(ValueKind.NAME, "ola", "Ola")
    assert compare_key(ValueKind.NAME, "   ") is None


def test_clean_turns_blank_into_none_and_stringifies() -> None:
    assert clean(None) is None
    assert clean("   ") is None
    assert clean(12345678) == "12345678"


# -- the NUL rule (docs/mapping-rules.md) --------------------------------------------------------


def test_nul_is_removed_from_the_display_and_comparison_forms_and_the_write_form():
    assert normalize.clean("O\x00la ") == "Ola"
    assert normalize.clean("\x00") is None
    assert normalize.same(normalize.ValueKind.NAME, "Ola\x00", "Ola")
    assert normalize.same(normalize.ValueKind.EMAIL, "a\x00@x.no", "A@x.no")
    assert normalize.e164_form(normalize.ValueKind.NAME, "K\x00ari") == "Kari"


def test_other_control_characters_emoji_and_rtl_pass_through():
    for value in ("Ola\x07", "Ø\x1bst", "😀 Smile", "נורדמן", "\u200fعلي"):
        assert normalize.clean(value) == value
        assert normalize.e164_form(normalize.ValueKind.NAME, value) == value
    assert not normalize.same(normalize.ValueKind.NAME, "Ola\x07", "Ola")  # significant


def test_without_nul_cleans_a_whole_record_and_leaves_everything_else():
    record = {
        "FirstName": "Per\x00",
        "Tags": ["a\x00b", 1, None, True],
        "Nested": {"k\x00": ("x\x00",)},
        "Other": "\x07😀",
    }
    assert normalize.without_nul(record) == {
        "FirstName": "Per",
        "Tags": ["ab", 1, None, True],
        "Nested": {"k": ("x",)},
        "Other": "\x07😀",
    }
    assert normalize.has_nul(record) and not normalize.has_nul(normalize.without_nul(record))
    untouched = {"a": "b"}
    assert normalize.without_nul(untouched) is untouched  # no copy when there is nothing to do
