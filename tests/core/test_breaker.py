"""The per-tenant circuit breaker: the pure state machine, its holder and its metric."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.core.breaker import (
    BreakerRule,
    Breakers,
    BreakerState,
    Phase,
    TenantBreaker,
    on_failure,
    on_request,
    on_success,
    tenant_failure,
)
from services.core.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ServerError,
    TenantIsolatedError,
    TransportError,
    ValidationError,
)
from services.core.metrics import BreakerCollector

RULE = BreakerRule(failures_to_open=3, window=10, min_calls=6, failure_rate_to_open=0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> TenantBreaker:
    return TenantBreaker("acme", "wix", RULE, clock)


def test_consecutive_failures_open_it_and_an_open_breaker_refuses_until_the_cooldown() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allows()
        b.record_failure("ServerError")
    assert not b.is_open
    b.record_failure("ServerError")
    assert b.is_open and b.state.reason == "ServerError" and b.state.opens == 1
    assert not b.allows()
    assert b.retry_in() == pytest.approx(RULE.cooldown_seconds)
    clock.now += RULE.cooldown_seconds - 0.1
    assert not b.allows()


def test_a_failure_rate_opens_it_without_consecutive_failures() -> None:
    b = breaker(Clock())
    for _ in range(3):  # fail, succeed, fail, succeed...: never 3 in a row
        b.record_failure("TransportError")
        b.record_success()
    assert b.is_open is False  # 3 of 6 calls, but 6 is the minimum: the next failure decides
    b.record_failure("TransportError")
    assert b.is_open  # 4 of 7 failed


def test_after_the_cooldown_one_probe_goes_and_its_success_closes_it() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure("ServerError")
    clock.now += RULE.cooldown_seconds
    assert b.allows()  # the probe
    assert b.state.phase is Phase.HALF_OPEN
    assert not b.allows()  # only one probe at a time
    b.record_success()
    assert b.state.phase is Phase.CLOSED and b.allows()
    assert b.state.opens == 1


def test_a_failed_probe_opens_it_for_longer_up_to_the_cap() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure("AuthenticationError")
    cooldowns = []
    for _ in range(8):
        cooldowns.append(b.state.cooldown_seconds)
        clock.now += b.state.cooldown_seconds
        assert b.allows()
        b.record_failure("AuthenticationError")
    assert cooldowns == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0, 600.0]
    clock.now += b.state.cooldown_seconds
    assert b.allows()
    b.record_success()  # healthy again: the next opening starts from the base
    for _ in range(3):
        b.record_failure("ServerError")
    assert b.state.cooldown_seconds == RULE.cooldown_seconds


outcomes = st.lists(st.sampled_from(["ask", "ok", "fail", "wait"]), max_size=120)


@given(outcomes)
def test_a_closed_breaker_always_allows_and_an_open_one_only_after_its_cooldown(
    steps: list[str],
) -> None:
    state, now = BreakerState(), 0.0
    for step in steps:
        if step == "wait":
            now += 7.0
        elif step == "ok":
            state = on_success(RULE, state)
        elif step == "fail":
            state = on_failure(RULE, state, "ServerError", now)
        else:
            before = state
            allowed, state = on_request(RULE, state, now)
            if before.phase is Phase.CLOSED:
                assert allowed
            elif before.phase is Phase.OPEN:
                assert allowed == (now >= before.opened_at + before.cooldown_seconds)
            else:
                assert allowed == (not before.probing)
        assert RULE.cooldown_seconds <= state.cooldown_seconds <= RULE.max_cooldown_seconds or (
            state.phase is Phase.CLOSED
        )


def test_breakers_are_per_tenant_and_system_and_exported() -> None:
    clock = Clock()
    breakers = Breakers(RULE, clock)
    for _ in range(3):
        breakers.get("acme", "wix").record_failure("ServerError")
    assert breakers.get("acme", "wix") is breakers.get("acme", "wix")
    assert breakers.get("acme", "poweroffice").allows()  # the same tenant's other system
    assert breakers.get("globex", "wix").allows()  # another tenant on the same system
    registry = CollectorRegistry()
    registry.register(BreakerCollector(breakers))
    value = registry.get_sample_value
    assert value("tether_tenant_breaker_open", {"tenant": "acme", "system": "wix"}) == 1.0
    assert value("tether_tenant_breaker_open", {"tenant": "globex", "system": "wix"}) == 0.0
    assert value("tether_tenant_breaker_opens_total", {"tenant": "acme", "system": "wix"}) == 1.0
    breakers.forget("acme")
    assert value("tether_tenant_breaker_open", {"tenant": "acme", "system": "wix"}) is None


def test_tenants_beyond_the_label_cap_are_summed_into_one_series() -> None:
    from services.core.tenant_labels import TenantLabels

    clock = Clock()
    breakers = Breakers(RULE, clock)
    labels = TenantLabels(1)
    for tenant in ("acme", "globex", "initech"):
        breakers.get(tenant, "wix")
    for tenant in ("globex", "initech"):
        for _ in range(3):
            breakers.get(tenant, "wix").record_failure("ServerError")
    registry = CollectorRegistry()
    registry.register(BreakerCollector(breakers, labels.label))
    value = registry.get_sample_value
    assert value("tether_tenant_breaker_open", {"tenant": "acme", "system": "wix"}) == 0.0
    assert value("tether_tenant_breaker_open", {"tenant": "_other", "system": "wix"}) == 2.0
    assert value("tether_tenant_breaker_opens_total", {"tenant": "_other", "system": "wix"}) == 2.0
    assert value("tether_tenant_breaker_open", {"tenant": "globex", "system": "wix"}) is None


def test_only_what_says_the_tenants_api_is_unwell_counts_as_a_failure() -> None:
    assert tenant_failure(TransportError("timed out")) == "TransportError"
    assert tenant_failure(ServerError("503", system="wix", status=503)) == "ServerError"
    assert tenant_failure(AuthenticationError("401", system="wix")) == "AuthenticationError"
    for about_one_record in (
        ValidationError("400", system="wix"),
        NotFoundError("404", system="wix"),
        ConflictError("409", system="wix"),
        KeyError("a bug of ours"),
    ):
        assert tenant_failure(about_one_record) is None


def test_call_records_the_outcome_and_refuses_while_open() -> None:
    clock = Clock()
    b = breaker(clock)

    def failing() -> None:
        raise ServerError("503", system="wix", status=503)

    def not_found() -> None:
        raise NotFoundError("404", system="wix")

    assert b.call(lambda: "page") == "page"
    with pytest.raises(NotFoundError):  # one record's problem: the API answered
        b.call(not_found)
    for _ in range(3):
        with pytest.raises(ServerError):
            b.call(failing)
    with pytest.raises(TenantIsolatedError) as isolated:
        b.call(lambda: "never made")
    assert isolated.value.retriable and isolated.value.retry_in == RULE.cooldown_seconds
    assert b.state.reason == "ServerError"
    clock.now += RULE.cooldown_seconds
    assert b.call(lambda: "probe") == "probe"
    assert not b.is_open
