"""The pure rules of a budget shared by processes: a token bucket, the 429 hold, the rate factor.

``services.core.shared_budget`` keeps this state in PostgreSQL, one bucket per (credential,
holder) and one throttle record per credential, and computes every step in one SQL statement;
these functions are the same rules in Python, the reference its statements are tested against
(``tests/core/test_shared_budget_pg.py`` runs both on the same sequences).

- **Bucket** (``BucketShape``, ``Bucket``, ``take``): ``rate`` tokens per second up to ``burst``;
  one token per request. The rate is scaled by the credential's factor (below). While the
  credential is blocked (a 429's hold) nothing is granted. A refused take says how long to wait.
  Time never runs backwards in a bucket: a take computed with a clock older than the bucket's
  last update counts from that update (``at``), so no replica's late clock reading refills it.
  Every window of ``W`` seconds holds fewer than ``burst + rate * W`` grants (``window_holds``):
  the budget shapes use ``burst = 1``, so a window holds at most the share. A wait is exact up to
  float rounding: the take after it may name a wait of a few femtoseconds more.
- **Hold** (``HoldRule``, ``hold_after_429``): a 429 blocks the credential for its
  ``Retry-After`` (a floor; without one, a base); a back-off that doubles while 429s come right
  after a hold ends, up to a cap, and starts again after a quiet spell.
- **Factor**: the AIMD rule of ``services.core.budget`` in units of the share (``factor_rule``:
  ceiling 1): a 429 halves every holder's rate of that credential, which climbs back slowly.

Imports: standard library and ``services.core.budget`` (the AIMD rule) only; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.core.budget import AimdRule, AimdState, effective_rate, throttled


@dataclass(frozen=True)
class BucketShape:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float = 1.0

    @classmethod
    def for_window(cls, requests: int, per_seconds: float) -> BucketShape:
        """``requests`` per ``per_seconds`` with burst 1: the requests are spaced evenly.

        A bucket of burst ``b`` refilled at ``requests / per_seconds`` lets up to
        ``b - 1 + requests`` through in one window, more than the gateway (counting
        ``requests`` per window) allows; burst 1 keeps every window within the share and still
        uses all of it.
        """
        return cls(rate=requests / per_seconds, burst=1.0)


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_at: float  # seconds (the database clock's epoch)

    @classmethod
    def full(cls, shape: BucketShape, now: float) -> Bucket:
        return cls(shape.burst, now)


@dataclass(frozen=True)
class Take:
    granted: bool
    wait_seconds: float  # 0 when granted; else how long until a token can be there
    at: float  # the time the take counts at: max(now, the bucket's last update)
    bucket: Bucket  # the bucket after the take


def take(
    shape: BucketShape, bucket: Bucket, factor: float, blocked_until: float, now: float
) -> Take:
    """One request's take at ``now`` (``factor``: the credential's rate factor, in ``(0, 1]``)."""
    at = max(now, bucket.updated_at)
    rate = shape.rate * factor
    tokens = min(shape.burst, bucket.tokens + (at - bucket.updated_at) * rate)
    if at < blocked_until:
        return Take(False, blocked_until - now, at, Bucket(tokens, at))
    if tokens >= 1.0:
        return Take(True, 0.0, at, Bucket(tokens - 1.0, at))
    return Take(False, (at - now) + (1.0 - tokens) / rate, at, Bucket(tokens, at))


def window_holds(shape: BucketShape, window_seconds: float) -> int:
    """The most grants any ``window_seconds`` of a bucket's grant times can hold: fewer than
    ``burst + rate * window_seconds`` (the tokens at the first grant, plus the refill until the
    last, which is less than a window later)."""
    return math.ceil(shape.burst + shape.rate * window_seconds) - 1


def factor_rule(window_seconds: float) -> AimdRule:
    """The AIMD rule of a share of ``window_seconds``' window, in units of the share (ceiling 1):
    as ``AimdRule.for_window``: the floor 5 %, a cut halves, the climb from a cut at the full
    share takes 15 windows, 429s within ``min(window, 10 s)`` of a cut are the same burst."""
    return AimdRule(
        ceiling=1.0,
        floor=0.05,
        decrease=0.5,
        increase_per_second=0.95 / (30 * window_seconds),
        cooldown_seconds=max(1.0, min(window_seconds, 10.0)),
    )


@dataclass(frozen=True)
class HoldRule:
    """The hold of a 429: ``base`` seconds without ``Retry-After``; doubled while 429s follow a
    hold within as long again, at most ``cap`` (a ``Retry-After`` above it still counts)."""

    base: float
    cap: float

    @classmethod
    def for_window(cls, window_seconds: float) -> HoldRule:
        """Base: the window, between 1 s and 10 s (PowerOffice 1 s, Wix 10 s, as its client
        waits without the header); cap: a minute, or the window when longer."""
        return cls(base=max(1.0, min(window_seconds, 10.0)), cap=max(60.0, window_seconds))


@dataclass(frozen=True)
class Throttle:
    """What 429s taught about one credential, shared by every holder of it."""

    aimd: AimdState  # rate = the factor
    blocked_until: float = 0.0
    backoff_seconds: float = 0.0  # the last default hold (0: none yet)
    throttled: int = 0

    @classmethod
    def initial(cls, now: float) -> Throttle:
        return cls(AimdState(1.0, now))


def factor_at(rule: AimdRule, throttle: Throttle, now: float) -> float:
    return effective_rate(rule, throttle.aimd, max(now, throttle.aimd.since))


def hold_after_429(
    hold: HoldRule, throttle: Throttle, retry_after: float | None, now: float
) -> tuple[float, float]:
    """``(blocked_until, backoff_seconds)`` after a 429 at ``now``.

    A 429 while the credential is still held belongs to the same burst: the hold stands, or
    lasts to its ``Retry-After`` if that is later. Otherwise the back-off is the ``Retry-After``
    (or, without one, the base) — doubled instead (up to the cap) when this 429 came within one
    back-off of the last hold's end: waiting what the API said did not help. The hold lasts the
    longer of the ``Retry-After`` (always a floor) and the back-off.
    """
    told = retry_after if retry_after is not None and retry_after > 0 else 0.0
    if now < throttle.blocked_until:
        return max(throttle.blocked_until, now + told), throttle.backoff_seconds
    last = throttle.backoff_seconds
    repeated = last > 0 and now < throttle.blocked_until + last
    backoff = min(hold.cap, last * 2.0) if repeated else (told or hold.base)
    return now + max(told, backoff), backoff


def after_429(
    rule: AimdRule, hold: HoldRule, throttle: Throttle, retry_after: float | None, now: float
) -> Throttle:
    """The credential's state after a 429 at ``now``: the factor cut (once a burst), the hold."""
    at = max(now, throttle.aimd.since)
    blocked_until, backoff = hold_after_429(hold, throttle, retry_after, at)
    return Throttle(
        throttled(rule, throttle.aimd, at), blocked_until, backoff, throttle.throttled + 1
    )
