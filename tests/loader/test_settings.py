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


def test_shares_round_down_and_zero_lifts() -> None:
    assert budget_for("x", 10, 0.33, 1.0).requests == 3
    assert budget_for("x", 10, 0.01, 1.0).requests == 1
    assert not budget_for("x", 0, 0.5, 1.0).limited
    settings = LoaderSettings(wix_requests_per_minute=0, wix_budget_share=0.7)
    assert not settings.wix_budget().limited
