"""Wix Contacts v4 behind the connector interface (``services.core.connector``).

Adapters only: every request, retry, token renewal and error is ``WixClient``'s, unchanged.

* ``WixStream.pages`` — a *pass* reads the contacts with ``updatedDate >= since`` sorted by
  ``createdDate`` (``updatedDate`` cannot be sorted), keyset-paged on ``createdDate`` (stable
  under concurrent deletes, unlike plain offsets); contacts sharing the keyset floor that were
  already returned are skipped by id. The cursor (opaque JSON) holds ``since``, the floor, the
  ids at the floor, the pass's highest ``updatedDate`` and its start. Once a pass is complete
  the next ``since`` is the highest ``updatedDate`` seen, but never later than the pass's start
  minus ``overlap``: a contact edited during the pass, behind the keyset, is read by the next
  pass. So resuming re-reads recent contacts (the overlap) and skips none, provided the clocks
  of Tether and Wix differ by less than ``overlap``.
* ``scan`` — every contact's id and revision (offset paging by ``createdDate``, ids
  de-duplicated; a short page is not the end, see ``client.last_page``).
* ``WixTarget`` — fields are addressed by path (``info.name.first``, ``info.name.last``,
  ``info.emails[primary].email``, ``info.phones[primary].phone``: the dataflow file's
  ``hub_field``s). ``create`` keeps the idempotency reference in the custom extended field
  ``tether-link-id`` and finds a contact carrying it before creating; ``update`` rebuilds the
  minimal ``info`` from the contact as it is now and sends it at the *guard's* revision, so Wix
  itself refuses a stale guard (409 ``CONTACT_ALREADY_CHANGED``); ``delete`` by id.

Imports: the Wix client and models, ``services.core`` — never the simulator.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from services.connectors.wix.client import (
    MAX_PAGE,
    WixClient,
    auth_from_settings,
    last_page,
)
from services.connectors.wix.fields import FIELDS, info_for_update
from services.connectors.wix.models import Contact
from services.core.budget import ApiBudget
from services.core.connector import (
    ConnectorDescriptor,
    Guard,
    Listed,
    Page,
    RateLimit,
    RecordKey,
    ResourceDescriptor,
    SourceStream,
    Target,
    WireRecord,
    Written,
)
from services.core.errors import ContractError, NotFoundError, ValidationError
from services.core.settings import WixSettings

SYSTEM: Final = "wix"
RESOURCE: Final = "contacts"
LINK_FIELD: Final = "tether-link-id"
"""Display name of the custom extended field holding a create's idempotency reference."""
DEFAULT_OVERLAP: Final = timedelta(minutes=5)


def _ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _known(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationError(
            f"{SYSTEM} {RESOURCE}: no writable field {unknown}; known: {sorted(FIELDS)}",
            system=SYSTEM,
        )
    return dict(values)


class WixStream:
    """``SourceStream`` of Wix contacts."""

    def __init__(
        self,
        client: WixClient,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.overlap = overlap
        self._now = now

    @property
    def resource(self) -> str:
        return RESOURCE

    def pages(self, cursor: str | None, page_size: int) -> Iterator[Page]:
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        since: str | None = state.get("since")
        floor: str | None = state.get("floor")
        edge: set[str] = set(state.get("edge", ()))
        high: datetime | None = _parse(state.get("high"))
        offset: int = state.get("offset", 0)
        start: str = state.get("start") or _ms(self._now())
        limit = min(page_size, MAX_PAGE)
        while True:
            query: dict[str, Any] = {}
            if since is not None:
                query["updatedDate"] = {"$gte": since}
            if floor is not None:
                query["createdDate"] = {"$gte": floor}
            page = self.client.query_page_raw(query or None, limit=limit, offset=offset)
            objects = [c for c in page.contacts if isinstance(c, dict)]
            rejected = tuple(c for c in page.contacts if not isinstance(c, dict))
            fresh = [
                c for c in objects if not (c.get("createdDate") == floor and c.get("id") in edge)
            ]
            last = last_page(len(page.contacts), offset + len(page.contacts), page.total)
            # The next query: from the newest createdDate of this page (keyset), skipping the
            # contacts at it already returned; when the floor cannot move (one createdDate, or
            # contacts without one), the next offset under the same floor.
            dated = [
                (moment, str(c["createdDate"]))
                for c in objects
                if (moment := _parse(c.get("createdDate"))) is not None
            ]
            top = max(dated)[1] if dated else None
            if top is not None and top != floor:
                floor, offset = top, 0
                edge = {str(c.get("id")) for c in objects if c.get("createdDate") == top}
            else:
                offset += len(page.contacts)
                edge |= {str(c.get("id")) for c in objects if c.get("createdDate") == floor}
            for c in fresh:
                updated = _parse(c.get("updatedDate"))
                if updated is not None and (high is None or updated > high):
                    high = updated
            if last:
                yield Page(tuple(fresh), self._next_pass(since, high, start), True, rejected)
                return
            if not fresh and not rejected:
                continue  # a page made only of contacts already returned
            mid = {
                "since": since,
                "floor": floor,
                "edge": sorted(edge),
                "offset": offset,
                "high": _ms(high) if high is not None else None,
                "start": start,
            }
            yield Page(tuple(fresh), json.dumps(mid), False, rejected)

    def _next_pass(self, since: str | None, high: datetime | None, start: str) -> str | None:
        if high is None:
            return json.dumps({"since": since}) if since is not None else None
        started = _parse(start)
        bound = min(high, started - self.overlap) if started is not None else high
        return json.dumps({"since": _ms(bound)})

    def get(self, key: RecordKey) -> WireRecord | None:
        try:
            result = self.client.get(key.id)
        except NotFoundError:
            return None
        return result.contact.to_wire()

    def scan(self, page_size: int) -> Iterator[Listed]:
        offset = 0
        seen: set[str] = set()
        while True:
            page = self.client.query_page_raw(None, limit=min(page_size, MAX_PAGE), offset=offset)
            for raw in page.contacts:
                key = self.key_of(raw)
                if key.id not in seen:
                    seen.add(key.id)
                    revision = raw.get("revision")
                    yield Listed(key, str(revision) if isinstance(revision, int) else None)
            offset += len(page.contacts)
            if last_page(len(page.contacts), offset, page.total):
                return

    def key_of(self, record: Mapping[str, Any]) -> RecordKey:
        contact_id = record.get("id")
        if not isinstance(contact_id, str) or not contact_id:
            raise ContractError(f"{SYSTEM} {RESOURCE}: contact without an id")
        return RecordKey(contact_id)

    def version_of(self, record: Mapping[str, Any]) -> str:
        revision = record.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise ContractError(f"{SYSTEM} {RESOURCE}: contact without a revision")
        return str(revision)


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
        contact = self.client.create(_known(values), extended_fields={key: reference})
        return self._written(contact, created=True)

    def guard(self, record: Mapping[str, Any], fields: tuple[str, ...]) -> Guard:
        revision = record.get("revision")
        if not isinstance(revision, int):
            raise ContractError(f"{SYSTEM} {RESOURCE}: contact without a revision")
        return Guard(version=str(revision))

    def update(self, key: RecordKey, changes: Mapping[str, Any], *, guard: Guard) -> Written:
        given = _known(changes)
        current = self.client.get(key.id).contact
        info = info_for_update(current, given)
        if not info:
            return self._written(current)
        revision = int(guard.version) if guard.version is not None else current.revision
        return self._written(self.client.update_info(current.id, revision, info))

    def delete(self, key: RecordKey) -> None:
        self.client.delete(key.id)


def make_client(settings: WixSettings, budget: ApiBudget) -> WixClient:
    """A production client from settings (API key + site, or the app's three credentials)."""
    return WixClient(auth_from_settings(settings), budget, base_url=settings.wix_base_url)


def streams(client: WixClient) -> dict[str, SourceStream]:
    return {RESOURCE: WixStream(client)}


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
            fields=FIELDS,
        )
    },
    settings_model=WixSettings,
    rate_limit=RateLimit(requests=200, per_seconds=60.0),
    client_factory=make_client,
    streams=streams,
    targets=targets,
)
"""The Wix Contacts v4 connector (200 requests/minute per app instance)."""
