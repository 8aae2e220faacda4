"""Reading a Wix contact's e-mail and phone items: the one rule for which item is primary.

Shared by the mapper's pure domain (what a contact holds) and the loader's pure planning (what a
write must keep), so that both read a contact the same way (``docs/mapping-rules.md``): the item
flagged ``primary``; else the item equal to ``primaryInfo``'s value; else, with no
``primaryInfo`` at all, the first item.

Pure: standard library only (the mapper domain and the loader plan may import it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Item = Mapping[str, Any]


def clean_text(value: object) -> str | None:
    """The value as text, trimmed; ``None`` for missing or blank values."""
    if value is None:
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text or None


def contact_items(contact: Mapping[str, Any], collection: str) -> list[Item]:
    """``info.<collection>.items`` (``emails`` / ``phones``); malformed levels read as empty."""
    info = contact.get("info")
    wrapper = info.get(collection) if isinstance(info, Mapping) else None
    items = wrapper.get("items") if isinstance(wrapper, Mapping) else None
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def primary_item(contact: Mapping[str, Any], collection: str, value_field: str) -> Item | None:
    """The primary item of ``info.<collection>.items`` (``value_field``: ``email`` / ``phone``);
    a bare ``{value_field: value}`` when only ``primaryInfo`` names it."""
    items = contact_items(contact, collection)
    for item in items:
        if item.get("primary") is True:
            return item
    primary_info = contact.get("primaryInfo")
    if isinstance(primary_info, Mapping):
        mirrored = clean_text(primary_info.get(value_field))
        if mirrored is None:
            return None
        for item in items:
            if clean_text(item.get(value_field)) == mirrored:
                return item
        return {value_field: mirrored}
    return items[0] if items else None
