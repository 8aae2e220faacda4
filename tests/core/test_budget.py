"""The adaptive API budget: the pure AIMD rule (properties), and ``ApiBudget`` on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.core.budget import (
    AimdRule,
    AimdState,
    ApiBudget,
    budget_shape,
    effective_rate,
    throttled,
)
from services.core.metrics import BudgetCollector

RULE = AimdRule.for_window(100, 60.0)  # the loader's Wix share: 100 per minute

events = st.lists(st.tuples(st.floats(min_value=0.0, max_value=120.0), st.booleans()), max_size=60)


@given(events)
def test_the_rate_stays_between_floor_and_ceiling_and_a_429_never_raises_it(
    steps: list[tuple[float, bool]],
) -> None:
    now = 0.0
    state = AimdState.initial(RULE, now)
    for gap, is_429 in steps:
        now += gap
        before = effective_rate(RULE, state, now)
        if is_429:
            state = throttled(RULE, state, now)
            assert effective_rate(RULE, state, now) <= before
        assert RULE.floor <= effective_rate(RULE, state, now) <= RULE.ceiling


@given(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1e4))
def test_a_cut_halves_the_rate_and_the_climb_is_additive_up_to_the_ceiling(
    fraction: float, later: float
) -> None:
    start = AimdState(RULE.floor + fraction * (RULE.ceiling - RULE.floor), 0.0)
    cut = throttled(RULE, start, 0.0)
    assert cut.cuts == 1
    assert cut.rate == pytest.approx(max(RULE.floor, start.rate * 0.5))
    expected = min(RULE.ceiling, cut.rate + later * RULE.increase_per_second)
    assert effective_rate(RULE, cut, later) == pytest.approx(expected)


def test_a_burst_of_429s_is_one_cut_and_a_persistent_excess_keeps_cutting() -> None:
    state = AimdState.initial(RULE, 0.0)
    for i in range(8):  # eight workers hit the same full window
        state = throttled(RULE, state, 0.01 * i)
    assert state.cuts == 1
    assert effective_rate(RULE, state, 0.1) == pytest.approx(RULE.ceiling / 2, rel=0.01)
    state = throttled(RULE, state, RULE.cooldown_seconds + 0.1)  # still too fast later on
    assert state.cuts == 2
    assert state.rate == pytest.approx(RULE.ceiling / 4, rel=0.05)


def test_recovery_is_slow_the_full_share_comes_back_after_windows_not_seconds() -> None:
    cut = throttled(RULE, AimdState.initial(RULE, 0.0), 0.0)
    assert effective_rate(RULE, cut, 60.0) < RULE.ceiling * 0.6  # a window later: still low
    assert effective_rate(RULE, cut, 6 * 60.0) < RULE.ceiling
    assert effective_rate(RULE, cut, 16 * 60.0) == pytest.approx(RULE.ceiling)  # 15 windows


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(fake: FakeTime, *, adaptive: bool = True) -> ApiBudget:
    # 1000 per second: pyrate's own (real-time) limiter never blocks these tests.
    return ApiBudget("t", 1000, 1.0, adaptive=adaptive, clock=fake.clock, sleep=fake.sleep)


def test_retry_after_holds_every_request_and_requests_after_a_cut_are_spaced() -> None:
    fake = FakeTime()
    shared = budget(fake)
    shared.acquire()
    assert fake.slept == []  # at the full share: no gate
    shared.note_throttled(retry_after=3.0)
    assert shared.throttled_by_api == 1 and shared.cuts == 1
    shared.acquire()
    assert fake.slept == [pytest.approx(3.0)]  # the Retry-After is a floor for everyone
    rate = shared.effective_rate_per_second  # halved, then 3 s of the additive climb
    assert rate == pytest.approx(500.0 + 3.0 * shared_rule(shared).increase_per_second)
    shared.acquire()
    shared.acquire()
    assert fake.slept[1:] == [pytest.approx(1 / rate, rel=0.01)] * 2  # spaced at 1 / rate


def shared_rule(shared: ApiBudget) -> AimdRule:
    return AimdRule.for_window(shared.requests, shared.per_seconds)


def test_a_fixed_budget_counts_429s_but_never_slows_down() -> None:
    fake = FakeTime()
    fixed = budget(fake, adaptive=False)
    fixed.note_throttled(retry_after=3.0)
    fixed.acquire()
    assert fake.slept == []
    assert fixed.throttled_by_api == 1 and fixed.cuts == 0
    assert fixed.effective_rate_per_second == fixed.rate_per_second == 1000.0


def test_the_effective_rate_and_the_cuts_are_exported() -> None:
    fake = FakeTime()
    shared = budget(fake)
    shared.note_throttled()
    registry = CollectorRegistry()
    registry.register(BudgetCollector([shared, ApiBudget("lifted", 0)]))
    assert registry.get_sample_value(
        "tether_api_budget_effective_rate", {"budget": "t"}
    ) == pytest.approx(500.0)
    assert registry.get_sample_value("tether_api_budget_rate", {"budget": "t"}) == 1000.0
    assert registry.get_sample_value("tether_api_budget_cuts_total", {"budget": "t"}) == 1.0
    assert registry.get_sample_value("tether_api_throttled_total", {"budget": "t"}) == 1.0
    assert registry.get_sample_value("tether_api_budget_effective_rate", {"budget": "lifted"}) == 0


def test_one_shape_rule_for_every_service() -> None:
    assert budget_shape(10 * 0.5, 1.0) == (5, 1.0)
    assert budget_shape(200 * 0.5, 60.0) == (100, 60.0)
    assert budget_shape(2.5, 1.0) == (2, 0.8)
    assert budget_shape(0.5, 1.0) == (1, 2.0)
    assert budget_shape(10 * 0.3, 1.0) == (3, 1.0)  # 2.9999999999999996 is three permits
    assert budget_shape(0, 1.0) == (0, 1.0)
