"""Wix Contacts v4 connector: production client, webhook verification, models — and a simulator.

Production (extractor, loader): ``client.WixClient`` (+ ``ApiKeyAuth`` / ``AppAuth``),
``webhooks.verify_and_parse`` -> ``ContactWebhookEvent``, ``models.Contact`` and helpers,
``fields.FIELDS`` (the field accessors) and the write shapes they build. These
are re-exported here.

Tests, bench and demo only: ``simulator.WixSimulator`` (with ``sim*`` modules: store, query
language, error bodies, webhook delivery) and ``admin.WixAdmin``. They are deliberately *not*
imported here, so importing the package never pulls in starlette/uvicorn.
"""

from services.connectors.wix.client import (
    ApiKeyAuth,
    AppAuth,
    ContactPage,
    DuplicateContactError,
    GetContactResult,
    WixClient,
)
from services.connectors.wix.fields import FIELDS, info_for_create, info_for_update
from services.connectors.wix.models import Contact, parse_contact, primary_email, primary_phone
from services.connectors.wix.webhooks import (
    ContactWebhookEvent,
    WebhookRejectedError,
    verify_and_parse,
)

__all__ = [
    "FIELDS",
    "ApiKeyAuth",
    "AppAuth",
    "Contact",
    "ContactPage",
    "ContactWebhookEvent",
    "DuplicateContactError",
    "GetContactResult",
    "WebhookRejectedError",
    "WixClient",
    "info_for_create",
    "info_for_update",
    "parse_contact",
    "primary_email",
    "primary_phone",
    "verify_and_parse",
]
