"""Positions of source streams: exact timestamps, keyset paging and the windows of identities
a cursor remembers. Shared by the connectors' streams (``services/connectors/*/stream.py``).

Pure: standard library only.

**Timestamps** are integer nanoseconds since the epoch (:func:`parse_ns`), never ``datetime``
(which keeps 6 digits): PowerOffice stamps carry 7 fractional digits, and two of them may differ
only in the 7th.

**Keyset paging** (:class:`KeysetPager`): the next page starts at the last page's top key (minus
``step`` for an exclusive filter); a page that did not move past the previous top (many records
sharing one key) takes the next page number under the same floor.

**Seen windows** (:func:`window`): the identities (``"<id>@<version>..."``) a cursor remembers so
that what a stream re-reads behind its position (the overlap) is recognised; dropping one only
causes a repeat, never a loss.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import itemgetter

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000

_TIMESTAMP_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\s*$"
)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def parse_ns(value: str) -> int:
    """ISO-8601 (``T`` or space, 0-9 fractional digits, ``Z``/offset/none = UTC) -> epoch ns.

    Exact to the nanosecond; raises ``ValueError`` for anything else.
    """
    match = _TIMESTAMP_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    # Plain arithmetic (a hot path: every record read): ``date`` checks the day, the time of
    # day is checked here, as ``datetime`` would.
    days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    hours, minutes, secs = int(hour), int(minute), int(second or 0)
    if hours > 23 or minutes > 59 or secs > 59:
        raise ValueError("time of day out of range")
    seconds = days * 86_400 + hours * 3600 + minutes * 60 + secs
    if offset and offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        shift = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        seconds -= shift if offset[0] == "+" else -shift
    return seconds * NS_PER_SECOND + int((fraction or "0").ljust(9, "0"))


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

    ``step`` is subtracted from the top key to form the next floor: the resolution of an
    exclusive filter (so records sharing the top key are read again and recognised as seen),
    0 for an inclusive one.
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
    if lower_ns is None:
        kept = dict(entries)
    else:
        kept = {k: at for k, at in entries.items() if at >= lower_ns}
    if len(kept) > limit:
        newest = sorted(kept.items(), key=itemgetter(1), reverse=True)[:limit]
        kept = dict(newest)
    return kept
