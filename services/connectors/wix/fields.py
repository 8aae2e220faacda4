"""The Wix contact's field accessors: one table, keyed by the field paths a dataflow file names.

``FIELDS`` maps each path the engine syncs to a ``WixField`` (a
``services.core.connector.FieldAccessor``) that knows, for that one field:

- **read** — the value a contact holds (display form: trimmed; ``None`` when absent). E-mail and
  phone come from the *primary* item (``services.core.wix_items.primary_item``: the item flagged
  ``primary``, else the one ``primaryInfo`` names, else the first); a phone reads as Wix's
  ``e164Phone``, else in E.164 from the item's ``countryCode``, else as typed. Accepts the API's
  ``{"contact": {...}}`` envelope too.
- **value** — a command's text (the Avro map's string) as the value written: trimmed, blank is
  ``None`` (clear).
- **holds** — whether a contact already has a value, in the comparison form of the field's
  ``kind`` (format-only differences are no difference, as the mapper compares): ``name`` with
  collapsed whitespace (case counts), ``email`` case-folded, ``phone`` in E.164 (the contact's
  number read in its item's ``countryCode``, the wanted one in region ``NO``).
- **write** — its part of the API's write shape: ``info_for_create(values)`` and
  ``info_for_update(current, values)`` build the ``info`` of a create / of a PATCH from a mapping
  of path -> value (a missing path is left alone, ``None`` clears). A PATCH sends ``name``
  whole (the unchanged part from ``current``) and the whole ``emails``/``phones`` collection
  rebuilt from ``current`` with only the primary item's value changed (Wix replaces a sent
  collection); items carry only their writable fields (``WRITABLE_ITEM_FIELDS``).
- **natural_key** — whether a value in it lets Wix's duplicate rule find the contact again.

The ``info`` keys always come out in table order (``name``, ``emails``, ``phones``, then
``extendedFields``), whatever the order of the mapping given: the request bodies are the same
bytes as before the table existed (``tests/connectors``).

A new contact field is one entry here plus one line in the dataflow file.

Pure: the standard library, ``phonenumbers``, the Wix models and ``services.core`` (errors,
``wix_items``) — no I/O, no HTTP client.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import phonenumbers

from services.connectors.wix.models import (
    Contact,
    ContactEmail,
    ContactPhone,
    primary_email_item,
    primary_phone_item,
)
from services.core.errors import ContractError
from services.core.wix_items import clean_text, contact_items, primary_item

__all__ = [
    "DEFAULT_REGION",
    "FIELDS",
    "NATURAL_KEYS",
    "WRITABLE_ITEM_FIELDS",
    "WixField",
    "has_other_items",
    "identifiers",
    "info_for_create",
    "info_for_update",
    "phone_key",
    "revision",
    "writable_item",
]

DEFAULT_REGION: Final = "NO"
"""Region a phone number written without a country prefix is read in (Norway: +47)."""

Info = dict[str, Any]
_WHITESPACE = re.compile(r"\s+")
_PHONE_CHARS = re.compile(r"[^0-9+]")


# -- comparison forms (the mapper's, services/mapper/domain/normalize.py) ------------------------


def name_key(value: object) -> str | None:
    text = clean_text(value)
    return _WHITESPACE.sub(" ", text) if text is not None else None


def email_key(value: object) -> str | None:
    text = clean_text(value)
    return text.casefold() if text is not None else None


def _parsed_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, (region or DEFAULT_REGION).upper())
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def phone_key(value: object, region: str | None = None) -> str | None:
    """E.164 (``;ext=`` kept); an unparseable number keeps its digits and ``+`` only."""
    text = clean_text(value)
    if text is None:
        return None
    number = _parsed_phone(text, region)
    if number is not None:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return f"{e164};ext={number.extension}" if number.extension else e164
    digits = _PHONE_CHARS.sub("", text)
    return digits or text.casefold()


@functools.lru_cache(maxsize=16_384)
def _phone_e164(text: str, region: str) -> str | None:
    number = _parsed_phone(text, region)
    if number is None or number.extension:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# -- reading ------------------------------------------------------------------------------------


def _contact(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A bare contact, also from the API's ``{"contact": {...}}`` envelope."""
    inner = record.get("contact")
    return inner if isinstance(inner, Mapping) and "id" not in record else record


def _name_part(part: str) -> Callable[[Mapping[str, Any]], str | None]:
    def read(record: Mapping[str, Any]) -> str | None:
        info = _contact(record).get("info")
        name = info.get("name") if isinstance(info, Mapping) else None
        return clean_text(name.get(part)) if isinstance(name, Mapping) else None

    return read


def _read_email(record: Mapping[str, Any]) -> str | None:
    item = primary_item(_contact(record), "emails", "email")
    return clean_text(item.get("email")) if item is not None else None


def _phone_region(record: Mapping[str, Any]) -> str | None:
    item = primary_item(_contact(record), "phones", "phone")
    region = item.get("countryCode") if item is not None else None
    return region if isinstance(region, str) and region else None


def _phone_as_held(record: Mapping[str, Any]) -> str | None:
    """The primary phone as Wix holds it: ``e164Phone`` when derived, else as typed."""
    item = primary_item(_contact(record), "phones", "phone")
    if item is None:
        return None
    return clean_text(item.get("e164Phone")) or clean_text(item.get("phone"))


def _read_phone(record: Mapping[str, Any]) -> str | None:
    return _item_phone(primary_item(_contact(record), "phones", "phone"))


def _item_phone(item: Mapping[str, Any] | None) -> str | None:
    """A phone item's number: ``e164Phone`` when Wix derived it, else the typed number in E.164
    for the item's ``countryCode`` when parseable, else as typed."""
    if item is None:
        return None
    e164 = clean_text(item.get("e164Phone"))
    if e164 is not None:
        return e164
    raw = clean_text(item.get("phone"))
    region = clean_text(item.get("countryCode"))
    if raw is not None and region is not None:
        return _phone_e164(raw, region.upper()) or raw
    return raw


def identifiers(record: Mapping[str, Any]) -> list[tuple[str, object]]:
    """Every value the contact can be found by: each e-mail item (``("email", value)``) and each
    phone item (``("phone", value)``, read as ``_item_phone``) — not only the primary ones — in
    item order."""
    contact = _contact(record)
    found: list[tuple[str, object]] = [
        ("email", item.get("email")) for item in contact_items(contact, "emails")
    ]
    found += [("phone", _item_phone(item)) for item in contact_items(contact, "phones")]
    return found


def has_other_items(record: Mapping[str, Any]) -> bool:
    """Whether the contact has e-mail/phone items besides its primary ones."""
    contact = _contact(record)
    items = 0
    primaries = 0
    for collection, value_field in (("emails", "email"), ("phones", "phone")):
        held = contact_items(contact, collection)
        items += len(held)
        if held and primary_item(contact, collection, value_field) is not None:
            primaries += 1
    return items > primaries


def revision(record: Mapping[str, Any]) -> int | None:
    """The contact's ``revision`` (a number, or a string of digits)."""
    value = _contact(record).get("revision")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


# -- writing ------------------------------------------------------------------------------------


#: The item fields a write may carry (reference §4): ``id``, ``e164Phone``, ``formattedPhone`` and
#: whatever else Wix adds to an item are read-only and never sent back.
WRITABLE_ITEM_FIELDS: Final = {
    "emails": ("tag", "email", "primary"),
    "phones": ("tag", "countryCode", "phone", "primary"),
}

_Item = TypeVar("_Item", ContactEmail, ContactPhone)


def writable_item(item: ContactEmail | ContactPhone) -> dict[str, Any]:
    """The item as a write sends it: its writable fields only."""
    wire = item.to_wire()
    allowed = WRITABLE_ITEM_FIELDS["emails" if isinstance(item, ContactEmail) else "phones"]
    return {k: wire[k] for k in allowed if k in wire}


def _replace_primary(
    items: list[_Item],
    primary: _Item | None,
    value: str | None,
    *,
    same: Callable[[_Item, str], bool],
    make: Callable[[str], _Item],
    assign: Callable[[_Item, str], _Item],
) -> list[dict[str, Any]]:
    value = value.strip() if value else None
    out: list[_Item] = []
    for item in items:
        if item is primary:
            if value is not None:
                out.append(assign(item, value).model_copy(update={"primary": True}))
        elif value is not None and same(item, value):
            continue  # the new primary value is already listed: keep it once
        else:
            out.append(item.model_copy(update={"primary": False}))
    if value is not None and primary is None:
        out.insert(0, make(value))
    return [writable_item(item) for item in out]


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _create_name(part: str) -> Callable[[Info, str | None], None]:
    def write(info: Info, value: str | None) -> None:
        # Both parts collect in one working dict; ``info_for_create`` drops the empty ones.
        info.setdefault("name", {"first": None, "last": None})[part] = value

    return write


def _update_name(part: str) -> Callable[[Info, Contact, str | None], None]:
    def write(info: Info, current: Contact, value: str | None) -> None:
        # ``name`` is sent whole: the part not written keeps the contact's current value.
        name = info.setdefault("name", {"first": current.first_name, "last": current.last_name})
        name[part] = value

    return write


def _create_email(info: Info, value: str | None) -> None:
    if value:
        info["emails"] = {"items": [{"tag": "MAIN", "email": value.strip(), "primary": True}]}


def _update_email(info: Info, current: Contact, value: str | None) -> None:
    items = _replace_primary(
        current.emails,
        primary_email_item(current),
        value,
        same=lambda item, wanted: item.email.strip().lower() == wanted.strip().lower(),
        make=lambda wanted: ContactEmail(tag="MAIN", email=wanted, primary=True),
        assign=lambda item, wanted: item.model_copy(update={"email": wanted}),
    )
    info["emails"] = {"items": items}


def _create_phone(info: Info, value: str | None) -> None:
    if value:
        info["phones"] = {"items": [{"tag": "MAIN", "phone": value.strip(), "primary": True}]}


def _update_phone(info: Info, current: Contact, value: str | None) -> None:
    items = _replace_primary(
        current.phones,
        primary_phone_item(current),
        value,
        same=lambda item, wanted: _digits(item.phone) == _digits(wanted),
        make=lambda wanted: ContactPhone(tag="MAIN", phone=wanted, primary=True),
        assign=lambda item, wanted: item.model_copy(update={"phone": wanted}),
    )
    info["phones"] = {"items": items}


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WixField:
    """One contact field (a ``services.core.connector.FieldAccessor``)."""

    path: str
    kind: str
    """The comparison form: ``name``, ``email`` or ``phone``."""
    reader: Callable[[Mapping[str, Any]], str | None]
    create: Callable[[Info, str | None], None]
    """Puts a value into the ``info`` of a create."""
    update: Callable[[Info, Contact, str | None], None]
    """Puts a value into the ``info`` of a PATCH computed against the contact as it is."""
    natural_key: bool = False
    """A value here lets Wix's duplicate rule find the contact again (e-mail, phone)."""

    def read(self, record: Mapping[str, Any]) -> str | None:
        return self.reader(record)

    def value(self, text: str | None) -> str | None:
        return clean_text(text)

    def holds(self, record: Mapping[str, Any], value: Any) -> bool:
        if self.kind == "phone":
            return phone_key(_phone_as_held(record), _phone_region(record)) == phone_key(value)
        key = email_key if self.kind == "email" else name_key
        return key(self.reader(record)) == key(value)


FIELDS: Final[Mapping[str, WixField]] = {
    field.path: field
    for field in (
        WixField("info.name.first", "name", _name_part("first"), _create_name("first"),
                 _update_name("first")),
        WixField("info.name.last", "name", _name_part("last"), _create_name("last"),
                 _update_name("last")),
        WixField("info.emails[primary].email", "email", _read_email, _create_email,
                 _update_email, natural_key=True),
        WixField("info.phones[primary].phone", "phone", _read_phone, _create_phone,
                 _update_phone, natural_key=True),
    )
}  # fmt: skip
"""Every contact field the engine reads and writes, by path, in the order ``info`` is built."""

NATURAL_KEYS: Final = frozenset(path for path, field in FIELDS.items() if field.natural_key)


def _known(values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ContractError(f"wix contacts: no writable field {unknown}; known: {sorted(FIELDS)}")


def info_for_create(
    values: Mapping[str, str | None],
    *,
    phone_country: str | None = None,
    extended_fields: Mapping[str, str | int | float] | None = None,
) -> Info:
    """A create's ``info`` holding the given fields (primary e-mail/phone flagged); empty
    values are left out. ``phone_country`` is the new phone item's ``countryCode``."""
    _known(values)
    info: Info = {}
    for path, field in FIELDS.items():
        if path in values:
            field.create(info, values[path])
    if "name" in info:
        name = {part: v for part, v in info["name"].items() if v}
        if name:
            info["name"] = name
        else:
            del info["name"]
    if phone_country and "phones" in info:
        info["phones"]["items"][0]["countryCode"] = phone_country
    if extended_fields:
        info["extendedFields"] = {"items": dict(extended_fields)}
    return info


def info_for_update(
    current: Contact,
    values: Mapping[str, str | None],
    *,
    extended_fields: Mapping[str, str | int | float | None] | None = None,
) -> Info:
    """The minimal PATCH ``info`` for the given changes against ``current`` (see the module
    docstring). Extended fields: every current ``custom.*`` key plus the changes (``None``
    removes a key)."""
    _known(values)
    info: Info = {}
    for path, field in FIELDS.items():
        if path in values:
            field.update(info, current, values[path])
    if "name" in info:
        info["name"] = {part: v for part, v in info["name"].items() if v}
    if extended_fields is not None:
        custom = {k: v for k, v in current.extended_fields.items() if k.startswith("custom.")}
        for key, value in extended_fields.items():
            if not key.startswith("custom."):
                raise ValueError("only custom.* extended fields can be written")
            if value is None:
                custom.pop(key, None)
            else:
                custom[key] = value
        info["extendedFields"] = {"items": custom}
    return info
