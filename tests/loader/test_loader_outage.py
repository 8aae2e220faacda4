"""The loader rides out a Kafka outage (issue #11, item 2) on a broker of its own.

The broker is stopped while commands are being applied, for longer than the loader waits for a
flush, then started again on the same port and data: the loader must neither end its loop nor
lose or double an outcome.
"""

from __future__ import annotations

import time

import pytest
from kafka.errors import KafkaTimeoutError

from services.connectors.simkit import FaultRule
from services.loader import service as loader_service
from services.loader.plan import LoaderCommand
from tests.loader.support import LoaderHarness, Stack, wix_create
from tests.support.own_infra import OwnInfra


def _contact(first: str, mailbox: str) -> dict[str, str | None]:
    return {"info.name.first": first, "info.emails[primary].email": f"{mailbox}@example.no"}


def _send_once_back(harness: LoaderHarness, command: LoaderCommand) -> LoaderCommand:
    """The test's own producer reconnects on its own schedule after the restart."""
    deadline = time.monotonic() + 90
    while True:
        try:
            return harness.send(command)
        except KafkaTimeoutError:
            assert time.monotonic() < deadline, "the restarted broker did not take a command"


def test_a_broker_outage_longer_than_the_flush_timeout_never_ends_the_loader(
    own_infra: OwnInfra, sims: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loader waits this long for a flush before it tries again (30 s in production).
    monkeypatch.setattr(loader_service, "SEND_TIMEOUT_SECONDS", 2.0)
    harness = LoaderHarness(sims, own_infra.bootstrap).start()
    try:
        warm = harness.send(wix_create(_contact("Warm", "warm")))
        harness.wait_outcome(warm.command_id)
        # Commands that are still being applied when the broker goes away.
        sims.wix.faults.add(
            FaultRule(kind="latency", path=r"^/contacts/v4/contacts$", seconds=1.5, times=4)
        )
        during = [harness.send(wix_create(_contact("During", f"d{i}"))) for i in range(4)]
        assert harness.service is not None
        deadline = time.monotonic() + 10
        while harness.service._in_flight < 4:
            assert time.monotonic() < deadline, "the loader did not take the commands"
            time.sleep(0.02)
        own_infra.run("kafka-stop")
        time.sleep(8.0)  # the outcomes are ready; the flush times out (more than once)
        assert harness._thread is not None and harness._thread.is_alive(), (
            "the loader's loop ended during the outage"
        )
        own_infra.run("kafka-start")
        after = [_send_once_back(harness, wix_create(_contact("After", f"a{i}"))) for i in range(3)]
        for command in [*during, *after]:
            harness.wait_outcome(command.command_id, timeout=90)
        assert harness._thread.is_alive(), "the loader's loop ended"
        time.sleep(1.0)  # anything doubled would be on the topic by now
        for command in [warm, *during, *after]:
            outcomes = harness.outcomes_for(command.command_id)
            assert len(outcomes) == 1, (command.command_id, outcomes)
            assert outcomes[0]["status"] == "CREATED"
        assert sims.wix_count("create") == 8  # every contact written exactly once
    finally:
        harness.close()
