"""Commit bookkeeping (``services.loader.offsets``): never past a command without an outcome."""

from __future__ import annotations

from services.loader.offsets import OffsetBook


def test_commit_stops_at_the_lowest_unfinished_offset() -> None:
    book: OffsetBook[str] = OffsetBook()
    tickets = [book.add("p0", offset) for offset in range(10, 15)]
    assert book.committable() == {"p0": 10}
    book.done(tickets[2])
    book.done(tickets[4])
    assert book.committable() == {"p0": 10}
    book.done(tickets[0])
    assert book.committable() == {"p0": 11}
    book.done(tickets[1])
    assert book.committable() == {"p0": 13}
    book.done(tickets[3])
    assert book.committable() == {"p0": 15}
    assert book.outstanding() == 0


def test_partitions_are_independent_and_only_moved_ones_are_committed() -> None:
    book: OffsetBook[str] = OffsetBook()
    a = book.add("a", 0)
    b = book.add("b", 7)
    book.done(a)
    assert book.committable() == {"a": 1, "b": 7}
    book.committed({"a": 1, "b": 7})
    assert book.committable() == {}
    book.done(b)
    assert book.committable() == {"b": 8}
    assert book.committable(["a"]) == {}


def test_dropped_partitions_ignore_late_tickets() -> None:
    book: OffsetBook[str] = OffsetBook()
    old = book.add("p", 5)
    book.drop(["p"])
    fresh = book.add("p", 5)  # re-delivered after the partition came back
    book.done(old)
    assert book.committable() == {"p": 5}
    book.done(fresh)
    assert book.committable() == {"p": 6}


def test_clear_forgets_everything_and_old_tickets_stay_ignored() -> None:
    book: OffsetBook[str] = OffsetBook()
    old = book.add("p", 3)
    book.clear()
    assert book.committable() == {} and book.outstanding() == 0
    fresh = book.add("p", 3)
    book.done(old)
    assert book.committable() == {"p": 3}
    book.done(fresh)
    assert book.committable() == {"p": 4}


def test_a_seek_backwards_starts_the_partition_afresh() -> None:
    book: OffsetBook[str] = OffsetBook()
    first = book.add("p", 20)
    again = book.add("p", 18)
    book.done(first)
    assert book.committable() == {"p": 18}
    book.done(again)
    assert book.committable() == {"p": 19}
    assert book.outstanding() == 0


def test_a_ticket_is_current_until_its_partition_is_dropped_cleared_or_re_read() -> None:
    book: OffsetBook[str] = OffsetBook()
    first, other = book.add("p0", 5), book.add("p1", 0)
    assert book.current(first) and book.current(other)
    book.drop(["p0"])
    assert not book.current(first) and book.current(other)
    again = book.add("p0", 5)
    assert book.current(again)
    book.add("p0", 3)  # a seek backwards: the partition starts afresh
    assert not book.current(again)
    book.clear()
    assert not book.current(other)
