"""Reading both systems in full with the production clients, within the verifier's budgets.

``read_all(clients)`` pages every PowerOffice employee, customer and contact person (numbered
pages, ``Id asc``) and every Wix contact (offset pages of Query Contacts) as raw wire records,
keyed ``(system, resource, record_id)``. A full rescan is the anchor of verification: it needs
no change feed, so it finds what the feeds never reported. Every request acquires a permit of the
client's ``ApiBudget`` first (the verifier's configured share of each API).

Offset paging is not a snapshot: a contact created or deleted while paging can shift the pages
by one and hide a contact. ``confirm_missing`` therefore re-reads, one request per record, the
linked records the listing did not return, before a link is reported ``missing``.

Imports: the connectors' production clients, ``services.core`` errors/budget and the verifier's
settings — never a simulator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from services.connectors.poweroffice.client import PowerOfficeClient, require_credentials
from services.connectors.poweroffice.stream import API_RESOURCE
from services.connectors.wix.client import (
    MAX_PAGE,
    WixClient,
    auth_from_settings,
)
from services.core.budget import ApiBudget
from services.core.errors import NotFoundError
from services.core.metrics import CoreMetrics
from services.core.topics import RESOURCES
from services.verify.settings import VerifySettings

log = logging.getLogger("tether.verify.reading")

POWEROFFICE = "poweroffice"
WIX = "wix"
FETCH_CHUNK = 100

Key = tuple[str, str, str]


@dataclass
class Clients:
    poweroffice: PowerOfficeClient
    wix: WixClient
    poweroffice_budget: ApiBudget
    wix_budget: ApiBudget
    poweroffice_page_size: int = 1000
    wix_page_size: int = MAX_PAGE

    @property
    def budgets(self) -> list[ApiBudget]:
        return [self.poweroffice_budget, self.wix_budget]

    def close(self) -> None:
        self.poweroffice.close()
        self.wix.close()


def build_clients(settings: VerifySettings, metrics: CoreMetrics) -> Clients:
    require_credentials(settings)
    po_budget = settings.poweroffice_budget()
    wix_budget = settings.wix_budget()
    poweroffice = PowerOfficeClient(
        application_key=settings.poweroffice_app_key,
        client_key=settings.poweroffice_client_key,
        subscription_key=settings.poweroffice_subscription_key,
        budget=po_budget,
        base_url=settings.poweroffice_base_url,
        token_url=settings.poweroffice_token_url,
        on_request=metrics.observe_api,
    )
    wix = WixClient(
        auth_from_settings(settings),
        wix_budget,
        base_url=settings.wix_base_url,
        on_request=metrics.observe_api,
    )
    return Clients(
        poweroffice,
        wix,
        po_budget,
        wix_budget,
        settings.verify_poweroffice_page_size,
        min(settings.verify_wix_page_size, MAX_PAGE),
    )


def _po_id(raw: Any) -> str | None:
    value = raw.get("Id") if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        return None
    return str(value)


def _wix_id(raw: Any) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


#: Called between pages (and records): the service beats its liveness heartbeat and raises to
#: stop the scan when it is asked to shut down.
OnProgress = Callable[[], None]


def _nothing() -> None:
    return None


def read_poweroffice(
    clients: Clients, on_progress: OnProgress = _nothing
) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    for resource in RESOURCES[POWEROFFICE]:
        for count, raw in enumerate(
            clients.poweroffice.resource(API_RESOURCE[resource]).list_wire(
                page_size=clients.poweroffice_page_size
            )
        ):
            if count % clients.poweroffice_page_size == 0:
                on_progress()
            record_id = _po_id(raw)
            if record_id is not None:
                found[(POWEROFFICE, resource, record_id)] = raw
    return found


def read_wix(clients: Clients, on_progress: OnProgress = _nothing) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    offset = 0
    limit = clients.wix_page_size
    while True:
        on_progress()
        page = clients.wix.query_page_raw(None, limit=limit, offset=offset)
        for raw in page.contacts:
            record_id = _wix_id(raw)
            if record_id is not None:
                found[(WIX, "contacts", record_id)] = raw
        offset += len(page.contacts)
        if len(page.contacts) < limit or (page.total is not None and offset >= page.total):
            return found


def read_all(clients: Clients, on_progress: OnProgress = _nothing) -> dict[Key, dict[str, Any]]:
    """Every record of both systems (raw wire dicts)."""
    records = read_poweroffice(clients, on_progress)
    records.update(read_wix(clients, on_progress))
    return records


def confirm_missing(
    clients: Clients, wanted: Iterable[tuple[Key, str | None]]
) -> dict[Key, dict[str, Any]]:
    """Re-read linked records the listing did not return (``(key, parent id)``); returns those
    that do exist after all."""
    found: dict[Key, dict[str, Any]] = {}
    contacts: list[str] = []
    for (system, resource, record_id), parent in wanted:
        if system == WIX:
            contacts.append(record_id)
            continue
        try:
            contact_id = int(parent) if resource == "contact_persons" and parent else None
            if resource == "contact_persons" and contact_id is None:
                continue
            found[(system, resource, record_id)] = clients.poweroffice.resource(
                API_RESOURCE[resource]
            ).get_wire(int(record_id), parent_id=contact_id)
        except NotFoundError:
            continue
        except ValueError:
            log.warning("linked record with a non-numeric id", extra={"fields": {"id": record_id}})
    for start in range(0, len(contacts), FETCH_CHUNK):
        chunk = contacts[start : start + FETCH_CHUNK]
        page = clients.wix.query_page_raw({"id": {"$in": chunk}}, limit=len(chunk))
        for raw in page.contacts:
            wix_id = _wix_id(raw)
            if wix_id is not None:
                found[(WIX, "contacts", wix_id)] = raw
    return found
