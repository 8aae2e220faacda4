"""Typed view of a Wix Contacts v4 contact as it travels over the wire (REST field names).

What it is for: the client, the webhook parser and the engine read contacts through these models;
the simulator uses them to check what it emits. Every model keeps unknown fields
(``extra="allow"``) so a contact read, changed and written back loses nothing Wix added.

Rules pinned here (see docs/wix-decisions.md):

- An item without ``primary`` is not primary (Wix examples omit ``primary: false``).
- ``primary_email`` / ``primary_phone``: the item flagged ``primary``; if no item is flagged, the
  item whose value equals ``primaryInfo``; else the first item; else ``primaryInfo`` itself.

Imports: standard library, pydantic and ``services.core.errors`` only — no HTTP, no simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from services.core.errors import ContractError

__all__ = [
    "Contact",
    "ContactEmail",
    "ContactEmails",
    "ContactInfo",
    "ContactName",
    "ContactPhone",
    "ContactPhones",
    "ExtendedFields",
    "PrimaryInfo",
    "parse_contact",
    "primary_email",
    "primary_email_item",
    "primary_phone",
    "primary_phone_item",
]


class WireModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields kept."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready wire form (camelCase, unset optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ContactName(WireModel):
    first: str | None = None
    last: str | None = None


class ContactEmail(WireModel):
    id: str | None = None
    tag: str = "UNTAGGED"
    email: str
    primary: bool = False


class ContactPhone(WireModel):
    id: str | None = None
    tag: str = "UNTAGGED"
    country_code: str | None = None
    phone: str
    e164_phone: str | None = None
    formatted_phone: str | None = None
    primary: bool = False


class ContactEmails(WireModel):
    items: list[ContactEmail] = Field(default_factory=list)


class ContactPhones(WireModel):
    items: list[ContactPhone] = Field(default_factory=list)


class ExtendedFields(WireModel):
    """``items`` maps a key (``custom.*`` written by apps, system namespaces by Wix) to a value."""

    items: dict[str, Any] = Field(default_factory=dict)


class ContactInfo(WireModel):
    name: ContactName | None = None
    emails: ContactEmails | None = None
    phones: ContactPhones | None = None
    extended_fields: ExtendedFields | None = None


class PrimaryInfo(WireModel):
    """Read-only mirror of the primary email / phone item."""

    email: str | None = None
    phone: str | None = None


class Contact(WireModel):
    id: str
    revision: int
    created_date: datetime | None = None
    updated_date: datetime | None = None
    info: ContactInfo = Field(default_factory=ContactInfo)
    primary_info: PrimaryInfo | None = None

    @property
    def emails(self) -> list[ContactEmail]:
        return self.info.emails.items if self.info.emails else []

    @property
    def phones(self) -> list[ContactPhone]:
        return self.info.phones.items if self.info.phones else []

    @property
    def extended_fields(self) -> dict[str, Any]:
        return self.info.extended_fields.items if self.info.extended_fields else {}

    @property
    def first_name(self) -> str | None:
        return self.info.name.first if self.info.name else None

    @property
    def last_name(self) -> str | None:
        return self.info.name.last if self.info.name else None


_Item = TypeVar("_Item", ContactEmail, ContactPhone)


def parse_contact(data: object) -> Contact:
    """Validate a wire dict into a ``Contact``; a malformed payload raises ``ContractError``.

    The error names the offending locations and error kinds, never the values (personal data).
    """
    if not isinstance(data, dict):
        raise ContractError(f"wix contact: expected a JSON object, got {type(data).__name__}")
    try:
        return Contact.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['type']}"
            for err in exc.errors()[:5]
        )
        raise ContractError(f"wix contact is malformed: {problems}") from None


def primary_email_item(contact: Contact) -> ContactEmail | None:
    """The primary email item (see the module docstring for the fallback rule)."""
    mirror = contact.primary_info.email if contact.primary_info else None
    return _primary_item(contact.emails, mirror, lambda item: item.email)


def primary_phone_item(contact: Contact) -> ContactPhone | None:
    """The primary phone item (see the module docstring for the fallback rule)."""
    mirror = contact.primary_info.phone if contact.primary_info else None
    return _primary_item(contact.phones, mirror, lambda item: item.phone)


def primary_email(contact: Contact) -> str | None:
    item = primary_email_item(contact)
    if item is not None:
        return item.email
    return contact.primary_info.email if contact.primary_info else None


def primary_phone(contact: Contact) -> str | None:
    item = primary_phone_item(contact)
    if item is not None:
        return item.phone
    return contact.primary_info.phone if contact.primary_info else None


def _primary_item(
    items: Sequence[_Item], mirror: str | None, value: Callable[[_Item], str]
) -> _Item | None:
    flagged = [item for item in items if getattr(item, "primary", False)]
    if flagged:
        return flagged[0]
    if mirror is not None:
        for item in items:
            if value(item) == mirror:
                return item
    return items[0] if items else None
