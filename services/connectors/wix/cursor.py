"""The Wix stream's cursor (pure: standard library and ``services.core`` positions only).

A pass keeps its base (``since``, ``read``) until it completes and records its progress after
every page (:class:`WixCycle`: keyset on ``createdDate``, highest ``updatedDate`` read, start).
On completion ``since = max(since, min(highest updatedDate read, pass start))`` and ``read`` =
the pass start; the next floor is ``min(since, read - overlap)``. ``seen`` holds
``"<id>@<revision>@<updatedDate>"`` of the contacts within the overlap. Encoded as JSON: the
caller stores it as an opaque string. A cursor stored by the extractor's first version (this
JSON without ``seen``, which was stored beside it) arrives wrapped by
``services.core.connector.v1_cursor`` and decodes to the state it held.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.core.connector import open_v1_cursor
from services.core.stream_positions import (
    NS_PER_MS,
    NS_PER_SECOND,
    KeysetPager,
    parse_ns,
    window,
)


def format_ms(ns: int) -> str:
    """Wix's form: UTC, milliseconds, ``Z`` (rounded down to the millisecond)."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // NS_PER_MS:03d}Z"


def wix_identity(record_id: str, revision: int, updated_ns: int) -> str:
    return f"{record_id}@{revision}@{format_ms(updated_ns)}"


def wix_seen_key(record_id: str, revision: int) -> str:
    """The part of a Wix identity that de-duplicates: ``"<id>@<revision>"``."""
    return f"{record_id}@{revision}"


def wix_seen_keys(seen: Mapping[str, int]) -> set[str]:
    return {entry.rsplit("@", 1)[0] for entry in seen}


def _seen_at(entry: str) -> int | None:
    parts = entry.rsplit("@", 2)
    if len(parts) != 3:
        return None
    try:
        return parse_ns(parts[2])
    except ValueError:
        return None


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

    def encode(self) -> str:
        return json.dumps(
            {
                "since": format_ms(self.since_ns) if self.since_ns is not None else None,
                "read": format_ms(self.read_ns) if self.read_ns is not None else None,
                "cycle": self.cycle.as_json() if self.cycle is not None else None,
                "seen": [entry for _, entry in sorted((at, k) for k, at in self.seen.items())],
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def decode(cls, cursor: str | None) -> WixCursorState:
        """From a cursor this stream made, or one the extractor's first version stored (its
        position is the same JSON without ``seen``, which was stored beside it)."""
        seen: Iterable[str] = ()
        v1 = open_v1_cursor(cursor)
        if v1 is not None:
            cursor, seen = v1.position, v1.seen
        since: int | None = None
        read: int | None = None
        cycle: WixCycle | None = None
        if cursor:
            try:
                data = json.loads(cursor)
                if isinstance(data.get("since"), str):
                    since = parse_ns(data["since"])
                if isinstance(data.get("read"), str):
                    read = parse_ns(data["read"])
                if isinstance(data.get("cycle"), dict):
                    cycle = WixCycle.from_json(data["cycle"])
                if v1 is None:
                    seen = [str(entry) for entry in data.get("seen") or ()]
            except (ValueError, AttributeError, TypeError):
                since, read, cycle = None, None, None  # unreadable: snapshot again (re-reads)
        entries: dict[str, int] = {}
        for entry in seen:
            at = _seen_at(entry)
            if at is not None:
                entries[entry] = at
        return cls(since, cycle, entries, read)
