"""Stall detection's pure tracker (``services.core.progress``): fed positions, end offsets and
the time, it says which owned partitions are stalled and when a stall episode begins or ends."""

from __future__ import annotations

from services.core.progress import ProgressTracker

T = ("t.changes.wix.contacts", 0)
U = ("t.changes.wix.contacts", 1)


def test_a_partition_with_lag_that_does_not_advance_stalls_after_the_configured_time() -> None:
    tracker = ProgressTracker(stall_after_seconds=120)
    assert tracker.observe({T: 5}, {T: 9}, now=0).began == []
    assert tracker.observe({T: 5}, {T: 9}, now=119).began == []
    assert tracker.healthy()
    seen = tracker.observe({T: 5}, {T: 12}, now=120)
    assert seen.began == [T] and tracker.stalled() == [T] and not tracker.healthy()
    # The episode is reported once, not on every observation.
    assert tracker.observe({T: 5}, {T: 12}, now=500).began == []
    assert tracker.snapshot()[T].lag == 7
    # It moves again: the episode ends.
    seen = tracker.observe({T: 6}, {T: 12}, now=501)
    assert seen.ended == [T] and tracker.stalled() == [] and tracker.healthy()


def test_a_partition_that_keeps_advancing_never_stalls_however_long_its_backlog() -> None:
    tracker = ProgressTracker(stall_after_seconds=120)
    for step in range(10):
        tracker.observe({T: step * 10}, {T: 10_000}, now=step * 100)
    assert tracker.stalled() == []


def test_a_partition_without_lag_never_stalls_and_its_clock_restarts() -> None:
    tracker = ProgressTracker(stall_after_seconds=120)
    tracker.observe({T: 5}, {T: 5}, now=0)
    tracker.observe({T: 5}, {T: 5}, now=1000)
    assert tracker.stalled() == []
    # A message arrives after a quiet hour: not stalled at once, only 120 s after the last
    # moment the partition was caught up.
    assert tracker.observe({T: 5}, {T: 6}, now=1001).began == []
    assert tracker.observe({T: 5}, {T: 6}, now=1120).began == [T]


def test_a_rewind_is_not_an_advance() -> None:
    tracker = ProgressTracker(stall_after_seconds=120)
    tracker.observe({T: 50}, {T: 90}, now=0)
    tracker.observe({T: 40}, {T: 90}, now=60)  # rewound (a hold, a re-assignment)
    assert tracker.observe({T: 40}, {T: 90}, now=120).began == [T]


def test_a_partition_no_longer_owned_is_forgotten_and_its_episode_ends() -> None:
    tracker = ProgressTracker(stall_after_seconds=10)
    tracker.observe({T: 1, U: 1}, {T: 5, U: 1}, now=0)
    assert tracker.observe({T: 1, U: 1}, {T: 5, U: 1}, now=10).began == [T]
    seen = tracker.observe({U: 1}, {U: 1}, now=11)  # a rebalance took T
    assert seen.ended == [T] and tracker.stalled() == [] and set(tracker.snapshot()) == {U}
    # Owned again later: a fresh start, not the old episode.
    assert tracker.observe({T: 1, U: 1}, {T: 5, U: 1}, now=12).began == []


def test_a_missing_end_offset_keeps_the_last_one() -> None:
    tracker = ProgressTracker(stall_after_seconds=10)
    tracker.observe({T: 1}, {T: 5}, now=0)
    assert tracker.observe({T: 1}, {}, now=10).began == [T]
