"""PowerOffice Go: the incremental poller and the reconciliation scanner of one resource.

Poll cycle (cursor arithmetic in ``positions.PoCursorState``): read
``lastChangedDateTimeOffsetGreaterThan = position - overlap`` ordered by
``LastChangedDateTimeOffset asc, Id asc`` in pages (no cursor yet: no filter = full snapshot),
keyset-paged on the stamp. Per page, in this order:

1. read the page (raw wire dicts via ``PowerOfficeClient.iter_records`` — the numbered-page path,
   which neither parses nor checks records, so one malformed record cannot stop the page);
2. handle each record: no identity/stamp or a wrong type -> dead letter; an identity in the
   cursor's ``seen`` (the overlap) or a version the known set has -> skipped; else a change event;
3. wait until Kafka acknowledged the page's events and dead letters;
4. save the cursor (newest stamp + identities within the overlap) and wait for its ack.

A crash between 3 and 4 re-reads one page at most; what it re-emits carries the same event ids.
A stop request (SIGTERM) is honoured between pages.

Imports: the PowerOffice client, the cursor store and the extractor's own modules.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.poweroffice.models import Resource, parse_timestamp
from services.core.errors import ContractError, NotFoundError
from services.core.topics import record_key
from services.extractor.changes import (
    Change,
    Origin,
    po_observe,
    po_record_id,
    po_upsert,
    raw_payload,
    version_key,
)
from services.extractor.cursors import Cursor, CursorStore
from services.extractor.emitter import Emitter
from services.extractor.known import KnownRecord, KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.parents import ParentKinds
from services.extractor.positions import (
    PO_TICK_NS,
    KeysetPager,
    PoCursorState,
    format_po,
    from_datetime,
    parse_ns,
    po_identity,
    seconds_to_ns,
    to_datetime,
)
from services.extractor.reconciler import Exists, Gone, Verdict
from services.extractor.reconciliation import Listed

SYSTEM = "poweroffice"
STREAM = "poll"
RESOURCES: tuple[str, ...] = ("employees", "customers", "contact_persons")
API_RESOURCE: dict[str, Resource] = {
    "employees": "employees",
    "customers": "customers",
    "contact_persons": "contactpersons",
}
CHANGED_ORDER = "LastChangedDateTimeOffset asc, Id asc"

log = logging.getLogger("tether.extractor.poweroffice")


class PowerOfficePoller:
    def __init__(
        self,
        client: PowerOfficeClient,
        resource: str,
        cursors: CursorStore,
        emitter: Emitter,
        known: KnownSet,
        metrics: ExtractorMetrics,
        *,
        tenant: str,
        page_size: int,
        overlap_seconds: float,
        seen_limit: int,
        ack_timeout: float = 30.0,
        parents: ParentKinds | None = None,
    ) -> None:
        self.client = client
        self.parents = parents
        self.resource = resource
        self.api_resource = API_RESOURCE[resource]
        self.cursors = cursors
        self.emitter = emitter
        self.known = known
        self.metrics = metrics
        self.tenant = tenant
        self.page_size = page_size
        self.overlap_ns = seconds_to_ns(overlap_seconds)
        self.seen_limit = seen_limit
        self.ack_timeout = ack_timeout
        self.system = SYSTEM
        self.source = f"{SYSTEM}/{resource}"

    def parent_kind(self, parent_id: str | None, raw: Any = None) -> str | None:
        """Contact persons: whose they are (``parents``); None for the other resources."""
        if self.parents is None:
            return None
        return self.parents.kind(parent_id, _created_at(raw))

    def state(self) -> PoCursorState:
        cursor = self.cursors.get(self.tenant, SYSTEM, self.resource, STREAM)
        if cursor is None:
            return PoCursorState()
        # updated_at carries when the cycle that reached the position started reading
        return PoCursorState.decode(cursor.position, cursor.seen, from_datetime(cursor.updated_at))

    def lag_seconds(self) -> float:
        position = self.state().position_ns
        if position is None:
            return 0.0
        return max(0.0, (from_datetime(datetime.now(UTC)) - position) / 1e9)

    def _listing(self, floor_ns: int | None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {}
        if floor_ns is not None:
            params["lastChangedDateTimeOffsetGreaterThan"] = format_po(floor_ns)
        return self.client.iter_records(
            self.api_resource, order_by=CHANGED_ORDER, page_size=self.page_size, params=params
        )

    def cycle(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> int:
        """One poll cycle (all pages, or until ``should_stop``); returns the events emitted."""
        started = time.monotonic()
        read_ns = from_datetime(datetime.now(UTC))  # before the first read of the cycle
        state = self.state()
        pager = KeysetPager(state.floor_ns(self.overlap_ns), PO_TICK_NS)
        listing: Iterator[dict[str, Any]] | None = None
        emitted = 0
        try:
            while True:
                # 1. read one page: a new listing when the floor moved, else the same one's next
                if listing is None or pager.page == 1:
                    _close(listing)
                    listing = self._listing(pager.floor)
                items = list(itertools.islice(listing, self.page_size))
                self.metrics.poll_pages.labels(SYSTEM, self.resource).inc()
                # 2. handle
                batch = self.emitter.batch()
                handled: dict[str, tuple[str, int]] = {}
                keys: list[int | None] = []
                skipped = 0
                for raw in items:
                    try:
                        obs = po_observe(self.resource, raw)
                    except ContractError as exc:
                        batch.park(raw_payload(raw), exc, self._key_of(raw), source=self.source)
                        keys.append(None)
                        continue
                    keys.append(obs.stamp_ns)
                    identity = po_identity(obs.record_id, obs.stamp_ns)
                    handled[identity] = (obs.stamp, obs.stamp_ns)
                    if identity in state.seen:
                        skipped += 1
                        continue
                    try:
                        change = po_upsert(
                            self.resource,
                            raw,
                            obs,
                            Origin.POLL,
                            self.parent_kind(obs.parent_id, raw),
                        )
                    except ContractError as exc:
                        batch.park(raw_payload(raw), exc, self._key_of(raw), source=self.source)
                        continue
                    if self.known.covers(change):
                        skipped += 1
                        continue
                    batch.add(change)
                # 3. the page's events are acknowledged before the cursor covers them
                sent = len(batch)
                batch.wait(self.ack_timeout)
                emitted += sent
                if skipped:
                    self.metrics.skipped.labels(SYSTEM, self.resource, "POLL").inc(skipped)
                # 4. persist the cursor (waits for its own ack)
                new_state = state.advance(handled, self.overlap_ns, self.seen_limit, read_ns)
                if not new_state.same_as(state, self.overlap_ns):
                    position, seen = new_state.encode()
                    self.cursors.save(
                        Cursor(
                            self.tenant,
                            SYSTEM,
                            self.resource,
                            STREAM,
                            position,
                            seen,
                            updated_at=to_datetime(read_ns),
                        )
                    )
                state = new_state
                heartbeat()
                # 5. next page, unless this was the last one or we are asked to stop
                if not pager.after_page(keys, self.page_size) or should_stop():
                    break
        finally:
            _close(listing)
        self.metrics.poll_seconds.labels(SYSTEM, self.resource).observe(time.monotonic() - started)
        return emitted

    def _key_of(self, raw: Any) -> bytes | None:
        try:
            return record_key(self.tenant, SYSTEM, self.resource, po_record_id(self.resource, raw))
        except ContractError:
            return None


class PowerOfficeScanner:
    """Reconciliation access to one PowerOffice resource (``reconcile.Scanner``)."""

    def __init__(
        self, client: PowerOfficeClient, resource: str, poller: PowerOfficePoller, page_size: int
    ) -> None:
        self.client = client
        self.system = SYSTEM
        self.resource = resource
        self.api_resource = API_RESOURCE[resource]
        self.poller = poller
        self.page_size = page_size

    def covered_until_ns(self) -> int | None:
        return self.poller.state().position_ns

    def scan(self) -> list[Listed]:
        fields = ["Id", "LastChangedDateTimeOffset"]
        if self.resource == "contact_persons":
            fields.append("ContactId")
        listed: list[Listed] = []
        for raw in self.client.iter_records(
            self.api_resource, fields=fields, order_by="Id asc", page_size=self.page_size
        ):
            try:
                record_id = po_record_id(self.resource, raw)
            except ContractError:
                continue  # no identity: nothing to compare (the poller dead-letters it)
            stamp = raw.get("LastChangedDateTimeOffset")
            try:
                at = parse_ns(stamp) if isinstance(stamp, str) else None
            except ValueError:
                at = None
            parent = raw.get("ContactId")
            listed.append(
                Listed(
                    record_id,
                    stamp if isinstance(stamp, str) else None,
                    version_key(SYSTEM, stamp) if isinstance(stamp, str) else None,
                    at,
                    str(parent)
                    if isinstance(parent, int) and not isinstance(parent, bool)
                    else None,
                )
            )
        return listed

    def _get(self, record_id: str, parent_id: str | None) -> dict[str, Any]:
        contact = int(parent_id) if parent_id is not None and parent_id.isdigit() else None
        if self.api_resource == "contactpersons" and contact is None:
            raise NotFoundError("contact person without a known ContactId", system=SYSTEM)
        return self.client.get_record(self.api_resource, int(record_id), contact_id=contact)

    def fetch(self, items: Sequence[Listed]) -> list[Any]:
        found: list[Any] = []
        for item in items:
            try:
                found.append(self._get(item.record_id, item.parent_id))
            except NotFoundError:
                continue
        return found

    def to_change(self, raw: Any) -> Change:
        obs = po_observe(self.resource, raw)
        return po_upsert(
            self.resource, raw, obs, Origin.RECONCILE, self.poller.parent_kind(obs.parent_id, raw)
        )

    def verify(self, record_id: str, known: KnownRecord) -> Verdict:
        if not record_id.isdigit():
            return Exists()
        try:
            self._get(record_id, known.parent_id)
        except NotFoundError:
            return Gone()
        return Exists()


def _created_at(raw: Any) -> datetime | None:
    """A contact person's ``CreatedDateTimeOffset`` (None when absent or unreadable)."""
    value = raw.get("CreatedDateTimeOffset") if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _close(listing: Iterator[Any] | None) -> None:
    close = getattr(listing, "close", None)
    if close is not None:
        close()
