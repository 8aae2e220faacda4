"""Cursor arithmetic of the connectors' streams (pure): exact timestamps, keyset paging,
overlap windows, cursor encoding, and cursors stored by the extractor's first version."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from services.connectors.poweroffice.cursor import PoCursorState, format_po, po_identity
from services.connectors.wix.cursor import WixCursorState, format_ms, wix_identity, wix_seen_keys
from services.core.connector import v1_cursor
from services.core.stream_positions import (
    NS_PER_MS,
    NS_PER_SECOND,
    KeysetPager,
    parse_ns,
    to_datetime,
    window,
)

T0 = "2025-11-27T08:00:00.1234567Z"


def test_timestamps_are_exact_to_100_ns_and_spelling_independent() -> None:
    assert parse_ns("2025-11-27T08:00:00.1234568Z") - parse_ns(T0) == 100
    assert parse_ns("2025-11-27 09:00:00.1234567+01:00") == parse_ns(T0)
    assert parse_ns("2025-11-27T08:00:00.123456700-00:00") == parse_ns(T0)
    assert parse_ns("2025-11-27T08:00:00Z") % NS_PER_SECOND == 0
    assert format_po(parse_ns(T0)) == T0
    assert format_po(parse_ns("2025-11-27T08:00:00.1Z")) == "2025-11-27T08:00:00.1000000Z"
    assert format_ms(parse_ns("2020-10-18T13:40:57.803Z")) == "2020-10-18T13:40:57.803Z"
    for bad in ("", "yesterday", "2025-13-01T00:00:00Z", "2025-11-27T08:00:00.1234567890Z"):
        with pytest.raises(ValueError):
            parse_ns(bad)


def test_keyset_pager_moves_past_the_top_and_falls_back_to_page_numbers_on_ties() -> None:
    pager = KeysetPager(floor=None, step=100)
    assert pager.after_page([10, 20, 30], page_size=3)
    assert (pager.floor, pager.page) == (30 - 100, 1)
    assert pager.after_page([30, 30, 30], page_size=3)  # no progress past 30: next page
    assert (pager.floor, pager.page) == (30 - 100, 2)
    assert pager.after_page([30, 40, 50], page_size=3)
    assert (pager.floor, pager.page) == (50 - 100, 1)
    assert pager.after_page([None, None], page_size=2)  # no readable key: next page too
    assert pager.page == 2
    assert not pager.after_page([60], page_size=3)  # a short page is the last


def test_poweroffice_cursor_keeps_the_newest_stamp_and_the_overlap_window() -> None:
    overlap = 2 * NS_PER_SECOND
    t = parse_ns(T0)
    behind = t - 5 * NS_PER_SECOND
    page = {
        po_identity("1", t): (T0, t),
        po_identity("2", t): (T0, t),  # same stamp, other record
        po_identity("3", behind): (format_po(behind), behind),
    }
    state = PoCursorState().advance(page, overlap, limit=100, read_ns=t)
    assert state.position == T0
    assert set(state.seen) == {po_identity("1", t), po_identity("2", t)}  # 3 is behind the window
    assert state.floor_ns(overlap) == t - overlap  # read right after the burst: re-read overlap

    later = format_po(t + 100)  # 100 ns later: a different version
    state = state.advance({po_identity("1", t + 100): (later, t + 100)}, overlap, 100, t)
    assert state.position == later and po_identity("1", t) in state.seen
    decoded = PoCursorState.decode(state.encode())
    assert decoded == state
    assert PoCursorState.from_parts("not a stamp", ["x"], t) == PoCursorState()  # re-read all

    # A cycle that starts reading well after the position re-reads only the position itself.
    quiet = state.advance({}, overlap, 100, read_ns=t + 60 * NS_PER_SECOND)
    assert quiet.floor_ns(overlap) == t + 100 - 100
    assert set(quiet.seen) == {po_identity("1", t + 100)}
    assert not quiet.same_as(state, overlap)
    assert quiet.advance({}, overlap, 100, read_ns=t + 90 * NS_PER_SECOND).same_as(quiet, overlap)


def test_seen_windows_are_bounded_keeping_the_newest() -> None:
    entries = {f"{i}@x": i for i in range(10)}
    assert set(window(entries, 5, limit=100)) == {f"{i}@x" for i in range(5, 10)}
    assert set(window(entries, None, limit=3)) == {"7@x", "8@x", "9@x"}


def test_wix_cycle_moves_since_only_when_complete_and_never_past_its_start() -> None:
    overlap = 1 * NS_PER_SECOND
    since = parse_ns("2025-01-01T00:00:00.000Z")
    started = since + 600 * NS_PER_SECOND
    state = WixCursorState(since_ns=since).start_cycle(started)
    assert state.floor_ns(overlap) == since - overlap

    high = since + 100 * NS_PER_SECOND
    pager = KeysetPager(floor=None, step=0)
    pager.after_page([1 * NS_PER_MS, 2 * NS_PER_MS, 3 * NS_PER_MS], page_size=3)
    ident = wix_identity("a", 3, high)
    state = state.after_page(pager, {ident: high}, high, ["c"], overlap, limit=100)
    assert state.since_ns == since  # not before the cycle completes
    assert state.cycle is not None and state.cycle.pager_floor == 3 * NS_PER_MS
    resumed = WixCursorState.decode(state.encode())
    assert resumed == state
    assert resumed.start_cycle(started + 999) == resumed  # a resumed cycle keeps its start
    assert wix_seen_keys(resumed.seen) == {"a@3"}

    done = resumed.complete(overlap, limit=100)
    assert done.cycle is None and done.since_ns == high  # min(highest updatedDate, start)
    assert done.floor_ns(overlap) == high  # the start is long after it: re-read only `high`
    assert WixCursorState.decode(done.encode()) == done

    # Updates during a long cycle can be newer than its start: since stops at the start.
    late = WixCursorState(since_ns=since).start_cycle(started)
    late = late.after_page(pager, {}, started + 5 * NS_PER_SECOND, [], overlap, limit=100)
    assert late.complete(overlap, limit=100).since_ns == started

    # Nothing at all was read: everything before the start was seen to be absent.
    empty = WixCursorState().start_cycle(started).complete(overlap, limit=100)
    assert empty.since_ns == started
    assert format_ms(empty.since_ns) == format_ms(started)
    assert started % NS_PER_MS == 0


def test_cursors_stored_by_the_first_version_resume_exactly() -> None:
    """The first version stored a cursor in three fields: position, seen and (PowerOffice) the
    time of the read in ``updated_at``. Wrapped by ``v1_cursor`` they decode to the state they
    held, so an upgraded extractor resumes where the old one stopped (no re-read, no skip)."""
    overlap, t = 2 * NS_PER_SECOND, parse_ns(T0)
    read = parse_ns("2025-11-27T08:00:01.000001Z")  # a local clock's time: microseconds
    po = PoCursorState().advance({po_identity("1", t): (T0, t)}, overlap, 100, read_ns=read)
    # First version: position = the stamp as sent, seen = identities, updated_at = the read.
    po_seen = tuple(sorted(po.seen, key=lambda k: (po.seen[k], k)))
    old_po = v1_cursor(T0, po_seen, to_datetime(read))
    assert PoCursorState.decode(old_po) == po
    assert po.floor_ns(overlap) == read - overlap  # right after the read: the overlap again

    since = parse_ns("2025-01-01T00:00:00.000Z")
    wix = WixCursorState(since_ns=since, read_ns=since + NS_PER_SECOND).start_cycle(
        since + 5 * NS_PER_MS
    )
    wix = wix.after_page(
        KeysetPager(floor=None, step=0), {wix_identity("a", 3, since): since}, since, [], 0, 100
    )
    # First version: position = this JSON without "seen", seen beside it.
    position = json.loads(wix.encode())
    seen = position.pop("seen")
    old_wix = v1_cursor(json.dumps(position), seen, to_datetime(since))
    assert WixCursorState.decode(old_wix) == wix
    assert WixCursorState.decode(json.dumps(position)) == replace(wix, seen={})  # seen was empty
