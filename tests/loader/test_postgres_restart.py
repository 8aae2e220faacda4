"""After a PostgreSQL restart the loader makes progress at once (issue #11, item 7).

The loader does not use PostgreSQL; what it waits for is commands, and the mapper writes them.
The whole stack runs as processes on infrastructure of its own; PostgreSQL is stopped while
PowerOffice edits arrive, then started again: the mapper must ride it out and the loader must
apply the resulting commands (it made no progress for ~30 s in the chaos run because the mapper's
loop had ended on the refused connection and only a process restart brought it back).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import generate
from services.core.topics import TopicLayout
from services.demo.main import wait_for_sync
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack
from tests.support.own_infra import OwnInfra

pytestmark = pytest.mark.integration


def _total(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


@pytest.fixture
def stack(own_infra: OwnInfra, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(own_infra.bootstrap, own_infra.dsn, tmp_path / "run")
    try:
        running.start_simulators()
        running.create_database()
        data = generate(40, seed=3)
        seeded = seed_simulators(data, running.poweroffice_url, running.wix_url)
        running.provision_topics()
        running.start_services()
        counts = seeded.counts()
        total = counts["employees"] + counts["customers"] + counts["contact_persons"]
        wait_for_sync(running, TopicLayout(prefix=running.topic_prefix, partitions=3), total, 180)
        yield running
    finally:
        running.stop()
        running.drop_database()


def test_the_loader_applies_the_commands_of_an_outage_as_soon_as_postgres_is_back(
    own_infra: OwnInfra, stack: Stack
) -> None:
    def outcomes() -> float:
        return _total(stack.metrics_text("loader"), "tether_loader_outcomes_total")

    before = outcomes()
    with PowerOfficeSimulatorAdmin(stack.poweroffice_url) as po:
        employees = [r["record"] for r in po.records("employees")][:6]
        own_infra.run("postgres-stop")
        try:
            for i, employee in enumerate(employees):
                po.edit("employees", employee["Id"], {"LastName": f"Outage{i}"})
            time.sleep(8.0)  # the extractor emits the changes; the mapper cannot persist them
            assert outcomes() == before  # nothing can be mapped meanwhile
        finally:
            own_infra.run("postgres-start")
    deadline = time.monotonic() + 60
    while outcomes() < before + len(employees):
        stopped = [name for name in SERVICES if not stack.processes[name].running]
        assert not stopped, f"{stopped} ended during the PostgreSQL outage"
        assert time.monotonic() < deadline, "no commands applied after PostgreSQL came back"
        time.sleep(0.25)
    assert all(stack.processes[name].running for name in SERVICES)
