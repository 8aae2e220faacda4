"""Reading Wix contacts incrementally: the ``SourceStream`` and its cursor.

**A pass** queries Contacts with ``updatedDate $gte <floor>`` (no cursor yet: no filter, a full
snapshot), sorted by ``createdDate`` ASC (``updatedDate`` cannot be sorted) and keyset-paged on
``createdDate`` (stable under concurrent edits and deletes, unlike offsets); the ids handled at
the keyset edge are remembered. Contacts are read raw (``WixClient.query_page_raw``: one malformed
contact cannot stop a page). A short page is not the last (Wix or a proxy may clamp the page
size): the pass then asks for what it gets, so that offsets stay contiguous.

**Cursor** (``cursor.py``, pure; opaque JSON for the caller): because the sort key is not the
filter key, a pass keeps its base (``since``, ``read``) until it completes and records its
progress after every page (:class:`WixCycle`: keyset, highest ``updatedDate`` read, start). On
completion ``since = max(since, min(highest updatedDate read, pass start))`` and ``read`` = the
pass start; the next floor is ``min(since, read - overlap)``. Updates made during a long pass are
after its start, so none is skipped. ``seen`` holds ``"<id>@<revision>@<updatedDate>"`` of the
contacts within the overlap: a contact read again at a revision in it is counted in
``Page.repeated``, not returned.

Cursors stored by the extractor's first version (this JSON without ``seen``, which was stored
beside it) arrive wrapped by ``services.core.connector.v1_cursor`` and resume exactly.

Imports: the Wix client, ``services.core`` — never the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from services.connectors.wix.client import MAX_PAGE, WixClient, last_page
from services.connectors.wix.cursor import (
    WixCursorState,
    format_ms,
    wix_identity,
    wix_seen_key,
    wix_seen_keys,
)
from services.core.connector import (
    Gone,
    Listed,
    MergedInto,
    Observed,
    Page,
    Presence,
    Present,
    RecordKey,
    StreamOptions,
    WireRecord,
)
from services.core.errors import ContractError, NotFoundError
from services.core.stream_positions import (
    from_datetime,
    parse_ns,
    seconds_to_ns,
)

SYSTEM: Final = "wix"
RESOURCE: Final = "contacts"
FETCH_CHUNK: Final = 100
"""Ids per ``id $in`` query when drifted contacts are read back."""


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


def observe_contact(raw: object) -> Observed:
    """Identity, revision and ``updatedDate`` of a contact (``ContractError`` if it has none)."""
    if not isinstance(raw, Mapping):
        raise ContractError("wix contact: record is not an object")
    record_id = raw.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise ContractError("wix contact: record has no id")
    revision = raw.get("revision")
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise ContractError(f"wix contact {record_id}: revision missing or not an integer")
    try:
        updated = raw.get("updatedDate")
        if not isinstance(updated, str):
            raise ValueError("missing")
        updated_ns = parse_ns(updated)
    except ValueError:
        raise ContractError(f"wix contact {record_id}: updatedDate missing or invalid") from None
    return Observed(RecordKey(record_id), str(revision), revision, updated_ns)


class WixContacts:
    """``RecordReader`` of Wix contacts: id, revision and ``updatedDate`` as sent (pure)."""

    @property
    def resource(self) -> str:
        return RESOURCE

    def observe(self, record: object) -> Observed:
        return observe_contact(record)

    def version_order(self, version: str | None) -> int | None:
        if version is None:
            return None
        try:
            return int(version)
        except ValueError:
            return None

    def canonical_version(self, version: str | None) -> str | None:
        return version

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


class WixStream(WixContacts):
    """``SourceStream`` of Wix contacts (see the module docstring)."""

    def __init__(self, client: WixClient, options: StreamOptions | None = None) -> None:
        options = options or StreamOptions()
        self.client = client
        self.overlap_ns = seconds_to_ns(options.overlap_seconds)
        self.seen_limit = options.seen_limit
        self._now: Callable[[], datetime] = options.clock or (lambda: datetime.now(UTC))
        self._clamped: int | None = None
        """The page size the server was seen to clamp to (asked for from then on)."""

    def pages(self, cursor: str | None, page_size: int) -> Iterator[Page]:
        stored = WixCursorState.decode(cursor)
        state = stored.start_cycle(from_datetime(self._now()))
        assert state.cycle is not None
        pager = state.cycle.pager()
        at_edge = set(state.cycle.at_edge)
        floor = state.floor_ns(self.overlap_ns)
        seen = wix_seen_keys(state.seen)
        size = min(page_size, MAX_PAGE, self._clamped or MAX_PAGE)
        while True:
            query: dict[str, Any] = {}
            if floor is not None:
                query["updatedDate"] = {"$gte": format_ms(floor)}
            if pager.floor is not None:
                query["createdDate"] = {"$gte": format_ms(pager.floor)}
            page = self.client.query_page_raw(
                query or None, limit=size, offset=(pager.page - 1) * size
            )
            records: list[WireRecord] = []
            rejected: list[Any] = []
            handled: dict[str, int] = {}
            keys: list[int | None] = []
            high: int | None = None
            repeated = 0
            for raw in page.contacts:
                created = _created_ns(raw)
                keys.append(created)
                record_id = _id_of(raw)
                if pager.floor is not None and created == pager.floor and record_id in at_edge:
                    continue  # returned on an earlier page of this pass
                if not isinstance(raw, dict):
                    rejected.append(raw)
                    continue
                try:
                    observed = observe_contact(raw)
                except ContractError:
                    records.append(raw)  # the caller dead-letters it
                    continue
                revision = observed.order
                handled[wix_identity(observed.key.id, revision, observed.changed_ns)] = (
                    observed.changed_ns
                )
                high = observed.changed_ns if high is None else max(high, observed.changed_ns)
                if wix_seen_key(observed.key.id, revision) in seen:
                    repeated += 1
                    continue
                records.append(raw)
            previous_edge = pager.edge
            offset_after = (pager.page - 1) * size + len(page.contacts)
            last = last_page(len(page.contacts), offset_after, page.total)
            if not last and 0 < len(page.contacts) < size:
                size = self._clamped = len(page.contacts)
            more = pager.after_page(keys, size, last=last)
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
                cursor = state.encode()  # the unfinished pass resumes from its keyset
                yield Page(tuple(records), cursor, False, tuple(rejected), repeated)
                continue
            # The pass read everything: move `since` (unless that changes nothing).
            done = state.complete(self.overlap_ns, self.seen_limit)
            if not done.same_as(stored, self.overlap_ns):
                cursor = done.encode()
            yield Page(tuple(records), cursor, True, tuple(rejected), repeated)
            return

    def covered_until(self, cursor: str | None) -> int | None:
        return WixCursorState.decode(cursor).since_ns

    def get(self, key: RecordKey) -> WireRecord | None:
        try:
            result = self.client.get(key.id)
        except NotFoundError:
            return None
        return result.contact.to_wire()

    def get_many(self, keys: Sequence[RecordKey]) -> list[WireRecord]:
        ids = [key.id for key in keys]
        found: list[WireRecord] = []
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[start : start + FETCH_CHUNK]
            page = self.client.query_page_raw({"id": {"$in": chunk}}, limit=len(chunk))
            found.extend(page.contacts)
        return found

    def presence(self, key: RecordKey) -> Presence:
        """Get answers 404 for a deleted contact and ``MERGED`` (the target) for a merged one."""
        try:
            result = self.client.get(key.id)
        except NotFoundError:
            return Gone()
        except ContractError:
            return Present()  # something answers for the id; it is not a delete
        if result.merged and result.contact.id != key.id:
            target = RecordKey(result.contact.id)
            records = self.get_many([target])
            return MergedInto(target, records[0] if records else None)
        return Present()

    def scan(self, page_size: int) -> Iterator[Listed]:
        offset = 0
        listed: set[str] = set()
        while True:
            page = self.client.query_page_raw(
                None, fields=["updatedDate"], limit=min(page_size, MAX_PAGE), offset=offset
            )
            for raw in page.contacts:
                record_id = _id_of(raw)
                if record_id is None or record_id in listed:
                    continue
                listed.add(record_id)
                revision = raw.get("revision")
                version = (
                    str(revision)
                    if isinstance(revision, int) and not isinstance(revision, bool)
                    else None
                )
                updated = raw.get("updatedDate")
                try:
                    at = parse_ns(updated) if isinstance(updated, str) else None
                except ValueError:
                    at = None
                yield Listed(RecordKey(record_id), version, at)
            offset += len(page.contacts)
            if last_page(len(page.contacts), offset, page.total):
                return
