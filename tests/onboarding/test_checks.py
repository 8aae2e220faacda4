"""The doctor's pure rules: token renewal, clock skew from a Date header, rate limits, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from services.core.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ServerError,
    TransportError,
)
from services.onboarding import checks
from services.onboarding.checks import Status

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC).timestamp()


def header(seconds_from_now: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + seconds_from_now, UTC), usegmt=True)


def test_clock_skew_from_the_date_header() -> None:
    assert checks.clock_skew(header(0), NOW + 0.3) == pytest.approx(0.2)
    assert checks.clock_skew(header(-30), NOW) == pytest.approx(-29.5)
    assert checks.clock_skew(None, NOW) is None
    assert checks.clock_skew("not a date", NOW) is None


def test_skew_beyond_the_limit_warns_with_a_fix() -> None:
    assert checks.skew_check("clock.x", 0.4, 5).status is Status.OK
    assert checks.skew_check("clock.x", 5.4, 5).status is Status.OK  # within the resolution
    late = checks.skew_check("clock.x", -12.0, 5)
    assert late.status is Status.WARN
    assert "NTP" in late.fix
    assert checks.skew_check("clock.x", None, 5).status is Status.WARN


def test_token_renewal_reports_the_lifetime_and_the_margin() -> None:
    real = checks.token_renewal("t", 1200, fraction=0.1, cap=60, assumed=600)
    assert real.status is Status.OK
    assert "lifetime 1200 s, renewed 60 s before expiry" in real.detail
    short = checks.token_renewal("t", 30, fraction=0.1, cap=60, assumed=600)
    assert short.status is Status.WARN
    assert "renewed 3 s before expiry" in short.detail
    unknown = checks.token_renewal("t", None, fraction=0.1, cap=60, assumed=600)
    assert unknown.status is Status.WARN
    assert "600" in unknown.detail


def test_rate_limits_report_shares_headers_and_429s() -> None:
    plain = checks.rate_limit_check("r", limit=10, unit="s", share=0.5, seen={}, throttled=0)
    assert plain.status is Status.OK
    assert "limit 10 requests/s" in plain.detail and "5 requests/s" in plain.detail
    seen = checks.rate_limit_check(
        "r", limit=200, unit="min", share=0.5, seen={"x-ratelimit-remaining": "17"}, throttled=2
    )
    assert seen.status is Status.WARN
    assert "x-ratelimit-remaining=17" in seen.detail
    assert checks.rate_limit_check(
        "r", limit=0, unit="s", share=1, seen={}, throttled=0
    ).status is (Status.WARN)
    assert checks.rate_limit_headers({"X-RateLimit-Limit": "10", "Date": "x"}) == {
        "x-ratelimit-limit": "10"
    }


def test_api_errors_name_the_fix() -> None:
    auth = AuthenticationError("refused", system="poweroffice", status=401)
    denied = PermissionDeniedError(
        "denied", system="wix", status=403, error_code="PERMISSION_DENIED"
    )
    made = [
        checks.api_failure("n", exc, credentials="check KEY", permission="grant PERM")
        for exc in (
            auth,
            denied,
            TransportError("down"),
            ServerError("boom", system="wix", status=503),
        )
    ]
    assert [(c.status, c.fix) for c in made[:2]] == [
        (Status.FAIL, "check KEY"),
        (Status.FAIL, "grant PERM"),
    ]
    assert "HTTP 403 PERMISSION_DENIED" in made[1].detail
    assert made[2].status is Status.FAIL
    assert made[3].status is Status.WARN  # transient
    assert checks.exit_code(made) == 1
    assert checks.exit_code(made[3:]) == 0
