"""The pure half of ``tether doctor``: check results and the rules that produce them.

A ``Check`` is one line an operator acts on: a name, OK / WARN / FAIL, what was found, and (for
WARN/FAIL) the one-line fix. The rules below turn measurements into checks — the token's lifetime
and the renewal margin (``services.core.tokens``), a server's ``Date`` header against the local
clock, the rate-limit headers an API returned, an API error into the credential or permission to
fix. Nothing here performs I/O or reads the clock: callers pass what they measured.

Details never carry secrets, tokens, e-mail addresses or phone numbers: only names of settings,
statuses, error codes and counts.

Imports: standard library, ``services.core.errors`` and ``services.core.tokens`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from services.core.errors import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TetherError,
    TransportError,
)
from services.core.tokens import renewal_margin

#: Response headers that carry rate-limit information on some APIs (neither API documents any:
#: reference UNCONFIRMED points; reported when present).
RATE_LIMIT_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
)
WIX_EXTENDED_FIELDS_PERMISSION = "Manage Contacts \u2013 extended fields"  # as Wix names it


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def exit_code(checks: Iterable[Check]) -> int:
    """1 when any check failed, else 0 (warnings do not fail the run)."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def describe(exc: BaseException) -> str:
    """An error as the doctor shows it: class, status and API error code — never a message
    body (it could echo personal data)."""
    if isinstance(exc, ApiError):
        code = f" {exc.error_code}" if exc.error_code else ""
        return f"{type(exc).__name__} (HTTP {exc.status}{code})"
    return type(exc).__name__


def api_failure(name: str, exc: BaseException, *, credentials: str, permission: str) -> Check:
    """An API call that failed, as the check naming what to fix.

    ``credentials``: the fix for a refused authentication (which settings to check);
    ``permission``: the fix for a 403 (which permission to grant)."""
    found = describe(exc)
    if isinstance(exc, AuthenticationError):
        return fail(name, f"authentication refused: {found}", credentials)
    if isinstance(exc, PermissionDeniedError):
        return fail(name, f"permission refused: {found}", permission)
    if isinstance(exc, NotFoundError):
        return fail(name, f"endpoint not found: {found}", "check the base URL setting")
    if isinstance(exc, RateLimitedError):
        return warn(name, f"rate limited: {found}", "other clients share this budget; retry later")
    if isinstance(exc, TransportError):
        return fail(name, f"not reachable: {found}", "check the base URL and the network path")
    if isinstance(exc, TetherError) and exc.retriable:
        return warn(name, f"the API failed: {found}", "transient: run tether doctor again")
    return fail(name, f"unexpected answer: {found}", "see the API's status page; retry later")


def token_renewal(
    name: str, lifetime: float | None, *, fraction: float, cap: float, assumed: float
) -> Check:
    """The token's lifetime and when the client renews it (fraction of the lifetime, capped)."""
    if lifetime is None:
        return warn(
            name,
            f"the token response has no expires_in: the client assumes {assumed:.0f} s",
            "nothing to do unless calls fail with 401 (the client then re-authenticates once)",
        )
    margin = renewal_margin(lifetime, fraction=fraction, cap=cap)
    detail = (
        f"token lifetime {lifetime:.0f} s, renewed {margin:.0f} s before expiry "
        f"(after {lifetime - margin:.0f} s)"
    )
    if lifetime < 60:
        return warn(name, detail, "a token this short costs a token request every minute")
    return ok(name, detail)


def clock_skew(date_header: str | None, local_epoch: float) -> float | None:
    """Server minus local clock in seconds, from an HTTP ``Date`` header (1 s resolution), or
    None when there is no parseable header."""
    if not date_header:
        return None
    try:
        server = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if server.tzinfo is None:
        return None
    # The header truncates to whole seconds: the server's time was within [date, date + 1).
    return server.timestamp() + 0.5 - local_epoch


def skew_check(name: str, skew: float | None, max_seconds: float) -> Check:
    """WARN when the clocks differ by more than ``max_seconds`` (the Date header has whole
    seconds, so up to 0.5 s either way is resolution, not skew)."""
    if skew is None:
        return warn(
            name,
            "the API sent no Date header: clock skew not measured",
            "make sure this host's clock is synchronised (NTP: chrony / systemd-timesyncd)",
        )
    detail = f"server clock {skew:+.1f} s from this host's"
    if abs(skew) > max_seconds + 0.5:
        return warn(
            name,
            detail + f" (more than {max_seconds:.0f} s)",
            "synchronise this host's clock (NTP: chrony / systemd-timesyncd); skew shifts "
            "incremental polling windows and webhook expiry checks",
        )
    return ok(name, detail)


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers among ``headers`` (lower-cased names)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return {h: lowered[h] for h in RATE_LIMIT_HEADERS if h in lowered}


def rate_limit_check(
    name: str,
    *,
    limit: float,
    unit: str,
    share: float,
    seen: Mapping[str, str],
    throttled: int,
) -> Check:
    """The configured budget (the API's limit and this deployment's share) against what the API
    said (rate-limit headers when it sends any, 429s during the doctor's own calls)."""
    if limit <= 0:
        return warn(
            name,
            "rate limit lifted (0): no client-side budget",
            f"set the real limit (10 requests/s PowerOffice, 200 requests/min Wix) — {unit}",
        )
    detail = (
        f"limit {limit:g} requests/{unit}; each service's share {share:.0%} "
        f"= {limit * share:g} requests/{unit}"
    )
    if seen:
        detail += "; API headers: " + ", ".join(f"{k}={v}" for k, v in sorted(seen.items()))
    else:
        detail += "; the API sent no rate-limit headers"
    if throttled:
        return warn(
            name,
            detail + f"; {throttled} request(s) answered 429 during these checks",
            "another client uses the same key: lower the shares (TETHER_*_BUDGET_SHARE)",
        )
    return ok(name, detail)
