"""When to renew an access token: one rule for every API client.

A client renews its bearer token *before* it expires (so a call never carries a token that dies
in flight) but not so early that a short-lived token is renewed before every call. The margin is
therefore a fraction of the token's lifetime, capped for long-lived tokens:

    renew at  requested_at + lifetime - min(cap, fraction * lifetime)

``requested_at`` is the client's monotonic clock when it *sent* the token request (the server's
clock started the lifetime no earlier). A fixed margin is wrong both ways: 60 s before the end of
a 30 s token means "renew before every call"; 10 % of a 4-hour token is 24 minutes too early.

Pure module: standard library only.
"""

from __future__ import annotations

DEFAULT_FRACTION = 0.1
"""Renew when 90 % of the lifetime has passed ..."""
DEFAULT_CAP_SECONDS = 60.0
"""... but never more than this many seconds before expiry."""


def renewal_margin(
    lifetime: float, *, fraction: float = DEFAULT_FRACTION, cap: float = DEFAULT_CAP_SECONDS
) -> float:
    """Seconds before expiry at which a token of ``lifetime`` seconds is renewed."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("fraction must be in [0, 1)")
    if cap < 0:
        raise ValueError("cap must not be negative")
    return min(cap, fraction * max(lifetime, 0.0))


def renew_at(
    requested_at: float,
    lifetime: float,
    *,
    fraction: float = DEFAULT_FRACTION,
    cap: float = DEFAULT_CAP_SECONDS,
) -> float:
    """The client-clock time from which a token requested at ``requested_at`` is renewed."""
    return requested_at + max(lifetime, 0.0) - renewal_margin(lifetime, fraction=fraction, cap=cap)
