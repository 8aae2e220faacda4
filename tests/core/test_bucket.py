"""The shared budget's pure rules: the token bucket, the 429 hold and the rate factor."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.bucket import (
    Bucket,
    BucketShape,
    HoldRule,
    Throttle,
    after_429,
    factor_at,
    factor_rule,
    hold_after_429,
    take,
    window_holds,
)
from services.core.budget import AimdState

SHAPE = BucketShape.for_window(5, 1.0)  # PowerOffice, the loader's half of 10/s
HOLD = HoldRule.for_window(1.0)
RULE = factor_rule(1.0)

gaps = st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200)
factors = st.floats(min_value=0.05, max_value=1.0)


def grant_times(shape: BucketShape, gaps: list[float], factor: float) -> list[float]:
    now, bucket, granted = 0.0, Bucket.full(shape, 0.0), []
    for gap in gaps:
        now += gap
        result = take(shape, bucket, factor, 0.0, now)
        bucket = result.bucket
        if result.granted:
            granted.append(result.at)
    return granted


def most_in_a_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@given(gaps, factors)
def test_no_window_of_the_budget_holds_more_than_the_share(
    gaps: list[float], factor: float
) -> None:
    times = grant_times(SHAPE, gaps, factor)
    assert most_in_a_window(times, 1.0) <= window_holds(SHAPE, 1.0) == 5


@given(gaps, st.floats(min_value=1.0, max_value=4.0))
def test_a_burst_allows_burst_minus_one_more_per_window(gaps: list[float], burst: float) -> None:
    shape = BucketShape(rate=5.0, burst=burst)
    assert most_in_a_window(grant_times(shape, gaps, 1.0), 1.0) <= window_holds(shape, 1.0)


@given(st.floats(min_value=0.0, max_value=0.99), factors, st.floats(min_value=1e-6, max_value=5.0))
def test_a_refused_take_is_granted_after_the_wait_it_names(
    tokens: float, factor: float, late: float
) -> None:
    bucket = Bucket(tokens, 100.0)
    refused = take(SHAPE, bucket, factor, 0.0, 100.0)
    assert not refused.granted and refused.wait_seconds > 0
    later = 100.0 + refused.wait_seconds + late  # late: at least the clock's microsecond
    assert take(SHAPE, refused.bucket, factor, 0.0, later).granted
    almost = take(SHAPE, refused.bucket, factor, 0.0, 100.0 + refused.wait_seconds * 0.99)
    assert not almost.granted


def test_the_full_share_is_used_spaced_evenly() -> None:
    times = grant_times(SHAPE, [0.01] * 1000, 1.0)  # a backlog polled for 10 s
    assert len(times) == pytest.approx(50, abs=1)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.2 - 1e-9


def test_a_take_with_an_older_clock_does_not_refill_the_bucket() -> None:
    bucket = take(SHAPE, Bucket.full(SHAPE, 10.0), 1.0, 0.0, 10.0).bucket  # granted at 10.0
    late_clock = take(SHAPE, bucket, 1.0, 0.0, 9.0)  # a replica whose reading is older
    assert not late_clock.granted and late_clock.at == 10.0
    assert late_clock.wait_seconds == pytest.approx(1.0 + 0.2)  # to 10.0, then one token
    assert late_clock.bucket == Bucket(0.0, 10.0)


def test_nothing_is_granted_while_the_credential_is_held() -> None:
    held = take(SHAPE, Bucket.full(SHAPE, 0.0), 1.0, blocked_until=3.0, now=1.0)
    assert not held.granted and held.wait_seconds == pytest.approx(2.0)
    assert take(SHAPE, held.bucket, 1.0, blocked_until=3.0, now=3.0).granted


def test_the_factor_slows_the_refill() -> None:
    empty = Bucket(0.0, 0.0)
    assert take(SHAPE, empty, 0.5, 0.0, 0.0).wait_seconds == pytest.approx(0.4)


def test_retry_after_is_a_floor_and_never_shortens_a_hold() -> None:
    throttle = Throttle(AimdState(1.0, 0.0), blocked_until=10.0)
    assert hold_after_429(HOLD, throttle, 3.0, 1.0) == (10.0, 0.0)
    assert hold_after_429(HOLD, throttle, 30.0, 1.0) == (31.0, 0.0)


def test_the_default_hold_doubles_while_429s_follow_it_and_starts_again_after_quiet() -> None:
    throttle, now, holds = Throttle.initial(0.0), 0.0, []
    for _ in range(9):
        throttle = after_429(RULE, HOLD, throttle, None, now)
        holds.append(throttle.backoff_seconds)
        now = throttle.blocked_until + 0.01  # refused again right after the hold
    assert holds == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]  # capped at a minute
    quiet = after_429(RULE, HOLD, throttle, None, throttle.blocked_until + 61.0)
    assert quiet.backoff_seconds == 1.0


def test_the_hold_grows_past_a_retry_after_that_did_not_help() -> None:
    throttle, now, holds = Throttle.initial(0.0), 0.0, []
    for _ in range(4):
        throttle = after_429(RULE, HOLD, throttle, 1.0, now)  # "Try again in 1 seconds"
        holds.append(throttle.blocked_until - now)
        now = throttle.blocked_until + 0.01
    assert holds == pytest.approx([1.0, 2.0, 4.0, 8.0])
    told_more = after_429(RULE, HOLD, Throttle.initial(0.0), 90.0, 0.0)
    assert told_more.blocked_until == 90.0  # above the cap: the API's word still counts


def test_a_burst_of_429s_is_one_hold_and_one_cut() -> None:
    throttle = Throttle.initial(0.0)
    for i in range(8):  # eight workers, one full window
        throttle = after_429(RULE, HOLD, throttle, None, 0.01 * i)
    assert throttle.aimd.cuts == 1 and throttle.throttled == 8
    assert throttle.blocked_until == pytest.approx(1.0)
    assert factor_at(RULE, throttle, 0.1) == pytest.approx(0.5, rel=0.01)


def test_the_factor_climbs_back_to_the_share_in_fifteen_windows() -> None:
    wix = factor_rule(60.0)
    cut = after_429(wix, HoldRule.for_window(60.0), Throttle.initial(0.0), 10.0, 0.0)
    assert cut.blocked_until == 10.0 and HoldRule.for_window(60.0).base == 10.0
    assert factor_at(wix, cut, 60.0) < 0.6
    assert factor_at(wix, cut, 16 * 60.0) == pytest.approx(1.0)
