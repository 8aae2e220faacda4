"""The service loop's schedule (pure): a poll interval is counted from when a cycle started, not
from when it ended, so a PowerOffice change waits at most one interval for the next poll (with
1 s polls, a 0.4 s cycle made the period 1.4 s and the change-to-target p99 2.4 s)."""

from __future__ import annotations

from services.extractor.service import next_due


def test_the_next_cycle_is_one_interval_after_the_last_started_not_after_it_ended() -> None:
    # the cycle ran 10.0 -> 10.4: the next starts at 11.0, not 11.4
    assert next_due(10.0, 1.0, now=10.4) == 11.0


def test_a_cycle_longer_than_the_interval_is_followed_at_once_without_a_catch_up_burst() -> None:
    # the cycle ran 10.0 -> 13.5: the next is due now, not at 11, 12 and 13 in a row
    assert next_due(10.0, 1.0, now=13.5) == 13.5
    assert next_due(13.5, 1.0, now=13.6) == 14.5
