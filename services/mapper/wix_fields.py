"""The Wix contact's field accessors, as the mapper's domain reads a hub record (wiring).

Temporary home: these readers lived in ``services/mapper/domain/mappings.py`` while the hub was
hard-wired to Wix; they move into the Wix connector package (``services/connectors/wix/
fields.py``, issue 15 step 1) and this module then becomes an import there. The domain sees them
only as ``HubAccessors``, installed with the dataflow (``services.mapper.wiring``).

Reading primary items: the item flagged ``primary: true`` (an absent flag is ``false``). When no
item is flagged and the contact carries ``primaryInfo`` (Wix's read-only mirror of the primary
items), the item equal to ``primaryInfo.email``/``primaryInfo.phone`` (or that value itself), and
no value when the mirror has none. Only when ``primaryInfo`` is missing altogether (a partial
projection) is the first item taken — Wix makes the first item primary when none is flagged
(``services.core.wix_items``). Every accessor accepts both a bare contact and the API's
``{"contact": {...}}`` envelope.

Pure module: it imports no I/O library (the standard library, ``services.core.wix_items`` and the
mapper's domain only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.core.wix_items import contact_items, primary_item
from services.mapper.domain.mappings import FieldReader, HubAccessors, KeyKind
from services.mapper.domain.normalize import clean, e164_form, phone_e164

Record = Mapping[str, Any]

_COLLECTIONS = (("emails", "email"), ("phones", "phone"))


def unwrap_contact(contact: Record) -> Record:
    """Accept both a bare contact and the API's ``{"contact": {...}}`` envelope."""
    inner = contact.get("contact")
    if isinstance(inner, Mapping) and "id" not in contact:
        return inner
    return contact


def _primary(contact: Record, collection: str, value_field: str) -> Record | None:
    return primary_item(unwrap_contact(contact), collection, value_field)


def _phone_value(item: Record | None) -> str | None:
    """An item's phone: ``e164Phone`` when Wix computed it, else the typed number in E.164 for
    the item's ``countryCode`` when parseable, else as typed."""
    if item is None:
        return None
    e164 = clean(item.get("e164Phone"))
    if e164 is not None:
        return e164
    raw = clean(item.get("phone"))
    region = clean(item.get("countryCode"))
    if raw is not None and region is not None:
        return phone_e164(raw, region.upper()) or raw
    return raw


def _name_part(contact: Record, part: str) -> str | None:
    info = unwrap_contact(contact).get("info")
    name = info.get("name") if isinstance(info, Mapping) else None
    return clean(name.get(part)) if isinstance(name, Mapping) else None


def read_first_name(contact: Record) -> str | None:
    return _name_part(contact, "first")


def read_last_name(contact: Record) -> str | None:
    return _name_part(contact, "last")


def read_email(contact: Record) -> str | None:
    item = _primary(contact, "emails", "email")
    return clean(item.get("email")) if item is not None else None


def read_phone(contact: Record) -> str | None:
    return _phone_value(_primary(contact, "phones", "phone"))


FIELDS: dict[str, tuple[str, FieldReader]] = {
    "info.name.first": ("first_name", read_first_name),
    "info.name.last": ("last_name", read_last_name),
    "info.emails[primary].email": ("email", read_email),
    "info.phones[primary].phone": ("phone", read_phone),
}
"""Wix field path -> (the canonical name the loader and the Wix client write it under, reader).
A dataflow file can map only these paths."""


def identifiers(contact: Record) -> list[tuple[KeyKind, object]]:
    """Every e-mail item and every phone item (not only the primary ones), in item order."""
    contact = unwrap_contact(contact)
    found: list[tuple[KeyKind, object]] = [
        (KeyKind.EMAIL, item.get("email")) for item in contact_items(contact, "emails")
    ]
    found += [(KeyKind.PHONE, _phone_value(item)) for item in contact_items(contact, "phones")]
    return found


def has_other_items(contact: Record) -> bool:
    """Whether the contact has e-mail/phone items besides the primary ones."""
    contact = unwrap_contact(contact)
    items = sum(len(contact_items(contact, collection)) for collection, _ in _COLLECTIONS)
    primaries = sum(
        1
        for collection, value_field in _COLLECTIONS
        if _primary(contact, collection, value_field) is not None
        and contact_items(contact, collection)
    )
    return items > primaries


def revision(contact: Record) -> int | None:
    """The contact's ``revision`` (a number, or a string of digits)."""
    value = unwrap_contact(contact).get("revision")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


CONTACT_ACCESSORS = HubAccessors(
    fields=FIELDS,
    identifiers=identifiers,
    has_other_items=has_other_items,
    revision=revision,
    write_form=e164_form,
)
"""How the domain reads a Wix contact as the hub record."""
