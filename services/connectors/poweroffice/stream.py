"""Reading PowerOffice Go incrementally: the ``SourceStream`` of one resource and its cursor.

**Pages.** ``lastChangedDateTimeOffsetGreaterThan=<floor>`` ordered by
``LastChangedDateTimeOffset asc, Id asc`` (no cursor yet: no filter, a full snapshot), read raw
through ``ResourceAccessor.list_wire``'s numbered-page path (no parsing, no stamp check: one
malformed record cannot stop a page) and keyset-paged on the stamp: the next floor is the page's
top stamp - 100 ns; a page of one stamp takes the next ``PageNumber`` under the same floor.

**Cursor** (``cursor.py``, pure; opaque JSON for the caller): ``position`` = the newest
``LastChangedDateTimeOffset`` handled, **as sent** (stamps are compared as integer nanoseconds:
7 digits = 100 ns, never as ``datetime``); ``read`` = when the read that reached it started;
``seen`` = the identities ``"<Id>@<stamp>"`` of the records at or after the next floor.

**Overlap.** A record not yet visible to a read that started at ``read`` has a stamp after
``read - overlap`` (commit delay, clock skew, a lagging read replica). The next read's floor is
``min(position - 100 ns, read - overlap)``: it re-reads the overlap right after activity and only
the position itself once the clock is past it, so a bulk import is not re-read on every cycle.
What it re-reads is recognised by ``seen`` and counted in ``Page.repeated``. A page's cursor is
the one it was given when nothing the next read depends on changed (the caller saves nothing).

Cursors stored by the extractor's first version (position, seen and the read time in three
fields) arrive wrapped by ``services.core.connector.v1_cursor`` and resume exactly.

Imports: the PowerOffice client, ``services.core`` — never the simulator.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from services.connectors.poweroffice.client import MAX_PAGE_SIZE, PowerOfficeClient
from services.connectors.poweroffice.cursor import (
    PO_TICK_NS,
    PoCursorState,
    format_po,
    po_identity,
)
from services.connectors.poweroffice.models import RESOURCE_SPECS, Resource
from services.core.connector import (
    Gone,
    Listed,
    Observed,
    Page,
    Presence,
    Present,
    RecordKey,
    StreamOptions,
    WireRecord,
)
from services.core.errors import ContractError, NotFoundError
from services.core.stream_positions import KeysetPager, from_datetime, parse_ns, seconds_to_ns

SYSTEM: Final = "poweroffice"
STAMP: Final = "LastChangedDateTimeOffset"
CHANGED_ORDER: Final = "LastChangedDateTimeOffset asc, Id asc"
API_RESOURCE: Final[dict[str, Resource]] = {spec.name: spec.api for spec in RESOURCE_SPECS}
"""Engine resource name -> API resource name (``models.RESOURCE_SPECS``)."""


def record_id_of(resource: str, raw: object) -> str:
    if not isinstance(raw, Mapping):
        raise ContractError(f"poweroffice {resource}: record is not an object")
    value = raw.get("Id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"poweroffice {resource}: record has no integer Id")
    return str(value)


def _int_or_none(value: object) -> str | None:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


class PowerOfficeRecords:
    """``RecordReader`` of one PowerOffice resource: identity, version and change time of a
    record as sent (pure: no request)."""

    def __init__(self, resource: str) -> None:
        self._resource = resource
        self.api_resource = API_RESOURCE[resource]

    @property
    def resource(self) -> str:
        return self._resource

    def observe(self, record: object) -> Observed:
        record_id = record_id_of(self._resource, record)
        assert isinstance(record, Mapping)
        stamp = record.get(STAMP)
        try:
            if not isinstance(stamp, str):
                raise ValueError("missing")
            stamp_ns = parse_ns(stamp)
        except ValueError:
            raise ContractError(
                f"poweroffice {self._resource} Id={record_id}: {STAMP} missing or invalid"
            ) from None
        parent = _int_or_none(record.get("ContactId")) if self._has_parent else None
        return Observed(RecordKey(record_id, parent), stamp, stamp_ns, stamp_ns)

    @property
    def _has_parent(self) -> bool:
        return self.api_resource == "contactpersons"

    def version_order(self, version: str | None) -> int | None:
        if version is None:
            return None
        try:
            return parse_ns(version)
        except ValueError:
            return None

    def canonical_version(self, version: str | None) -> str | None:
        """Stamps in one spelling (7 digits, UTC, ``Z``)."""
        if version is None:
            return None
        try:
            return format_po(parse_ns(version))
        except ValueError:
            return version

    def key_of(self, record: Mapping[str, Any]) -> RecordKey:
        record_id = record_id_of(self._resource, record)
        parent = _int_or_none(record.get("ContactId")) if self._has_parent else None
        return RecordKey(record_id, parent)

    def version_of(self, record: Mapping[str, Any]) -> str:
        stamp = record.get(STAMP)
        if not isinstance(stamp, str):
            raise ContractError(f"{SYSTEM} {self._resource}: record without {STAMP}")
        return stamp


class PowerOfficeStream(PowerOfficeRecords):
    """``SourceStream`` of one PowerOffice resource (see the module docstring)."""

    def __init__(
        self, client: PowerOfficeClient, resource: str, options: StreamOptions | None = None
    ) -> None:
        super().__init__(resource)
        options = options or StreamOptions()
        self.client = client
        self._records = client.resource(self.api_resource)
        self.overlap_ns = seconds_to_ns(options.overlap_seconds)
        self.seen_limit = options.seen_limit
        self._now = options.clock or (lambda: datetime.now(UTC))

    def _listing(self, floor_ns: int | None, page_size: int) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {}
        if floor_ns is not None:
            params["lastChangedDateTimeOffsetGreaterThan"] = format_po(floor_ns)
        return self._records.list_wire(order_by=CHANGED_ORDER, page_size=page_size, params=params)

    def pages(self, cursor: str | None, page_size: int) -> Iterator[Page]:
        read_ns = from_datetime(self._now())  # before the first request of this read
        state = PoCursorState.decode(cursor)
        pager = KeysetPager(state.floor_ns(self.overlap_ns), PO_TICK_NS)
        listing: Iterator[dict[str, Any]] | None = None
        try:
            while True:
                # A new listing when the floor moved, else the same listing's next page.
                if listing is None or pager.page == 1:
                    _close(listing)
                    listing = self._listing(pager.floor, page_size)
                records: list[WireRecord] = []
                rejected: list[Any] = []
                handled: dict[str, tuple[str, int]] = {}
                keys: list[int | None] = []
                repeated = 0
                for raw in itertools.islice(listing, page_size):
                    if not isinstance(raw, dict):
                        rejected.append(raw)
                        keys.append(None)
                        continue
                    try:
                        observed = self.observe(raw)
                    except ContractError:
                        records.append(raw)  # the caller dead-letters it
                        keys.append(None)
                        continue
                    keys.append(observed.changed_ns)
                    identity = po_identity(observed.key.id, observed.changed_ns)
                    handled[identity] = (observed.version, observed.changed_ns)
                    if identity in state.seen:
                        repeated += 1
                        continue
                    records.append(raw)
                advanced = state.advance(handled, self.overlap_ns, self.seen_limit, read_ns)
                if not advanced.same_as(state, self.overlap_ns):
                    cursor = advanced.encode()
                state = advanced
                more = pager.after_page(keys, page_size)
                yield Page(tuple(records), cursor, not more, tuple(rejected), repeated)
                if not more:
                    return
        finally:
            _close(listing)

    def covered_until(self, cursor: str | None) -> int | None:
        return PoCursorState.decode(cursor).position_ns

    def _get(self, key: RecordKey) -> dict[str, Any]:
        contact = int(key.parent_id) if key.parent_id and key.parent_id.isdigit() else None
        if self._has_parent and contact is None:
            raise NotFoundError("contact person without a known ContactId", system=SYSTEM)
        return self._records.get_wire(int(key.id), parent_id=contact if self._has_parent else None)

    def get(self, key: RecordKey) -> WireRecord | None:
        if not key.id.isdigit():
            raise NotFoundError(f"{SYSTEM}: id {key.id!r} is not a PowerOffice id", system=SYSTEM)
        if self._has_parent and key.parent_id is None:
            raise ValueError("a contact person is read with its parent (ContactId)")
        try:
            return self._get(key)
        except NotFoundError:
            return None

    def get_many(self, keys: Sequence[RecordKey]) -> list[WireRecord]:
        found: list[WireRecord] = []
        for key in keys:
            try:
                found.append(self._get(key))
            except NotFoundError:
                continue
        return found

    def presence(self, key: RecordKey) -> Presence:
        if not key.id.isdigit():
            return Present()
        try:
            self._get(key)
        except NotFoundError:
            return Gone()
        return Present()

    def scan(self, page_size: int) -> Iterator[Listed]:
        fields = ["Id", STAMP]
        if self._has_parent:
            fields.append("ContactId")
        for raw in self._records.list_wire(
            fields=fields,
            order_by="Id asc",
            page_size=min(page_size, MAX_PAGE_SIZE),
        ):
            try:
                record_id = record_id_of(self._resource, raw)
            except ContractError:
                continue  # no identity: nothing to compare (the poller dead-letters it)
            stamp = raw.get(STAMP)
            version = stamp if isinstance(stamp, str) else None
            parent = _int_or_none(raw.get("ContactId")) if self._has_parent else None
            yield Listed(RecordKey(record_id, parent), version, self.version_order(version))


def _close(listing: Iterator[Any] | None) -> None:
    close = getattr(listing, "close", None)
    if close is not None:
        close()
