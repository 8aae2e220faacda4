"""The poller's memo of ``covered_until``: decoded once per cursor, again when it changes."""

from __future__ import annotations

from typing import Any, cast

from services.core.connector import SourceStream
from services.extractor.poller import CoveredUntil


class CountingStream:
    """``covered_until``: the cursor's length (None for no cursor), each call counted."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def covered_until(self, cursor: str | None) -> int | None:
        self.calls.append(cursor)
        return None if cursor is None else len(cursor)


def memo() -> tuple[CoveredUntil, CountingStream]:
    stream = CountingStream()
    return CoveredUntil(cast(SourceStream, cast(Any, stream))), stream


def test_the_same_cursor_is_decoded_once() -> None:
    covered_until, stream = memo()
    cursor = '{"since":"2025-11-27T08:00:00.000Z"}'
    assert [covered_until(cursor) for _ in range(3)] == [len(cursor)] * 3
    assert covered_until("".join(list(cursor))) == len(cursor)  # equal, not the same object
    assert stream.calls == [cursor]


def test_a_changed_cursor_is_decoded_again_and_replaces_the_memo() -> None:
    covered_until, stream = memo()
    assert covered_until(None) is None
    assert covered_until(None) is None
    assert covered_until("ab") == 2
    assert covered_until("abc") == 3
    assert covered_until("ab") == 2  # only the last cursor is remembered
    assert covered_until(None) is None
    assert stream.calls == [None, "ab", "abc", "ab", None]
