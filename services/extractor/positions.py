"""Cursor arithmetic of the pollers: exact timestamps, overlap windows, de-dup sets, keyset paging.

Pure: imports no I/O library (standard library only); the pollers feed it pages and persist what
it returns.

**Timestamps** are handled as integer nanoseconds since the epoch (:func:`parse_ns`), never as
``datetime`` (which keeps 6 digits): PowerOffice stamps carry 7 fractional digits (100 ns) and
two of them may differ only in the 7th.

**The overlap floor.** A record a poll could not see yet (a commit later than its stamp, clock
skew) carries a stamp after ``read - overlap``, where ``read`` is the local time the cycle started
reading (``overlap`` must cover commit delay plus clock skew). So the next cycle reads from
``min(position, read - overlap)``: right after a burst it re-reads the overlap, and once the read
is ``overlap`` past the position it re-reads only the position itself — a bulk import sharing a
few seconds of stamps is not read again on every cycle.

**PowerOffice** (:class:`PoCursorState`): the position is the exact ``LastChangedDateTimeOffset``
string of the newest record handled, ``read`` the start of the cycle that reached it (carried in
the cursor's ``updated_at``); a cycle reads ``lastChangedDateTimeOffsetGreaterThan = min(position
- 100 ns, read - overlap)`` sorted by ``(LastChangedDateTimeOffset, Id)``. What it re-reads is
recognised by its identity ``"<Id>@<stamp>"`` in ``seen``, which holds the identities at or after
that floor. Because the sort key is the filter key, the position may move after every page.

**Wix** (:class:`WixCursorState`): contacts can only be filtered by ``updatedDate`` (ms, not
unique) and sorted by ``createdDate``, so a position taken from a page would skip what later pages
hold. A cycle therefore keeps its base (``since``, ``read``) until it completes and records its
progress (:class:`WixCycle`: keyset on ``createdDate``, highest ``updatedDate`` seen, start time)
in the cursor after each page. On completion ``since = max(since, min(highest updatedDate seen,
cycle start))`` and ``read`` = the cycle start: every change committed after the cycle started is
at or after the start (minus skew), every earlier one was read by the cycle. The next cycle reads
``updatedDate $gte min(since, read - overlap)``. ``seen`` holds ``"<id>@<revision>@<updatedDate>"``.

**Keyset paging** (:class:`KeysetPager`): the next page starts at the last page's top key (minus
``step`` for an exclusive filter); a page that did not move past the previous top (many records
sharing one key) takes the next page number under the same floor.

Steps are numbered in the pollers where order matters.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000
PO_TICK_NS = 100  # PowerOffice timestamp resolution

_TIMESTAMP_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\s*$"
)


def parse_ns(value: str) -> int:
    """ISO-8601 (``T`` or space, 0-9 fractional digits, ``Z``/offset/none = UTC) -> epoch ns.

    Exact to the nanosecond; raises ``ValueError`` for anything else.
    """
    match = _TIMESTAMP_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
    )
    seconds = calendar.timegm(moment.utctimetuple())
    if offset and offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        shift = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        seconds -= shift if offset[0] == "+" else -shift
    return seconds * NS_PER_SECOND + int((fraction or "0").ljust(9, "0"))


def format_po(ns: int) -> str:
    """PowerOffice's form: UTC, 7 fractional digits, ``Z`` (rounded down to 100 ns)."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // PO_TICK_NS:07d}Z"


def format_ms(ns: int) -> str:
    """Wix's form: UTC, milliseconds, ``Z`` (rounded down to the millisecond)."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // NS_PER_MS:03d}Z"


def to_datetime(ns: int) -> datetime:
    """Epoch ns -> aware UTC datetime (microseconds; for the Avro ``timestamp-micros`` fields)."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def from_datetime(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return calendar.timegm(moment.utctimetuple()) * NS_PER_SECOND + moment.microsecond * 1000


def seconds_to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)


# -- keyset paging --------------------------------------------------------------------------------


@dataclass
class KeysetPager:
    """Where the next page starts: ``floor`` (None: no lower bound) and ``page`` under it.

    ``step`` is subtracted from the top key to form the next floor: 100 ns for PowerOffice's
    exclusive ``GreaterThan`` filter (so records sharing the top stamp are read again and
    recognised as seen), 0 for Wix's inclusive ``$gte``.
    """

    floor: int | None
    step: int
    page: int = 1
    edge: int | None = None

    def after_page(
        self, keys: Iterable[int | None], page_size: int, last: bool | None = None
    ) -> bool:
        """Advance after a page whose records had these sort keys; False when it was the last.

        ``last`` says whether the source is done (an empty page, a counted total reached); when
        the source cannot tell, a page shorter than ``page_size`` is taken as the last. A server
        that clamps the page size makes short pages that are not the last: pass ``last``."""
        keys = list(keys)
        if (len(keys) < page_size) if last is None else last:
            return False
        valid = [k for k in keys if k is not None]
        if not valid:
            self.page += 1
            return True
        top = max(valid)
        if self.edge is not None and top <= self.edge:
            # No progress past the previous top (a page of one key): same floor, next page.
            self.page += 1
            return True
        self.edge = top
        self.floor = top - self.step
        self.page = 1
        return True


# -- de-duplication sets --------------------------------------------------------------------------


def window(entries: Mapping[str, int], lower_ns: int | None, limit: int) -> dict[str, int]:
    """The entries at or after ``lower_ns`` (all when None), at most ``limit`` (newest kept).

    Dropping an entry can only cause a re-emission (a duplicate), never a loss.
    """
    kept = {k: at for k, at in entries.items() if lower_ns is None or at >= lower_ns}
    if len(kept) > limit:
        newest = sorted(kept.items(), key=lambda item: item[1], reverse=True)[:limit]
        kept = dict(newest)
    return kept


def po_identity(record_id: str, stamp_ns: int) -> str:
    return f"{record_id}@{format_po(stamp_ns)}"


def wix_identity(record_id: str, revision: int, updated_ns: int) -> str:
    return f"{record_id}@{revision}@{format_ms(updated_ns)}"


def _po_seen_at(entry: str) -> int | None:
    _, _, stamp = entry.rpartition("@")
    try:
        return parse_ns(stamp)
    except ValueError:
        return None


def _wix_seen_at(entry: str) -> int | None:
    parts = entry.rsplit("@", 2)
    if len(parts) != 3:
        return None
    try:
        return parse_ns(parts[2])
    except ValueError:
        return None


def wix_seen_key(record_id: str, revision: int) -> str:
    """The part of a Wix identity that de-duplicates: ``"<id>@<revision>"``."""
    return f"{record_id}@{revision}"


def wix_seen_keys(seen: Mapping[str, int]) -> set[str]:
    return {entry.rsplit("@", 1)[0] for entry in seen}


# -- PowerOffice cursor ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoCursorState:
    """``position``: the exact stamp string of the newest record handled (None: no snapshot yet);
    ``read_ns``: when the cycle that reached it started reading; ``seen``: identity -> stamp."""

    position: str | None = None
    seen: dict[str, int] = field(default_factory=dict)
    read_ns: int | None = None

    @property
    def position_ns(self) -> int | None:
        return parse_ns(self.position) if self.position is not None else None

    def floor_ns(self, overlap_ns: int) -> int | None:
        """The exclusive lower bound of the next cycle's first page (None: full snapshot)."""
        position = self.position_ns
        if position is None:
            return None
        if self.read_ns is None:
            return position - overlap_ns
        return min(position - PO_TICK_NS, self.read_ns - overlap_ns)

    @classmethod
    def decode(
        cls, position: str | None, seen: Iterable[str], read_ns: int | None = None
    ) -> PoCursorState:
        if position is not None:
            try:
                parse_ns(position)
            except ValueError:
                position = None  # unreadable: start over with a snapshot (re-reads, never skips)
        entries: dict[str, int] = {}
        for entry in seen:
            at = _po_seen_at(entry)
            if at is not None:
                entries[entry] = at
        return cls(position, entries, read_ns if position is not None else None)

    def encode(self) -> tuple[str, tuple[str, ...]]:
        """(position, seen) for the ``Cursor`` record (``read_ns`` goes in its ``updated_at``)."""
        return self.position or "", tuple(sorted(self.seen, key=lambda k: (self.seen[k], k)))

    def advance(
        self,
        handled: Mapping[str, tuple[str, int]],
        overlap_ns: int,
        limit: int,
        read_ns: int,
    ) -> PoCursorState:
        """After a page of the cycle that started reading at ``read_ns``: ``handled`` maps
        identity -> (raw stamp, stamp ns) of every record the page held (emitted, already known
        or dead-lettered)."""
        position, position_ns = self.position, self.position_ns
        for raw, at in handled.values():
            if position_ns is None or at > position_ns:
                position, position_ns = raw, at
        merged = dict(self.seen)
        merged.update({identity: at for identity, (_, at) in handled.items()})
        state = PoCursorState(position, merged, read_ns if position is not None else None)
        floor = state.floor_ns(overlap_ns)  # exclusive: what the next cycle re-reads is after it
        return replace(state, seen=window(merged, None if floor is None else floor + 1, limit))

    def same_as(self, other: PoCursorState, overlap_ns: int) -> bool:
        """Whether saving ``self`` over ``other`` would change what the next cycle reads."""
        return (
            self.position == other.position
            and self.seen.keys() == other.seen.keys()
            and self.floor_ns(overlap_ns) == other.floor_ns(overlap_ns)
        )


# -- Wix cursor -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WixCycle:
    """Progress of a Wix poll cycle that has not completed (persisted after every page)."""

    started_ns: int
    high_ns: int | None = None  # highest updatedDate read in this cycle
    pager_floor: int | None = None  # createdDate keyset floor (inclusive)
    pager_page: int = 1
    pager_edge: int | None = None
    at_edge: tuple[str, ...] = ()  # ids handled whose createdDate equals the edge

    def pager(self) -> KeysetPager:
        return KeysetPager(self.pager_floor, 0, self.pager_page, self.pager_edge)

    def with_page(
        self, pager: KeysetPager, high_ns: int | None, at_edge: Iterable[str]
    ) -> WixCycle:
        high = self.high_ns
        if high_ns is not None and (high is None or high_ns > high):
            high = high_ns
        return replace(
            self,
            high_ns=high,
            pager_floor=pager.floor,
            pager_page=pager.page,
            pager_edge=pager.edge,
            at_edge=tuple(sorted(set(at_edge))),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "started": format_ms(self.started_ns),
            "high": format_ms(self.high_ns) if self.high_ns is not None else None,
            "floor": format_ms(self.pager_floor) if self.pager_floor is not None else None,
            "page": self.pager_page,
            "edge": format_ms(self.pager_edge) if self.pager_edge is not None else None,
            "at_edge": list(self.at_edge),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WixCycle:
        def ns(key: str) -> int | None:
            value = data.get(key)
            return parse_ns(value) if isinstance(value, str) else None

        started = ns("started")
        if started is None:
            raise ValueError("cycle without start")
        page = data.get("page")
        at_edge = data.get("at_edge") or []
        return cls(
            started_ns=started,
            high_ns=ns("high"),
            pager_floor=ns("floor"),
            pager_page=page if isinstance(page, int) and page >= 1 else 1,
            pager_edge=ns("edge"),
            at_edge=tuple(str(x) for x in at_edge),
        )


@dataclass(frozen=True)
class WixCursorState:
    """``since_ns``: every change before it was emitted (None: no snapshot yet); ``read_ns``: when
    the cycle that set it started; ``cycle``: the unfinished cycle, if any; ``seen``: identity ->
    updatedDate (ns)."""

    since_ns: int | None = None
    cycle: WixCycle | None = None
    seen: dict[str, int] = field(default_factory=dict)
    read_ns: int | None = None

    def floor_ns(self, overlap_ns: int) -> int | None:
        """The inclusive ``updatedDate`` lower bound of the current cycle (None: snapshot)."""
        if self.since_ns is None:
            return None
        if self.read_ns is None:
            return self.since_ns - overlap_ns
        return min(self.since_ns, self.read_ns - overlap_ns)

    def start_cycle(self, now_ns: int) -> WixCursorState:
        if self.cycle is not None:
            return self  # resume the unfinished one (its start stays: nothing after it is lost)
        return replace(self, cycle=WixCycle(started_ns=now_ns))

    def settled_since(self) -> int | None:
        """The ``since`` the current cycle guarantees so far (a lower bound of its final one)."""
        if self.cycle is None:
            return self.since_ns
        high = self.cycle.high_ns
        candidate = self.cycle.started_ns if high is None else min(high, self.cycle.started_ns)
        if self.since_ns is None:
            return candidate if high is not None else None
        return max(self.since_ns, candidate) if high is not None else self.since_ns

    def after_page(
        self,
        pager: KeysetPager,
        handled: Mapping[str, int],
        high_ns: int | None,
        at_edge: Iterable[str],
        overlap_ns: int,
        limit: int,
    ) -> WixCursorState:
        """After a page (``handled``: identity -> updatedDate ns of every record it held)."""
        assert self.cycle is not None
        cycle = self.cycle.with_page(pager, high_ns, at_edge)
        state = replace(self, cycle=cycle)
        merged = dict(self.seen)
        merged.update(handled)
        settled = state.settled_since()
        lower = None if settled is None else min(settled, cycle.started_ns - overlap_ns)
        return replace(state, seen=window(merged, lower, limit))

    def complete(self, overlap_ns: int, limit: int) -> WixCursorState:
        """The cycle read everything: move ``since`` and drop the progress."""
        assert self.cycle is not None
        high, started = self.cycle.high_ns, self.cycle.started_ns
        candidate = started if high is None else min(high, started)
        since = candidate if self.since_ns is None else max(self.since_ns, candidate)
        done = WixCursorState(since, None, self.seen, started)
        return replace(done, seen=window(self.seen, done.floor_ns(overlap_ns), limit))

    def same_as(self, other: WixCursorState, overlap_ns: int) -> bool:
        """Whether saving ``self`` over ``other`` would change what the next cycle reads."""
        return (
            self.cycle is None
            and other.cycle is None
            and self.since_ns == other.since_ns
            and self.seen.keys() == other.seen.keys()
            and self.floor_ns(overlap_ns) == other.floor_ns(overlap_ns)
        )

    def encode(self) -> tuple[str, tuple[str, ...]]:
        position = {
            "since": format_ms(self.since_ns) if self.since_ns is not None else None,
            "read": format_ms(self.read_ns) if self.read_ns is not None else None,
            "cycle": self.cycle.as_json() if self.cycle is not None else None,
        }
        seen = tuple(sorted(self.seen, key=lambda k: (self.seen[k], k)))
        return json.dumps(position, separators=(",", ":"), sort_keys=True), seen

    @classmethod
    def decode(cls, position: str | None, seen: Iterable[str]) -> WixCursorState:
        since: int | None = None
        read: int | None = None
        cycle: WixCycle | None = None
        if position:
            try:
                data = json.loads(position)
                if isinstance(data.get("since"), str):
                    since = parse_ns(data["since"])
                if isinstance(data.get("read"), str):
                    read = parse_ns(data["read"])
                if isinstance(data.get("cycle"), dict):
                    cycle = WixCycle.from_json(data["cycle"])
            except (ValueError, AttributeError, TypeError):
                since, read, cycle = None, None, None  # unreadable: snapshot again (re-reads)
        entries: dict[str, int] = {}
        for entry in seen:
            at = _wix_seen_at(entry)
            if at is not None:
                entries[entry] = at
        return cls(since, cycle, entries, read)
