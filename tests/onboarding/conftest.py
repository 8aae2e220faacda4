"""Fixtures for ``tether doctor`` / ``tether preview``: both simulators over real HTTP, and the
``TETHER_*`` environment a deployment would set, pointing at them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.connectors.poweroffice.simulator import (
    DEFAULT_APPLICATION_KEY,
    DEFAULT_CLIENT_KEY,
    DEFAULT_SUBSCRIPTION_KEY,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import ServerThread
from services.connectors.wix.simulator import DEFAULT_SITE_ID, WixSimulator

WIX_API_KEY = "onboarding-wix-key"


@dataclass
class Sims:
    poweroffice: PowerOfficeSimulator
    poweroffice_server: ServerThread
    wix: WixSimulator
    wix_server: ServerThread

    def env(self, tmp_path: Path) -> dict[str, str]:
        return {
            "TETHER_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "TETHER_POWEROFFICE_BASE_URL": PowerOfficeSimulator.base_url(self.poweroffice_server),
            "TETHER_POWEROFFICE_TOKEN_URL": PowerOfficeSimulator.token_url(self.poweroffice_server),
            "TETHER_POWEROFFICE_APP_KEY": DEFAULT_APPLICATION_KEY,
            "TETHER_POWEROFFICE_CLIENT_KEY": DEFAULT_CLIENT_KEY,
            "TETHER_POWEROFFICE_SUBSCRIPTION_KEY": DEFAULT_SUBSCRIPTION_KEY,
            "TETHER_WIX_BASE_URL": self.wix_server.url,
            "TETHER_WIX_API_KEY": WIX_API_KEY,
            "TETHER_WIX_SITE_ID": DEFAULT_SITE_ID,
        }


def start(poweroffice: PowerOfficeSimulator, wix: WixSimulator) -> Iterator[Sims]:
    with poweroffice.serve() as po_server, wix.server() as wix_server:
        yield Sims(poweroffice, po_server, wix, wix_server)


@pytest.fixture
def sims() -> Iterator[Sims]:
    """Healthy simulators with the APIs' real rate limits (10 req/s, 200 req/min)."""
    yield from start(
        PowerOfficeSimulator(limits=SimulatorLimits()), WixSimulator(api_key=WIX_API_KEY)
    )


@pytest.fixture
def environment(sims: Sims, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = sims.env(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
