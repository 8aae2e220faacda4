"""Wix Contacts v4 behind the connector interface (``services.core.connector``).

Adapters only: every request, retry, token renewal and error is ``WixClient``'s, unchanged.

* ``WixStream`` (``stream.py``) — passes over ``updatedDate >= floor`` keyset-paged on
  ``createdDate``; the next pass starts no later than the previous one's start minus the
  overlap, so a contact edited behind the reader is read again and none is skipped. ``scan``:
  every contact's id, revision and ``updatedDate``; ``presence`` tells a merged contact (Get
  answers ``MERGED``) from a deleted one. Webhooks: ``receiver.py`` (a ``PushSource``).
* ``WixTarget`` — fields are addressed by path (``info.name.first``, ``info.name.last``,
  ``info.emails[primary].email``, ``info.phones[primary].phone``: the dataflow file's
  ``hub_field``s). ``create`` keeps the idempotency reference in the custom extended field
  ``tether-link-id`` and finds a contact carrying it before creating; ``update`` rebuilds the
  minimal ``info`` from the contact as it is now and sends it at the *guard's* revision, so Wix
  itself refuses a stale guard (409 ``CONTACT_ALREADY_CHANGED``); ``delete`` by id.

Imports: the Wix client and models, ``services.core`` — never the simulator.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

from services.connectors.wix.client import (
    UNSET,
    Value,
    WixClient,
    auth_from_settings,
    build_create_info,
    build_update_info,
)
from services.connectors.wix.models import Contact
from services.connectors.wix.stream import RESOURCE, SYSTEM, WixStream
from services.core.budget import ApiBudget
from services.core.connector import (
    ConnectorDescriptor,
    Guard,
    RateLimit,
    RecordKey,
    ResourceDescriptor,
    SourceStream,
    StreamOptions,
    Target,
    Written,
)
from services.core.errors import ContractError, ValidationError
from services.core.settings import WixSettings

LINK_FIELD: Final = "tether-link-id"
"""Display name of the custom extended field holding a create's idempotency reference."""
FIELDS: Final[dict[str, str]] = {
    "info.name.first": "first_name",
    "info.name.last": "last_name",
    "info.emails[primary].email": "email",
    "info.phones[primary].phone": "phone",
}
"""Field path -> the client's keyword (``build_create_info``/``build_update_info``)."""


def _keywords(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationError(
            f"{SYSTEM} {RESOURCE}: no writable field {unknown}; known: {sorted(FIELDS)}",
            system=SYSTEM,
        )
    return {FIELDS[path]: value for path, value in values.items()}


class WixTarget:
    """``Target`` of Wix contacts."""

    def __init__(self, client: WixClient, link_field: str = LINK_FIELD) -> None:
        self.client = client
        self._link_field = link_field
        self._link_key: str | None = None
        self._lock = threading.Lock()

    @property
    def resource(self) -> str:
        return RESOURCE

    def _reference_key(self) -> str:
        with self._lock:
            if self._link_key is None:
                self._link_key = self.client.find_or_create_extended_field(self._link_field)
            return self._link_key

    @staticmethod
    def _written(contact: Contact, created: bool = False) -> Written:
        return Written(RecordKey(contact.id), contact.to_wire(), created)

    def create(
        self, values: Mapping[str, Any], *, reference: str, parent_id: str | None = None
    ) -> Written:
        key = self._reference_key()
        found = self.client.find_by_extended_field(key, reference)
        if found:
            return self._written(found[0], created=False)
        info = build_create_info(**_keywords(values), extended_fields={key: reference})
        return self._written(self.client.create(info), created=True)

    def guard(self, record: Mapping[str, Any], fields: tuple[str, ...]) -> Guard:
        revision = record.get("revision")
        if not isinstance(revision, int):
            raise ContractError(f"{SYSTEM} {RESOURCE}: contact without a revision")
        return Guard(version=str(revision))

    def update(self, key: RecordKey, changes: Mapping[str, Any], *, guard: Guard) -> Written:
        given: dict[str, Value] = _keywords(changes)
        current = self.client.get(key.id).contact
        info = build_update_info(
            current,
            first_name=given.get("first_name", UNSET),
            last_name=given.get("last_name", UNSET),
            email=given.get("email", UNSET),
            phone=given.get("phone", UNSET),
        )
        if not info:
            return self._written(current)
        revision = int(guard.version) if guard.version is not None else current.revision
        return self._written(self.client.update_info(current.id, revision, info))

    def delete(self, key: RecordKey) -> None:
        self.client.delete(key.id)


def make_client(settings: WixSettings, budget: ApiBudget) -> WixClient:
    """A production client from settings (API key + site, or the app's three credentials)."""
    return WixClient(auth_from_settings(settings), budget, base_url=settings.wix_base_url)


def streams(client: WixClient, options: StreamOptions) -> dict[str, SourceStream]:
    return {RESOURCE: WixStream(client, options)}


def targets(client: WixClient) -> dict[str, Target]:
    return {RESOURCE: WixTarget(client)}


DESCRIPTOR: Final = ConnectorDescriptor[WixSettings, WixClient](
    system=SYSTEM,
    resources={
        RESOURCE: ResourceDescriptor(
            name=RESOURCE,
            record_schema=Contact,
            key_field="id",
            version_field="revision",
            reference_field=f"info.extendedFields.items.custom.{LINK_FIELD}",
        )
    },
    settings_model=WixSettings,
    rate_limit=RateLimit(requests=200, per_seconds=60.0),
    client_factory=make_client,
    streams=streams,
    targets=targets,
)
"""The Wix Contacts v4 connector (200 requests/minute per app instance)."""
