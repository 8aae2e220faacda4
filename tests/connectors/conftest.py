"""Fixtures shared by the connector tests: the Wix simulator over real HTTP, reset per test.

A test module that needs the simulator configured otherwise (webhooks, limits) defines its own
``sim`` / ``server`` / ``http``, which take precedence over these.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.connectors.simkit import ServerThread
from services.connectors.wix.simulator import WixSimulator


@pytest.fixture(scope="module")
def sim() -> Iterator[WixSimulator]:
    simulator = WixSimulator(rate_limit=0)
    yield simulator
    simulator.close()


@pytest.fixture(scope="module")
def server(sim: WixSimulator) -> Iterator[ServerThread]:
    with sim.server() as running:
        yield running


@pytest.fixture
def http(sim: WixSimulator, server: ServerThread) -> Iterator[httpx.Client]:
    """A client with the site's API key, on a simulator emptied for this test."""
    sim.reset()
    headers = {"Authorization": sim.api_key, "wix-site-id": sim.site_id}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        yield client
