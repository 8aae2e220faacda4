"""Value normalization for the synced properties: cleaning, comparison forms, write forms, checks.

Three forms of a value exist and must not be confused:

* the **display form** — what a user typed, trimmed (``clean``); ``None`` means empty. Props carry
  this form, and it is what the engine writes back (e-mail as typed, PowerOffice phone as typed);
* the **comparison form** (``compare_key``) — used for every equality decision (echo, no-op, merge,
  matching) so that format-only differences never cause a write: names with collapsed whitespace,
  e-mail case-folded, phone numbers in E.164 (region ``NO`` by default);
* the **Wix write form** (``for_wix``) — phone numbers in E.164 when they can be parsed, everything
  else as displayed.

Invalid values (an e-mail without ``@``, an unparseable phone number) are never dropped: ``check``
reports an ``IssueCode`` and the value is still synced as typed.

The NUL rule: U+0000 is the one character no form keeps. PostgreSQL's ``text``/``jsonb`` cannot
hold it (the mapper's state would be unwritable: a crash loop) and no target has a use for it, so
the mapper removes it at its boundary — from every incoming record (``without_nul``, applied by
``convert``) — and ``clean`` removes it too, so comparison, storage and the command all see the
same value and an echo is still recognised. Every other character (other control characters,
emoji, right-to-left text and marks) is synced as is.

Pure module: it imports no I/O library (only the standard library and ``phonenumbers``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TypeVar, cast

import phonenumbers

_T = TypeVar("_T")

DEFAULT_REGION = "NO"
"""Region used to read phone numbers written without a country prefix (Norway: +47)."""

NUL = "\x00"
_WHITESPACE = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE_CHARS = re.compile(r"[^0-9+]")


class ValueKind(StrEnum):
    """How a property's values are compared and written."""

    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"


class IssueCode(StrEnum):
    """Why a value was reported as invalid (it is still synced as typed)."""

    INVALID_EMAIL = "invalid_email"
    UNPARSEABLE_PHONE = "unparseable_phone"


def clean(value: object) -> str | None:
    """Display form: the value as text, without NUL, trimmed; ``None`` for missing or blank
    values."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.replace(NUL, "").strip()
    return text or None


def has_nul(value: object) -> bool:
    """Whether any string in ``value`` (nested dicts, lists, tuples; keys too) holds NUL."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


def without_nul(value: _T) -> _T:
    """``value`` with NUL removed from every string in it (nested dicts, lists, tuples; keys
    too). Returned as is — not copied — when it holds no NUL."""
    if not has_nul(value):
        return value
    return cast(_T, _strip_nul(value))


def _strip_nul(value: object) -> object:
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_strip_nul(v) for v in value)
    return value


def parse_phone(value: str | None, region: str = DEFAULT_REGION) -> phonenumbers.PhoneNumber | None:
    """Parse a phone number; ``None`` when it is empty or not a possible number."""
    text = clean(value)
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return number


def phone_e164(value: str | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 form of a phone number, or ``None`` when it cannot be parsed or carries an extension
    (E.164 cannot represent an extension, so such numbers are written as typed)."""
    number = parse_phone(value, region)
    if number is None or number.extension:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str | None) -> str | None:
    """Comparison form of an e-mail address: trimmed and case-folded."""
    text = clean(value)
    return text.casefold() if text is not None else None


def normalize_phone(value: str | None, region: str = DEFAULT_REGION) -> str | None:
    """Comparison form of a phone number.

    Parseable numbers become E.164 (with ``;ext=`` when they carry an extension), so
    ``"912 34 567"``, ``"+47 912 34 567"`` and ``"0047 91234567"`` are all ``"+4791234567"``.
    Unparseable values keep only digits and ``+`` (or their case-folded text when no digit is left),
    so that they still compare stably.
    """
    text = clean(value)
    if text is None:
        return None
    number = parse_phone(text, region)
    if number is not None:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return f"{e164};ext={number.extension}" if number.extension else e164
    digits = _PHONE_CHARS.sub("", text)
    return digits or text.casefold()


def normalize_name(value: str | None) -> str | None:
    """Comparison form of a name: trimmed, inner whitespace collapsed; case is significant."""
    text = clean(value)
    return _WHITESPACE.sub(" ", text) if text is not None else None


def compare_key(kind: ValueKind, value: str | None) -> str | None:
    """The comparison form of ``value`` for its kind (``None`` for empty)."""
    if kind is ValueKind.EMAIL:
        return normalize_email(value)
    if kind is ValueKind.PHONE:
        return normalize_phone(value)
    return normalize_name(value)


def same(kind: ValueKind, left: str | None, right: str | None) -> bool:
    """Whether two values are equal for sync purposes (format-only differences ignored)."""
    return compare_key(kind, left) == compare_key(kind, right)


def is_valid_email(value: str | None) -> bool:
    """A deliberately loose syntax check: one ``@``, a non-empty local part, a dotted domain."""
    text = clean(value)
    return text is not None and _EMAIL.match(text) is not None


def check(kind: ValueKind, value: str | None) -> IssueCode | None:
    """The validation issue of a non-empty value, if any (empty values are valid)."""
    text = clean(value)
    if text is None:
        return None
    if kind is ValueKind.EMAIL and not is_valid_email(text):
        return IssueCode.INVALID_EMAIL
    if kind is ValueKind.PHONE and parse_phone(text) is None:
        return IssueCode.UNPARSEABLE_PHONE
    return None


def for_wix(kind: ValueKind, value: str | None) -> str | None:
    """The value as written to Wix: phone numbers in E.164 when parseable, else as displayed."""
    text = clean(value)
    if kind is ValueKind.PHONE and text is not None:
        return phone_e164(text) or text
    return text
