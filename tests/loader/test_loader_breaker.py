"""The loader's view of core's per-tenant breaker: asking never uses up the half-open probe."""

from __future__ import annotations

from services.core.breaker import BreakerRule, Breakers, Phase
from services.loader.tenancy import LoaderBreaker

RULE = BreakerRule(failures_to_open=2, cooldown_seconds=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_asking_often_while_open_neither_probes_nor_sticks_half_open() -> None:
    clock = Clock()
    core = Breakers(RULE, clock).get("acme", "targets")
    breaker = LoaderBreaker(core)
    breaker.record_failure()
    breaker.record_failure()
    assert core.state.phase is Phase.OPEN and not breaker.allows()
    clock.now = 11.0
    for _ in range(50):  # workers considering the tenant, with no call made
        assert breaker.allows()
    assert core.state.phase is Phase.OPEN  # looking did not use the probe
    breaker.record_success()  # the call that went: it was the probe
    assert core.state.phase is Phase.CLOSED and breaker.allows()


def test_a_failed_probe_opens_it_again_for_longer() -> None:
    clock = Clock()
    core = Breakers(RULE, clock).get("acme", "targets")
    breaker = LoaderBreaker(core)
    breaker.record_failure()
    breaker.record_failure()
    clock.now = 11.0
    assert breaker.allows()
    breaker.record_failure()
    assert core.state.phase is Phase.OPEN and core.state.cooldown_seconds == 20.0
    assert not breaker.allows()
