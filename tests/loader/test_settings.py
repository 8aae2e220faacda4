"""The loader's settings: defaults and the budget shares it derives."""

from __future__ import annotations

from services.loader.settings import LoaderSettings, budget_for


def test_defaults_and_budget_shares() -> None:
    settings = LoaderSettings()
    assert settings.http_port == 9102
    po = settings.poweroffice_budget()
    assert (po.requests, po.per_seconds) == (5, 1.0)  # 10/s x 0.5
    wix = settings.wix_budget()
    assert (wix.requests, wix.per_seconds) == (100, 60.0)  # 200/min x 0.5


def test_fractional_shares_keep_their_average_rate_and_zero_lifts() -> None:
    quarter = budget_for("x", 10, 0.25, 1.0)
    assert (quarter.requests, quarter.per_seconds) == (2, 0.8)
    assert quarter.rate_per_second == 2.5
    small = budget_for("x", 10, 0.05, 1.0)
    assert (small.requests, small.per_seconds) == (1, 2.0)
    wix = budget_for("x", 200, 0.25, 60.0)
    assert (wix.requests, wix.per_seconds) == (50, 60.0)
    assert not budget_for("x", 0, 0.5, 1.0).limited
    settings = LoaderSettings(wix_requests_per_minute=0, wix_budget_share=0.7)
    assert not settings.wix_budget().limited
