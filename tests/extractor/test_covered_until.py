"""``Poller.covered_until_ns``: the stored cursor decoded once, again when it changes."""

from __future__ import annotations

from typing import Any, cast

from services.extractor.poller import Poller


class CountingStream:
    """``covered_until``: the cursor's length (None for no cursor), each call counted."""

    resource = "contacts"

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def covered_until(self, cursor: str | None) -> int | None:
        self.calls.append(cursor)
        return None if cursor is None else len(cursor)


class StoredCursor:
    """The cursor store's one cursor (``save`` replaces it, as a saved page does)."""

    def __init__(self) -> None:
        self.position: str | None = None

    def stream_cursor(self, tenant: str, system: str, resource: str, stream: str) -> str | None:
        return self.position


def poller() -> tuple[Poller, CountingStream, StoredCursor]:
    stream, cursors = CountingStream(), StoredCursor()
    unused = cast(Any, None)
    made = Poller(
        "wix",
        cast(Any, stream),
        cast(Any, cursors),
        unused,
        unused,
        unused,
        tenant="t",
        page_size=10,
    )
    return made, stream, cursors


def test_the_stored_cursor_is_decoded_once_however_often_it_is_asked_about() -> None:
    covered, stream, cursors = poller()
    assert [covered.covered_until_ns() for _ in range(3)] == [None] * 3
    cursors.position = '{"since":"2025-11-27T08:00:00.000Z"}'
    assert [covered.covered_until_ns() for _ in range(3)] == [len(cursors.position)] * 3
    cursors.position = "".join(list(cursors.position))  # equal, another object: no decode
    assert covered.covered_until_ns() == len(cursors.position)
    assert stream.calls == [None, '{"since":"2025-11-27T08:00:00.000Z"}']


def test_a_saved_cursor_is_decoded_again_and_only_the_stored_one_is_remembered() -> None:
    covered, stream, cursors = poller()
    for position in ("ab", "abc", "ab", None):
        cursors.position = position
        assert covered.covered_until_ns() == (None if position is None else len(position))
        assert covered.covered_until_ns() == (None if position is None else len(position))
    assert stream.calls == ["ab", "abc", "ab", None]
