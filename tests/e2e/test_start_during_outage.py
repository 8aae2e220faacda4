"""A service started while Kafka is down waits for it, and runs once it is back (issue #11).

The chaos suite found the extractor exiting with code 1 when its restarter brought it up during a
broker outage: ``make_producer`` gave up after kafka-python's 30 s bootstrap timeout and nothing
caught it. "A broker restart must never end a service": each service is started here while its
(own) Kafka is stopped, kept waiting for longer than that timeout, and must turn ready once the
broker is started again, then stop cleanly on SIGTERM.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.connectors.seed import generate
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack
from tests.support.own_infra import OwnInfra

pytestmark = pytest.mark.integration

#: Longer than kafka-python's bootstrap timeout (30 s), after which the old code exited.
OUTAGE_SECONDS = 40


@pytest.fixture
def outage_infra() -> Iterator[OwnInfra]:
    infra = OwnInfra.up()
    try:
        yield infra
    finally:
        infra.down()


def test_services_started_during_a_kafka_outage_wait_for_it(
    outage_infra: OwnInfra, tmp_path: Path
) -> None:
    stack = Stack(outage_infra.bootstrap, outage_infra.dsn, tmp_path / "run")
    try:
        stack.start_simulators()
        stack.create_database()
        seed_simulators(generate(20, seed=2), stack.poweroffice_url, stack.wix_url)
        stack.provision_topics()
        outage_infra.run("kafka-stop")
        for name in SERVICES:
            stack.start_service(name)
        time.sleep(OUTAGE_SECONDS)
        exited = [name for name, process in stack.processes.items() if not process.running]
        assert exited == [], f"services ended during the outage: {exited}"
        outage_infra.run("kafka-start")
        for name in SERVICES:
            stack.processes[name].wait_http("/readyz", timeout=120)
    finally:
        codes = stack.stop()
        stack.drop_database()
    assert {name: codes[name] for name in SERVICES} == dict.fromkeys(SERVICES, 0), codes
