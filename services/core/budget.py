"""Client-side API budgets: a blocking rate limiter per (system, tenant, share) that adapts to 429s.

PowerOffice Go allows 10 requests/second per subscription key and Wix 200 requests/minute per app
instance; the extractor and the loader each get a configured share of those. Every HTTP client
acquires one permit per request from its ``ApiBudget`` *before* sending, so the API's own 429 is a
rare event rather than the control loop.

The real limit can be lower than the configured share (limits are per site/key and shared with
other apps). A budget therefore adapts (AIMD, as TCP does): a 429 reported with
``note_throttled(retry_after)`` cuts the effective rate multiplicatively (once per cool-down, so
one burst of 429s from many workers is one cut), every request waits out ``Retry-After`` (a floor:
nothing is sent before it), and the rate climbs back additively towards the configured share.
One ``ApiBudget`` is shared by every thread of a process that calls that API (the loader's
workers share their client and so its budget); processes adapt each on their own 429s — unless
the budgets are shared by every replica through PostgreSQL (``services.core.shared_budget``).

- ``AimdRule``/``AimdState`` with ``throttled``/``effective_rate``: the pure rule (tested alone).
- ``ApiBudget``: ``pyrate_limiter`` (a well-kept library) enforces the configured share; a small
  gate in front of it spaces requests at the effective rate while that is lower, and holds them
  during a ``Retry-After``. It also keeps what the metrics export (permits, waits, 429s, rate).
- ``budget_shape``: whole permits per window for a fractional rate (one rule for all services).

Imports: standard library and pyrate_limiter only (pure of network I/O).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pyrate_limiter import Duration, Limiter, Rate

# -- the pure rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AimdRule:
    """Additive-increase / multiplicative-decrease of a request rate (requests per second).

    ``ceiling``: the configured share; ``floor``: never slower than this; ``decrease``: the factor
    a cut multiplies the rate by; ``increase_per_second``: requests/second regained per second
    without a cut; ``cooldown_seconds``: 429s this soon after a cut belong to the same burst (the
    cut has not had time to show) and do not cut again.
    """

    ceiling: float
    floor: float
    decrease: float = 0.5
    increase_per_second: float = 0.0
    cooldown_seconds: float = 1.0

    @classmethod
    def for_window(cls, requests: int, per_seconds: float) -> AimdRule:
        """The rule of a budget of ``requests`` per ``per_seconds``: the floor is 5 % of it, a
        cut halves the rate, the climb from the floor back to the full share takes 30 windows
        (from a cut at the full share: 15), and a cut shows within ``min(window, 10 s)``."""
        ceiling = requests / per_seconds
        return cls(
            ceiling=ceiling,
            floor=ceiling * 0.05,
            decrease=0.5,
            increase_per_second=ceiling * 0.95 / (30 * per_seconds),
            cooldown_seconds=max(1.0, min(per_seconds, 10.0)),
        )


@dataclass(frozen=True)
class AimdState:
    rate: float  # requests/second as of ``since``
    since: float  # monotonic seconds: when ``rate`` was set (the climb starts here)
    cut_at: float | None = None  # the last cut
    cuts: int = 0

    @classmethod
    def initial(cls, rule: AimdRule, now: float) -> AimdState:
        return cls(rule.ceiling, now)


def effective_rate(rule: AimdRule, state: AimdState, now: float) -> float:
    """The rate at ``now``: the last set rate plus the additive climb since, at most the ceiling."""
    climbed = state.rate + max(0.0, now - state.since) * rule.increase_per_second
    return min(rule.ceiling, climbed)


def throttled(rule: AimdRule, state: AimdState, now: float) -> AimdState:
    """The state after a 429 at ``now``: cut unless the last cut is within the cool-down."""
    rate = effective_rate(rule, state, now)
    if state.cut_at is not None and now - state.cut_at < rule.cooldown_seconds:
        return replace(state, rate=rate, since=now)  # same burst: no cut, no climb meanwhile
    return AimdState(max(rule.floor, rate * rule.decrease), now, now, state.cuts + 1)


# -- the budget ------------------------------------------------------------------------------------


@dataclass
class ApiBudget:
    """A blocking limiter allowing ``requests`` per ``per_seconds`` (``requests <= 0``: unlimited),
    adapting to 429s (``adaptive=False`` keeps the fixed share: benchmarks compare both).

    ``acquire()`` blocks until a permit is free and returns the seconds it waited.
    """

    name: str
    requests: int
    per_seconds: float = 1.0
    adaptive: bool = True
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    acquired: int = field(default=0, init=False)
    waited_seconds: float = field(default=0.0, init=False)
    throttled_by_api: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _limiter: Limiter | None = field(default=None, init=False, repr=False)
    _rule: AimdRule | None = field(default=None, init=False, repr=False)
    _state: AimdState | None = field(default=None, init=False, repr=False)
    _next_slot: float = field(default=0.0, init=False, repr=False)
    _hold_until: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.requests > 0:
            interval_ms = int(self.per_seconds * Duration.SECOND)
            # buffer_ms is how long the limiter sleeps between checks while blocking.
            self._limiter = Limiter(Rate(self.requests, interval_ms), buffer_ms=5)
            if self.adaptive:
                self._rule = AimdRule.for_window(self.requests, self.per_seconds)
                self._state = AimdState.initial(self._rule, self.clock())

    @classmethod
    def for_rate(
        cls, name: str, rate_per_window: float, window_seconds: float, **kwargs: object
    ) -> ApiBudget:
        """A budget of ``rate_per_window`` (fractional allowed; ``<= 0`` lifts it) per window."""
        requests, per_seconds = budget_shape(rate_per_window, window_seconds)
        return cls(name, requests, per_seconds, **kwargs)  # type: ignore[arg-type]

    @property
    def limited(self) -> bool:
        return self._limiter is not None

    @property
    def rate_per_second(self) -> float:
        """The configured share in requests per second (``inf`` when lifted)."""
        return self.requests / self.per_seconds if self.requests > 0 else float("inf")

    @property
    def credential(self) -> str | None:
        """The credential key a shared budget counts against (``None``: this process's own)."""
        return None

    @property
    def effective_rate_per_second(self) -> float:
        """The rate the budget currently allows: the share, or less after 429s."""
        if self._rule is None or self._state is None:
            return self.rate_per_second
        with self._lock:
            return effective_rate(self._rule, self._state, self.clock())

    @property
    def cuts(self) -> int:
        """How many times a 429 lowered the rate."""
        return self._state.cuts if self._state is not None else 0

    def acquire(self) -> float:
        started = self.clock()
        self._gate()
        if self._limiter is not None:
            self._limiter.try_acquire(self.name, blocking=True)
        waited = self.clock() - started
        with self._lock:
            self.acquired += 1
            self.waited_seconds += waited
        return waited

    def _gate(self) -> None:
        """Wait out a ``Retry-After`` hold, then, while the effective rate is below the share,
        take the next free slot of a schedule spaced ``1 / rate`` apart (shared by all threads:
        a slot is reserved under the lock, the wait happens outside it)."""
        if self._rule is None or self._state is None:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._hold_until)
            rate = effective_rate(self._rule, self._state, start)
            if rate < self._rule.ceiling:
                start = max(start, self._next_slot)
                self._next_slot = start + 1.0 / rate
            else:
                self._next_slot = start
        if start > now:
            self.sleep(start - now)

    def note_throttled(self, retry_after: float | None = None) -> None:
        """The API answered 429 despite the budget: count it, lower the rate (``adaptive``), and
        hold every request of this budget until ``retry_after`` seconds from now."""
        with self._lock:
            self.throttled_by_api += 1
            if self._rule is None or self._state is None:
                return
            now = self.clock()
            self._state = throttled(self._rule, self._state, now)
            if retry_after is not None and retry_after > 0:
                self._hold_until = max(self._hold_until, now + retry_after)


def process_share(deployment_share: float, replicas: int) -> float:
    """One process's share of an API budget when ``replicas`` processes (a Deployment's pods)
    split ``deployment_share`` of it: their total stays ``deployment_share`` at any scale.

    ``replicas`` comes from ``TETHER_REPLICAS``, set next to ``spec.replicas`` (the manifests'
    test checks they agree; docs/operations.md "Scale").
    """
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, not {replicas}")
    return deployment_share / replicas


def budget_shape(rate_per_window: float, window_seconds: float) -> tuple[int, float]:
    """``(requests, per_seconds)`` for an ``ApiBudget`` allowing ``rate_per_window`` per window.

    ``ApiBudget`` counts whole permits; a fractional rate keeps its average by stretching the
    window (2.5 per second -> 2 per 0.8 s; 0.5 per second -> 1 per 2 s). ``(0, 1.0)`` = lifted.
    """
    if rate_per_window <= 0:
        return 0, 1.0
    whole = math.floor(rate_per_window + 1e-9)
    if whole >= 1:
        return whole, window_seconds * whole / rate_per_window
    return 1, window_seconds / rate_per_window
