"""Per-tenant circuit breakers: a tenant whose API keeps failing is isolated, others go on.

One breaker per (tenant, system). The state machine is pure (``BreakerRule``, ``BreakerState``,
``on_success``, ``on_failure``, ``on_request``): closed → **open** after ``failures_to_open``
consecutive failures, or when at least ``min_calls`` of the last ``window`` calls were made and
``failure_rate_to_open`` of them failed; open → **half-open** once the cool-down has passed,
letting one probe through; the probe's success **closes** it (the cool-down back to its base),
its failure opens it again for a cool-down ``growth`` times longer (at most ``max_cooldown``).

``TenantBreaker`` holds one state behind a lock with the three calls its users make, and
``Breakers`` one breaker per (tenant, system), created on first use, which
``services.core.metrics.BreakerCollector`` exports as ``tether_tenant_breaker_open{tenant,system}``.

Where it is consulted (the callers own that): the extractor's scheduler runs a tenant's poll or
scan of a system through ``breakers.get(tenant, system).call(poll)`` and skips it (it is due
again next round) on ``TenantIsolatedError``; the loader applies a tenant's command through
``call`` and defers it on that error as on any retriable one (waiting at least its
``retry_in``). ``call`` is ``allows()``, then ``record_success()`` when the API answered (any
status but the failures below) or ``record_failure(reason)`` on what says the tenant's API or
account is unwell — ``tenant_failure(error)`` decides: transport errors, 5xx, 429 after the
client's own retries, 401/403; not a 400/404/409 about one record, which is that record's
problem, nor a bug of ours. ``reason`` is a low-cardinality code (the error class's
``code``), kept in the state.

Imports: standard library and ``services.core.errors`` only (pure of I/O; the clock is injected).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from services.core.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TenantIsolatedError,
    TransportError,
)

T = TypeVar("T")

#: Errors that say a tenant's API or account is unwell (not one record's problem).
TENANT_FAILURES = (
    TransportError,
    ServerError,
    RateLimitedError,
    AuthenticationError,
    PermissionDeniedError,
)


def tenant_failure(error: BaseException) -> str | None:
    """The breaker reason ``error`` counts as (its code), or ``None`` when it does not count."""
    if isinstance(error, TENANT_FAILURES):
        return error.code
    return None


class Phase(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerRule:
    failures_to_open: int = 5
    failure_rate_to_open: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown_seconds: float = 30.0
    growth: float = 2.0
    max_cooldown_seconds: float = 600.0


@dataclass(frozen=True)
class BreakerState:
    phase: Phase = Phase.CLOSED
    consecutive_failures: int = 0
    recent: tuple[bool, ...] = ()  # the last ``window`` calls, True = failed
    opened_at: float = 0.0
    cooldown_seconds: float = 0.0  # of the current (or last) opening
    probing: bool = False  # half-open: the one probe is out
    opens: int = 0
    reason: str = ""  # of the last failure

    def retry_in(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.phase is not Phase.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_seconds - now)


def on_request(rule: BreakerRule, state: BreakerState, now: float) -> tuple[bool, BreakerState]:
    """Whether a call may go now, and the state after asking (an open breaker whose cool-down
    has passed turns half-open and lets this one call through as the probe)."""
    if state.phase is Phase.CLOSED:
        return True, state
    if state.phase is Phase.OPEN:
        if now < state.opened_at + state.cooldown_seconds:
            return False, state
        return True, replace(state, phase=Phase.HALF_OPEN, probing=True)
    if state.probing:
        return False, state
    return True, replace(state, probing=True)


def on_success(rule: BreakerRule, state: BreakerState) -> BreakerState:
    if state.phase is Phase.HALF_OPEN:
        return BreakerState(opens=state.opens, reason=state.reason)
    recent = (*state.recent, False)[-rule.window :]
    return replace(state, consecutive_failures=0, recent=recent)


def on_failure(rule: BreakerRule, state: BreakerState, reason: str, now: float) -> BreakerState:
    if state.phase is Phase.HALF_OPEN:  # the probe failed: open again, for longer
        longer = min(rule.max_cooldown_seconds, state.cooldown_seconds * rule.growth)
        return _opened(state, reason, now, longer)
    if state.phase is Phase.OPEN:  # a call that was already out when it opened
        return replace(state, reason=reason)
    recent = (*state.recent, True)[-rule.window :]
    failures = state.consecutive_failures + 1
    too_many = failures >= rule.failures_to_open
    too_often = len(recent) >= rule.min_calls and sum(recent) >= rule.failure_rate_to_open * len(
        recent
    )
    if too_many or too_often:
        return _opened(state, reason, now, rule.cooldown_seconds)
    return replace(state, consecutive_failures=failures, recent=recent, reason=reason)


def _opened(state: BreakerState, reason: str, now: float, cooldown: float) -> BreakerState:
    return BreakerState(
        phase=Phase.OPEN,
        opened_at=now,
        cooldown_seconds=cooldown,
        opens=state.opens + 1,
        reason=reason,
    )


@dataclass
class TenantBreaker:
    """One (tenant, system)'s breaker, shared by the threads that call that tenant's API."""

    tenant: str
    system: str
    rule: BreakerRule = field(default_factory=BreakerRule)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _state: BreakerState = field(default_factory=BreakerState, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    @property
    def is_open(self) -> bool:
        """Open or half-open: the tenant's calls are (mostly) held."""
        return self.state.phase is not Phase.CLOSED

    def allows(self) -> bool:
        """Whether to call the tenant's API now (half-open: ``True`` once, for the probe)."""
        with self._lock:
            allowed, self._state = on_request(self.rule, self._state, self.clock())
            return allowed

    def retry_in(self) -> float:
        """Seconds until ``allows()`` can say yes again (0: now, or it is not open)."""
        with self._lock:
            return self._state.retry_in(self.clock())

    def record_success(self) -> None:
        with self._lock:
            self._state = on_success(self.rule, self._state)

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self._state = on_failure(self.rule, self._state, reason, self.clock())

    def call(self, action: Callable[[], T]) -> T:
        """``action()`` if the breaker allows it (else ``TenantIsolatedError``), its outcome
        recorded: an error that ``tenant_failure`` names is a failure, anything else a success
        (the API answered); the error is raised on either way."""
        if not self.allows():
            raise TenantIsolatedError(self.tenant, self.system, self.retry_in())
        try:
            result = action()
        except Exception as exc:
            reason = tenant_failure(exc)
            if reason is None:
                self.record_success()
            else:
                self.record_failure(reason)
            raise
        self.record_success()
        return result


@dataclass
class Breakers:
    """Every (tenant, system)'s breaker of a process, created on first use with one rule."""

    rule: BreakerRule = field(default_factory=BreakerRule)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _by_key: dict[tuple[str, str], TenantBreaker] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def get(self, tenant: str, system: str) -> TenantBreaker:
        with self._lock:
            breaker = self._by_key.get((tenant, system))
            if breaker is None:
                breaker = TenantBreaker(tenant, system, self.rule, self.clock)
                self._by_key[(tenant, system)] = breaker
            return breaker

    def forget(self, tenant: str) -> None:
        """Drop a tenant's breakers (it left this process: removed, or moved to a replica)."""
        with self._lock:
            for key in [key for key in self._by_key if key[0] == tenant]:
                del self._by_key[key]

    def __iter__(self) -> Iterator[TenantBreaker]:
        with self._lock:
            return iter(list(self._by_key.values()))
