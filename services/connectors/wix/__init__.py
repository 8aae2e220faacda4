"""Wix Contacts v4 connector: production client, webhook verification, models — and a simulator.

Production (extractor, loader): ``client.WixClient`` (+ ``ApiKeyAuth`` / ``AppAuth``),
``webhooks.verify_and_parse`` -> ``ContactWebhookEvent``, ``models.Contact`` and helpers. These
are re-exported here.

Tests, bench and demo only: ``simulator.WixSimulator`` (with ``sim*`` modules: store, query
language, error bodies, webhook delivery) and ``admin.WixAdmin``. They are deliberately *not*
imported here, so importing the package never pulls in starlette/uvicorn.
"""

from services.connectors.wix.client import (
    UNSET,
    ApiKeyAuth,
    AppAuth,
    ContactPage,
    DuplicateContactError,
    GetContactResult,
    WixClient,
    build_create_info,
    build_update_info,
)
from services.connectors.wix.models import Contact, parse_contact, primary_email, primary_phone
from services.connectors.wix.webhooks import (
    ContactWebhookEvent,
    WebhookRejectedError,
    verify_and_parse,
)

__all__ = [
    "UNSET",
    "ApiKeyAuth",
    "AppAuth",
    "Contact",
    "ContactPage",
    "ContactWebhookEvent",
    "DuplicateContactError",
    "GetContactResult",
    "WebhookRejectedError",
    "WixClient",
    "build_create_info",
    "build_update_info",
    "parse_contact",
    "primary_email",
    "primary_phone",
    "verify_and_parse",
]
