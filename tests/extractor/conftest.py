"""Fixtures of the extractor tests: both simulators and a harness on the test's topic prefix;
extractor replicas over the tenant registry (``fleets``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.connectors.poweroffice.simulator import PowerOfficeSimulator, SimulatorLimits
from services.connectors.wix.simulator import WixSimulator
from services.connectors.wix.simwebhooks import WebhookSettings
from tests.extractor.fleet_support import Fleets
from tests.extractor.support import Harness, close_extractor


@pytest.fixture
def harness(kafka_bootstrap: str, topic_prefix: str) -> Iterator[Harness]:
    po = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    wix = WixSimulator(rate_limit=0, webhook_settings=WebhookSettings(retry_delays=[0.2, 0.5]))
    with po.serve() as po_server, wix.server() as wix_server:
        h = Harness(kafka_bootstrap, topic_prefix, po, po_server, wix, wix_server)
        try:
            yield h
        finally:
            for entry in h.contexts:
                close_extractor(*entry)
            wix.close()


@pytest.fixture
def fleets(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Fleets]:
    with ExitStack() as stack:
        f = Fleets(kafka_bootstrap, topic_prefix, tmp_path / "secrets", stack)
        f.provision()
        try:
            yield f
        finally:
            for replica in list(f.replicas):
                f.stop_replica(replica)
