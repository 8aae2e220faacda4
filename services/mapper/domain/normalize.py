"""Value normalization for the synced properties: cleaning, comparison forms, write forms, checks.

Three forms of a value exist and must not be confused:

* the **display form** — what a user typed, trimmed (``clean``); ``None`` means empty. Props carry
  this form, and it is what the engine writes back (e-mail as typed, a member's phone as typed);
* the **comparison form** (``compare_key``) — used for every equality decision (echo, no-op, merge,
  matching) so that format-only differences never cause a write: names with collapsed whitespace,
  e-mail case-folded, phone numbers in E.164 (region ``NO`` by default);
* the **E.164 write form** (``e164_form``, what a hub that stores phones in E.164 is sent, see
  ``mappings.HubAccessors.write_form``) — phone numbers in E.164 when they can be parsed, everything
  else as displayed.

Invalid values (an e-mail without ``@``, an unparseable phone number) are never dropped: ``check``
reports an ``IssueCode`` and the value is still synced as typed.

The NUL rule: U+0000 is the one character no form keeps. PostgreSQL's ``text``/``jsonb`` cannot
hold it (the mapper's state would be unwritable: a crash loop) and no target has a use for it, so
the mapper removes it at its boundary — from every incoming record (``without_nul``, applied by
``convert``) — and ``clean`` removes it too, so comparison, storage and the command all see the
same value and an echo is still recognised. Every other character (other control characters,
emoji, right-to-left text and marks) is synced as is.

Phone parsing is the costly part (``phonenumbers``): a cleaned value is parsed once and its
string forms (E.164, comparison form) are memoised per (value, region) in a bounded LRU cache
(``PHONE_CACHE_SIZE`` entries) that ``phone_e164``, ``normalize_phone`` and ``check`` share — a
pure function of its arguments, so caching changes no result. ``parse_phone`` itself is not
cached (it returns a mutable ``PhoneNumber``). ``compare_key`` — called for every property of
every comparison the merge makes — is memoised the same way.

Pure module: it imports no I/O library (only the standard library and ``phonenumbers``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import TypeVar, cast

import phonenumbers

_T = TypeVar("_T")

DEFAULT_REGION = "NO"
"""Region used to read phone numbers written without a country prefix (Norway: +47)."""

NUL = "\x00"
_WHITESPACE = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE_CHARS = re.compile(r"[^0-9+]")
PHONE_CACHE_SIZE = 16_384
"""Entries per phone cache (a bounded LRU: ~5 MiB full; 65,536 took ~20 MiB each, too much of
the 200 MiB a service may use — tests/mapper_domain/test_cache_bounds.py)."""


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
    # An explicit stack, not recursion: this runs over every record the mapper reads.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
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


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def _phone_forms(text: str, region: str) -> tuple[str | None, str | None]:
    """One parse of a cleaned value, memoised: (E.164 when it has no extension, comparison
    form); both None when it is not a possible number."""
    number = parse_phone(text, region)
    if number is None:
        return None, None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.extension:
        return None, f"{e164};ext={number.extension}"
    return e164, e164


def phone_e164(value: str | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 form of a phone number, or ``None`` when it cannot be parsed or carries an extension
    (E.164 cannot represent an extension, so such numbers are written as typed)."""
    text = clean(value)
    return _phone_forms(text, region)[0] if text is not None else None


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
    compared = _phone_forms(text, region)[1]
    if compared is not None:
        return compared
    digits = _PHONE_CHARS.sub("", text)
    return digits or text.casefold()


def normalize_email(value: str | None) -> str | None:
    """Comparison form of an e-mail address: trimmed and case-folded."""
    text = clean(value)
    return text.casefold() if text is not None else None


def normalize_name(value: str | None) -> str | None:
    """Comparison form of a name: trimmed, inner whitespace collapsed; case is significant."""
    text = clean(value)
    return _WHITESPACE.sub(" ", text) if text is not None else None


@lru_cache(maxsize=PHONE_CACHE_SIZE, typed=True)  # typed: 1 and True compare differently
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
    if kind is ValueKind.PHONE and _phone_forms(text, DEFAULT_REGION)[1] is None:
        return IssueCode.UNPARSEABLE_PHONE
    return None


def e164_form(kind: ValueKind, value: str | None) -> str | None:
    """The value with phone numbers in E.164 when parseable, else as displayed."""
    text = clean(value)
    if kind is ValueKind.PHONE and text is not None:
        return phone_e164(text) or text
    return text
