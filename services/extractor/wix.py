"""Wix contacts: the incremental poller and the reconciliation scanner.

Poll cycle (cursor arithmetic in ``positions.WixCursorState``): Query Contacts with
``updatedDate $gte since - overlap`` (no cursor yet: no filter = full snapshot), sorted by
``createdDate`` ASC (``updatedDate`` cannot be sorted) and keyset-paged on ``createdDate`` (stable
under concurrent edits and deletes, unlike plain offsets). Per page, in this order:

1. read the page raw (``WixClient.query_page_raw``: one malformed contact cannot stop the page);
2. handle each contact: no id/revision/updatedDate or a wrong type -> dead letter; an
   ``(id, revision)`` in the cursor's ``seen`` or a revision the known set has (e.g. emitted by
   the webhook receiver) -> skipped; else a change event;
3. wait until Kafka acknowledged the page's events and dead letters;
4. save the cursor — the cycle's progress (keyset, highest updatedDate, start) and the identities
   within the overlap — and wait for its ack.

When the last page is handled, ``since`` moves (see ``positions``) and the cursor is saved again.
A crash or SIGTERM mid-cycle resumes the same cycle from its saved keyset.

Imports: the Wix client, the cursor store and the extractor's own modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.connectors.wix.client import MAX_PAGE, WixClient, last_page
from services.core.errors import ContractError, NotFoundError
from services.core.topics import record_key
from services.extractor.changes import Change, Origin, raw_payload, wix_observe, wix_upsert
from services.extractor.cursors import Cursor, CursorStore
from services.extractor.emitter import Emitter
from services.extractor.known import KnownRecord, KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.positions import (
    WixCursorState,
    format_ms,
    from_datetime,
    parse_ns,
    seconds_to_ns,
    wix_identity,
    wix_seen_key,
    wix_seen_keys,
)
from services.extractor.reconciler import Exists, Gone, MergedInto, Verdict
from services.extractor.reconciliation import Listed

SOURCE = "wix/contacts"
SYSTEM = "wix"
RESOURCE = "contacts"
STREAM = "poll"
FETCH_CHUNK = 100

log = logging.getLogger("tether.extractor.wix")


def _created_ns(raw: Any) -> int | None:
    value = raw.get("createdDate") if isinstance(raw, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_ns(value)
    except ValueError:
        return None


def _id_of(raw: Any) -> str | None:
    value = raw.get("id") if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and value else None


class WixPoller:
    def __init__(
        self,
        client: WixClient,
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.cursors = cursors
        self.emitter = emitter
        self.known = known
        self.metrics = metrics
        self.tenant = tenant
        self.page_size = min(page_size, MAX_PAGE)
        self.overlap_ns = seconds_to_ns(overlap_seconds)
        self.seen_limit = seen_limit
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.system = SYSTEM
        self.resource = RESOURCE

    def state(self) -> WixCursorState:
        cursor = self.cursors.get(self.tenant, SYSTEM, RESOURCE, STREAM)
        if cursor is None:
            return WixCursorState()
        return WixCursorState.decode(cursor.position, cursor.seen)

    def lag_seconds(self) -> float:
        since = self.state().since_ns
        if since is None:
            return 0.0
        return max(0.0, (from_datetime(self.clock()) - since) / 1e9)

    def _save(self, state: WixCursorState) -> None:
        position, seen = state.encode()
        self.cursors.save(Cursor(self.tenant, SYSTEM, RESOURCE, STREAM, position, seen))

    def cycle(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> int:
        """One poll cycle (all pages, or until ``should_stop``); returns the events emitted."""
        started = time.monotonic()
        stored = self.state()
        state = stored.start_cycle(from_datetime(self.clock()))
        assert state.cycle is not None
        pager = state.cycle.pager()
        at_edge = set(state.cycle.at_edge)
        floor = state.floor_ns(self.overlap_ns)
        seen = wix_seen_keys(state.seen)
        emitted = 0
        while True:
            # 1. read one page
            query: dict[str, Any] = {}
            if floor is not None:
                query["updatedDate"] = {"$gte": format_ms(floor)}
            if pager.floor is not None:
                query["createdDate"] = {"$gte": format_ms(pager.floor)}
            page = self.client.query_page_raw(
                query or None, limit=self.page_size, offset=(pager.page - 1) * self.page_size
            )
            self.metrics.poll_pages.labels(SYSTEM, RESOURCE).inc()
            # 2. handle
            batch = self.emitter.batch()
            handled: dict[str, int] = {}
            keys: list[int | None] = []
            high: int | None = None
            skipped = 0
            for raw in page.contacts:
                created = _created_ns(raw)
                keys.append(created)
                record_id = _id_of(raw)
                if pager.floor is not None and created == pager.floor and record_id in at_edge:
                    continue  # handled on an earlier page of this cycle
                try:
                    obs = wix_observe(raw)
                except ContractError as exc:
                    batch.park(raw_payload(raw), exc, self._key(record_id), source=SOURCE)
                    continue
                handled[wix_identity(obs.record_id, obs.revision, obs.updated_ns)] = obs.updated_ns
                high = obs.updated_ns if high is None else max(high, obs.updated_ns)
                if wix_seen_key(obs.record_id, obs.revision) in seen:
                    skipped += 1
                    continue
                try:
                    change = wix_upsert(raw, obs, Origin.POLL)
                except ContractError as exc:
                    batch.park(raw_payload(raw), exc, self._key(record_id), source=SOURCE)
                    continue
                if self.known.covers(change):
                    skipped += 1
                    continue
                batch.add(change)
            # 3. acknowledged before the cursor covers them
            sent = len(batch)
            batch.wait(self.ack_timeout)
            emitted += sent
            if skipped:
                self.metrics.skipped.labels(SYSTEM, RESOURCE, "POLL").inc(skipped)
            # 4. persist the cycle's progress
            previous_edge = pager.edge
            # A short page is not the last: Wix (or a proxy) may clamp the page size. Then ask
            # for what it gives from now on, so that page offsets stay contiguous.
            offset_after = (pager.page - 1) * self.page_size + len(page.contacts)
            last = last_page(len(page.contacts), offset_after, page.total)
            if not last and 0 < len(page.contacts) < self.page_size:
                self.page_size = len(page.contacts)
            more = pager.after_page(keys, self.page_size, last=last)
            edge_ids = {
                rid
                for raw, key in zip(page.contacts, keys, strict=True)
                if key is not None and key == pager.edge and (rid := _id_of(raw)) is not None
            }
            at_edge = (at_edge | edge_ids) if pager.edge == previous_edge else edge_ids
            state = state.after_page(
                pager, handled, high, at_edge, self.overlap_ns, self.seen_limit
            )
            seen |= {key.rsplit("@", 1)[0] for key in handled}
            if more:
                self._save(state)
            heartbeat()
            if not more:
                break
            if should_stop():
                self.metrics.poll_seconds.labels(SYSTEM, RESOURCE).observe(
                    time.monotonic() - started
                )
                return emitted  # the unfinished cycle resumes from the saved keyset
        # 5. the cycle read everything: move `since` (unless that changes nothing)
        done = state.complete(self.overlap_ns, self.seen_limit)
        if not done.same_as(stored, self.overlap_ns):
            self._save(done)
        self.metrics.poll_seconds.labels(SYSTEM, RESOURCE).observe(time.monotonic() - started)
        return emitted

    def _key(self, record_id: str | None) -> bytes | None:
        return record_key(self.tenant, SYSTEM, RESOURCE, record_id) if record_id else None


class WixScanner:
    """Reconciliation access to Wix contacts (``reconciler.Scanner``)."""

    def __init__(self, client: WixClient, poller: WixPoller) -> None:
        self.client = client
        self.poller = poller
        self.system = SYSTEM
        self.resource = RESOURCE

    def covered_until_ns(self) -> int | None:
        return self.poller.state().since_ns

    def scan(self) -> list[Listed]:
        listed: list[Listed] = []
        offset = 0
        while True:
            page = self.client.query_page_raw(
                None, fields=["updatedDate"], limit=MAX_PAGE, offset=offset
            )
            for raw in page.contacts:
                record_id = _id_of(raw)
                if record_id is None:
                    continue
                revision = raw.get("revision")
                key = (
                    revision
                    if isinstance(revision, int) and not isinstance(revision, bool)
                    else None
                )
                updated = raw.get("updatedDate")
                try:
                    at = parse_ns(updated) if isinstance(updated, str) else None
                except ValueError:
                    at = None
                listed.append(Listed(record_id, str(key) if key is not None else None, key, at))
            offset += len(page.contacts)
            if last_page(len(page.contacts), offset, page.total):
                return listed

    def fetch(self, items: Sequence[Listed]) -> list[Any]:
        ids = [item.record_id for item in items]
        found: list[Any] = []
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[start : start + FETCH_CHUNK]
            page = self.client.query_page_raw({"id": {"$in": chunk}}, limit=len(chunk))
            found.extend(page.contacts)
        return found

    def to_change(self, raw: Any) -> Change:
        return wix_upsert(raw, wix_observe(raw), Origin.RECONCILE)

    def verify(self, record_id: str, known: KnownRecord) -> Verdict:
        try:
            result = self.client.get(record_id)
        except NotFoundError:
            return Gone()
        except ContractError:
            return Exists()  # something answers for the id; it is not a delete
        if result.merged and result.contact.id != record_id:
            target = self.fetch([Listed(result.contact.id, None, None, None)])
            return MergedInto(result.contact.id, target[0] if target else None)
        return Exists()
