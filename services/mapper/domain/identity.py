"""Record identities and the deterministic ids the mapper derives from them.

A record's identity is ``(tenant, system, resource, id)``: a system's ids may be unique only per
resource, so the resource is part of the identity. ``RecordRef`` also carries the parent id that
a child resource needs for its URL (contact persons: ``/ContactPersons/{ContactId}/{Id}``); the
parent is context, not identity (``RecordRef.identity`` leaves it out). Which systems and
resources exist is the dataflow's business (``mappings.hub``, ``mappings.FLOWS``); the two
resource names below are the ones the policy speaks of.

Every id the mapper hands out is a UUIDv5 over a canonical JSON rendering of its inputs, so the
same input always yields the same id (replay safety, loader de-duplication). Derived ids are
memoised in a bounded LRU cache (a pure function: the cache changes no id).

Pure module: it imports no I/O library.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

CUSTOMERS: Final = "customers"
"""The member resource a hub record matching nothing becomes (policy
``create_members_for_unmatched_hub``)."""
CONTACT_PERSONS: Final = "contact_persons"
"""The member resource ``Policy.contact_persons`` filters."""

NAMESPACE: Final = uuid.UUID("6f1d2c8e-3b1a-5d7e-9a40-7e7465746865")
"""Root namespace of every id Tether's mapper derives (never change it: ids would change)."""


class RecordRef(BaseModel):
    """A record in one system. ``id`` is ``None`` while the engine is still creating the record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    system: str
    resource: str
    id: str | None = None
    parent_id: str | None = None

    @property
    def identity(self) -> tuple[str, str, str, str | None]:
        """``(tenant, system, resource, id)`` — the record identity (parent id excluded)."""
        return (self.tenant, self.system, self.resource, self.id)

    @property
    def key(self) -> str:
        """A short, stable, tenant-local key: ``system:resource:id`` (``new`` while creating)."""
        return f"{self.system}:{self.resource}:{self.id if self.id is not None else 'new'}"


def canonical_json(value: Any) -> str:
    """Deterministic JSON used as the input of derived ids (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def derive_id(kind: str, *parts: Any) -> str:
    """A UUIDv5 (as text) over ``kind`` and ``parts``. Memoised (``ID_CACHE_SIZE`` entries,
    least recently used dropped first) when every part is a ``str``, an ``int`` or None: for
    those, equal arguments have equal JSON. Others (a datetime equal to one in another time
    zone, ``1`` vs ``True`` inside a tuple, dicts) are computed each time."""
    if all(type(part) in _CACHEABLE for part in parts):
        return _derive_cached(kind, *parts)
    return _derive(kind, *parts)


def _derive(kind: str, *parts: Any) -> str:
    return str(uuid.uuid5(NAMESPACE, canonical_json([kind, *parts])))


ID_CACHE_SIZE = 16_384
_CACHEABLE = (str, int, type(None))
_derive_cached = lru_cache(maxsize=ID_CACHE_SIZE, typed=True)(_derive)


def link_id_for(first_member: RecordRef) -> str:
    """The id of the link founded by ``first_member`` (tenant + its identity)."""
    return derive_id("link", *first_member.identity)
