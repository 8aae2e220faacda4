"""A Deployment's API budget share split by its replica count (``process_share``), and the
budgets the loader and the verifier build from it: their pods together use the share, at any
scale."""

from __future__ import annotations

import pytest

from services.core.budget import process_share
from services.loader.settings import LoaderSettings
from services.verify.settings import VerifySettings


@pytest.mark.parametrize("replicas", (1, 2, 3, 4, 7, 12))
def test_the_pods_of_a_deployment_together_take_its_share(replicas: int) -> None:
    share = process_share(0.5, replicas)
    assert share == pytest.approx(0.5 / replicas)
    assert share * replicas == pytest.approx(0.5)


def test_no_replicas_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        process_share(0.5, 0)


@pytest.mark.parametrize("replicas", (1, 2, 3, 4, 6))
def test_loader_budgets_are_the_deployment_share_split_by_replicas(replicas: int) -> None:
    settings = LoaderSettings(poweroffice_budget_share=0.5, wix_budget_share=0.5, replicas=replicas)
    po, wix = settings.poweroffice_budget(), settings.wix_budget()
    # Whole permits per window (budget_shape) keep the average rate exactly.
    assert po.rate_per_second * replicas == pytest.approx(10 * 0.5)
    assert wix.rate_per_second * replicas == pytest.approx(200 / 60 * 0.5)


def test_the_replica_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_REPLICAS", "4")
    monkeypatch.setenv("TETHER_POWEROFFICE_BUDGET_SHARE", "0.4")
    settings = LoaderSettings()
    assert settings.replicas == 4
    assert settings.poweroffice_budget().rate_per_second == pytest.approx(1.0)  # 10 x 0.4 / 4
    monkeypatch.delenv("TETHER_POWEROFFICE_BUDGET_SHARE")
    verify = VerifySettings()  # its own default share
    assert verify.poweroffice_budget().rate_per_second == pytest.approx(0.25)  # 10 x 0.1 / 4
    monkeypatch.setenv("TETHER_REPLICAS", "0")
    with pytest.raises(ValueError, match="replicas"):
        LoaderSettings()
