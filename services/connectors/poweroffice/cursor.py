"""The PowerOffice stream's cursor (pure: standard library and ``services.core`` positions only).

``position`` = the newest ``LastChangedDateTimeOffset`` handled, **as sent** (stamps are compared
as integer nanoseconds: 7 digits = 100 ns, never as ``datetime``); ``read`` = when the read that
reached it started; ``seen`` = the identities ``"<Id>@<stamp>"`` of the records at or after the
next floor, ``min(position - 100 ns, read - overlap)`` (see ``stream.py``). Encoded as JSON: the
caller stores it as an opaque string. A cursor stored by the extractor's first version arrives
wrapped by ``services.core.connector.v1_cursor`` and decodes to the state it held.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from services.core.connector import open_v1_cursor
from services.core.stream_positions import NS_PER_SECOND, from_datetime, parse_ns, window

PO_TICK_NS: Final = 100
"""PowerOffice's timestamp resolution."""


def format_po(ns: int) -> str:
    """PowerOffice's form: UTC, 7 fractional digits, ``Z`` (rounded down to 100 ns)."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // PO_TICK_NS:07d}Z"


def po_identity(record_id: str, stamp_ns: int) -> str:
    return f"{record_id}@{format_po(stamp_ns)}"


def _seen_at(entry: str) -> int | None:
    _, _, stamp = entry.rpartition("@")
    try:
        return parse_ns(stamp)
    except ValueError:
        return None


@dataclass(frozen=True)
class PoCursorState:
    """``position``: the exact stamp string of the newest record handled (None: no snapshot yet);
    ``read_ns``: when the read that reached it started; ``seen``: identity -> stamp."""

    position: str | None = None
    seen: dict[str, int] = field(default_factory=dict)
    read_ns: int | None = None

    @property
    def position_ns(self) -> int | None:
        return parse_ns(self.position) if self.position is not None else None

    def floor_ns(self, overlap_ns: int) -> int | None:
        """The exclusive lower bound of the next read's first page (None: full snapshot)."""
        position = self.position_ns
        if position is None:
            return None
        if self.read_ns is None:
            return position - overlap_ns
        return min(position - PO_TICK_NS, self.read_ns - overlap_ns)

    @classmethod
    def from_parts(
        cls, position: str | None, seen: Iterable[str], read_ns: int | None = None
    ) -> PoCursorState:
        if position is not None:
            try:
                parse_ns(position)
            except ValueError:
                position = None  # unreadable: start over with a snapshot (re-reads, never skips)
        entries: dict[str, int] = {}
        for entry in seen:
            at = _seen_at(entry)
            if at is not None:
                entries[entry] = at
        return cls(position, entries, read_ns if position is not None else None)

    @classmethod
    def decode(cls, cursor: str | None) -> PoCursorState:
        """From a cursor this stream made, or one the extractor's first version stored."""
        if not cursor:
            return cls()
        v1 = open_v1_cursor(cursor)
        if v1 is not None:  # position and seen as stored; the read time was the updated_at
            return cls.from_parts(v1.position or None, v1.seen, from_datetime(v1.read_at))
        if not cursor.startswith("{"):  # a bare first-version position: re-reads the overlap
            return cls.from_parts(cursor, ())
        try:
            data = json.loads(cursor)
            position, read = data.get("position"), data.get("read")
            return cls.from_parts(
                position if isinstance(position, str) else None,
                [str(entry) for entry in data.get("seen") or ()],
                parse_ns(read) if isinstance(read, str) else None,
            )
        except (ValueError, AttributeError, TypeError):
            return cls()  # unreadable: snapshot again (re-reads, never skips)

    def encode(self) -> str:
        return json.dumps(
            {
                "position": self.position,
                "read": format_po(self.read_ns) if self.read_ns is not None else None,
                "seen": [entry for _, entry in sorted((at, k) for k, at in self.seen.items())],
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    def advance(
        self,
        handled: Mapping[str, tuple[str, int]],
        overlap_ns: int,
        limit: int,
        read_ns: int,
    ) -> PoCursorState:
        """After a page of the read that started at ``read_ns``: ``handled`` maps identity ->
        (raw stamp, stamp ns) of every identified record the page held."""
        position, position_ns = self.position, self.position_ns
        for raw, at in handled.values():
            if position_ns is None or at > position_ns:
                position, position_ns = raw, at
        merged = dict(self.seen)
        merged.update({identity: at for identity, (_, at) in handled.items()})
        state = PoCursorState(position, merged, read_ns if position is not None else None)
        floor = state.floor_ns(overlap_ns)  # exclusive: what the next read re-reads is after it
        return replace(state, seen=window(merged, None if floor is None else floor + 1, limit))

    def same_as(self, other: PoCursorState, overlap_ns: int) -> bool:
        """Whether resuming from ``self`` reads the same as resuming from ``other``."""
        return (
            self.position == other.position
            and self.seen.keys() == other.seen.keys()
            and self.floor_ns(overlap_ns) == other.floor_ns(overlap_ns)
        )
