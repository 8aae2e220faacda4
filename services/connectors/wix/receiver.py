"""Wix contact webhooks as a ``PushSource``: authenticate a delivery, say what changed.

Wix signs every delivery as a JWT (RS256) with the app's key; ``verify_and_parse``
(``webhooks.py``) checks the signature and ``exp`` and reads both body variants. A forged,
expired or malformed delivery raises ``PushRejectedError`` (its reason is a metric label); an
authentic event of another installation of the app than ``instance_id`` (when set) is
``ignored``. ``tenant_key`` (``RoutedPushSource``) reads the installation a verified delivery is
for: a deployment serving many tenants routes it to the tenant whose ``wix_instance_id`` it is.
The engine (``services/extractor/webhook.py``) de-duplicates by ``event_id``, turns
the changes into events, waits for Kafka and answers.

What a contact event stands for:

- ``created``/``updated`` -> UPSERT of the contact (its time: the event's ``eventTime``);
- ``deleted`` -> DELETE (its version: the revision, only when Wix sends ``deletedEntity``);
  a source's ``deleted`` that a merge caused (``originatedFrom: "merge"``) -> nothing: it is
  implied by the MERGE, and a DELETE keyed by the source could overtake the MERGE (another
  partition) and make the mapper delete a person who still exists as the target;
- ``merged`` -> one MERGE keyed by the target (its contact as the record), the sources in
  ``merged_ids``.

Imports: the Wix webhook parser and the connector interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from services.connectors.wix.stream import RESOURCE
from services.connectors.wix.webhooks import (
    ContactWebhookEvent,
    WebhookRejectedError,
    verify_and_parse,
)
from services.core.connector import Delivery, Pushed, PushRejectedError, RecordKey

PATH: Final = "/webhooks/wix"


def pushed_changes(event: ContactWebhookEvent) -> tuple[Pushed, ...]:
    """The changes one verified contact event stands for (see the module docstring)."""
    at, key = event.event_time, RecordKey(event.entity_id)
    if event.kind in ("created", "updated"):
        return (Pushed("UPSERT", key, at, record=event.contact),)
    if event.kind == "deleted":
        if event.originated_from == "merge":
            return ()
        revision = event.contact.get("revision") if event.contact else None
        version = str(revision) if isinstance(revision, int) else None
        return (Pushed("DELETE", key, at, version=version),)
    return (Pushed("MERGE", key, at, record=event.contact, merged_ids=event.source_contact_ids),)


class WixWebhooks:
    """``PushSource`` of Wix contacts (``POST /webhooks/wix``)."""

    def __init__(self, public_key_pem: str, instance_id: str | None = None) -> None:
        self.public_key_pem = public_key_pem
        self.instance_id = instance_id or None

    @property
    def path(self) -> str:
        return PATH

    @property
    def tenant_setting(self) -> str:
        """Each delivery names the site's app installation; a tenant's ``wix_instance_id``."""
        return "wix_instance_id"

    def tenant_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        try:
            event = verify_and_parse(body, self.public_key_pem)
        except WebhookRejectedError as exc:
            raise PushRejectedError(exc.reason) from exc
        return event.instance_id or None

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        try:
            event = verify_and_parse(body, self.public_key_pem)
        except WebhookRejectedError as exc:
            raise PushRejectedError(exc.reason) from exc
        if self.instance_id and event.instance_id and event.instance_id != self.instance_id:
            # Authentic, but for another installation of the app: not this tenant's change.
            return Delivery(event.event_id, event.kind, RESOURCE, ignored="other_instance")
        return Delivery(event.event_id, event.kind, RESOURCE, pushed_changes(event))
