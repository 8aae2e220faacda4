"""The loader as a service: poison input, offsets, metrics, graceful stop, the ``tether loader``
process (SIGTERM, health, readiness, metrics endpoints)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client import generate_latest

from services.connectors.simkit import FaultRule
from services.core.service import ServiceContext
from services.loader.service import LoaderService
from tests.loader.support import LoaderHarness, Stack, wix_create, wix_update

CONTACT_PATH = r"^/contacts/v4/contacts/[^/]+$"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_poison_bytes_are_dead_lettered_and_the_loop_continues(
    loader: LoaderHarness, sims: Stack
) -> None:
    poison = b"\xc3\x01" + b"\x00" * 8 + b"garbage"
    loader.send_raw("wix", "contacts", b"not avro at all", key=b"x")
    loader.send_raw("poweroffice", "employees", poison, key=b"y")
    command = loader.send(wix_create({"info.name.first": "After", "info.name.last": "Poison"}))
    assert loader.wait_outcome(command.command_id)["status"] == "CREATED"
    dead = loader.wait_dead_letters(2)
    assert sorted(d["payload"] for d in dead) == sorted([b"not avro at all", poison])
    assert {d["error_class"] for d in dead} == {"DecodeError"}
    assert {d["source_topic"] for d in dead} == {
        f"{loader.prefix}.commands.wix.contacts",
        f"{loader.prefix}.commands.poweroffice.employees",
    }
    deadline = time.monotonic() + 10
    while loader.committed() < 3:  # past both poison messages and the command
        assert time.monotonic() < deadline, "offsets not committed past the poison messages"
        time.sleep(0.1)


def test_metrics_count_api_calls_outcomes_and_budget(loader: LoaderHarness, sims: Stack) -> None:
    contact = sims.wix_admin.seed([{"info": {"name": {"first": "Ola"}}}])[0]
    sims.wix.faults.add(
        FaultRule(kind="status", path=CONTACT_PATH, method="PATCH", status=503, times=2)
    )
    command = loader.send(wix_update(contact, {"info.name.first": "Ole"}))
    assert loader.wait_outcome(command.command_id)["status"] == "APPLIED"
    assert loader.ctx is not None
    text = generate_latest(loader.ctx.registry).decode()
    assert 'tether_api_requests_total{operation="update",status="503",system="wix"} 2.0' in text
    assert 'tether_api_requests_total{operation="update",status="200",system="wix"} 1.0' in text
    assert (
        'tether_loader_outcomes_total{action="UPDATE",resource="contacts",status="APPLIED",'
        'system="wix"} 1.0'
    ) in text
    assert 'tether_loader_retries_total{reason="ServerError",system="wix"} 1.0' in text
    assert 'tether_api_budget_permits_total{budget="wix"} 3.0' in text
    assert "tether_loader_in_flight 0.0" in text
    assert 'tether_api_request_seconds_bucket{le="60.0",operation="update",system="wix"}' in text


def test_stop_finishes_started_commands_and_commits_only_what_has_an_outcome(
    sims: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    harness = LoaderHarness(sims, kafka_bootstrap, topic_prefix, loader_concurrency=2).start()
    contacts = sims.wix_admin.seed([{"info": {"name": {"first": f"Slow{i}"}}} for i in range(10)])
    sims.wix.faults.add(FaultRule(kind="latency", path=CONTACT_PATH, method="PATCH", seconds=0.6))
    commands = [harness.send(wix_update(c, {"info.name.last": "Done"})) for c in contacts]
    deadline = time.monotonic() + 10
    while not harness.outcomes():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    took = harness.stop()
    assert took < 5  # two started commands finish; queued ones are left for the next loader
    committed = harness.committed()
    # The topic reader may be one fetch behind the loader's last outcomes: read until it has as
    # many as were committed (never past a command without an outcome), or give up.
    deadline = time.monotonic() + 5
    done = {o["command_id"] for o in harness.outcomes()}
    while len(done) < committed and time.monotonic() < deadline:
        time.sleep(0.05)
        done = {o["command_id"] for o in harness.outcomes()}
    assert 0 < len(done) < len(commands)
    assert committed <= len(done)  # never past a command without an outcome
    harness.close()

    sims.wix.faults.clear()
    again = LoaderHarness(sims, kafka_bootstrap, topic_prefix).start()
    try:
        for command in commands:
            again.wait_outcome(command.command_id)
        outcomes = again.outcomes()
        assert sorted(o["command_id"] for o in outcomes) == sorted(c.command_id for c in commands)
        assert {o["status"] for o in outcomes} == {"APPLIED"}
        assert sims.wix_count("update", 200) == len(commands)
    finally:
        again.close()


def outcomes_produced(harness: LoaderHarness) -> float:
    assert harness.service is not None
    return sum(
        sample.value
        for metric in harness.service.metrics.outcomes.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_a_second_replica_rebalances_without_double_writes(
    sims: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    first = LoaderHarness(sims, kafka_bootstrap, topic_prefix, loader_concurrency=2).start()
    second: LoaderHarness | None = None
    try:
        contacts = sims.wix_admin.seed(
            [{"info": {"name": {"first": f"Rebalance{i}"}}} for i in range(20)]
        )
        sims.wix.faults.add(
            FaultRule(kind="latency", path=CONTACT_PATH, method="PATCH", seconds=0.15)
        )
        commands = [first.send(wix_update(c, {"info.name.last": "Done"})) for c in contacts]
        while len(first.outcomes()) < 5:
            time.sleep(0.02)
        second = LoaderHarness(sims, kafka_bootstrap, topic_prefix, loader_concurrency=2).start()
        for command in commands:
            first.wait_outcome(command.command_id, timeout=30)
        statuses = {o["command_id"]: o["status"] for o in first.outcomes() if o["status"] != "NOOP"}
        assert statuses == {c.command_id: "APPLIED" for c in commands}
        assert sims.wix_count("update", 200) == len(commands)  # each contact written once
        # Every command was applied by one replica or the other (copies re-delivered by the
        # rebalance are skipped or become NOOPs), and the loop survived the rebalance.
        assert outcomes_produced(first) + outcomes_produced(second) >= len(commands)
    finally:
        first.close()
        if second is not None:
            second.close()


def test_tether_loader_process_serves_health_and_stops_on_sigterm(
    sims: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = sims.settings(kafka_bootstrap, topic_prefix)
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        secret = getattr(value, "get_secret_value", None)
        env[f"TETHER_{name.upper()}"] = str(secret() if secret else value)
    port = free_port()
    env["TETHER_HTTP_PORT"] = str(port)
    env["TETHER_SECRETS_DIR"] = "/nonexistent"
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "loader", "--provision-topics"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        harness = LoaderHarness(sims, kafka_bootstrap, topic_prefix)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "loader never became ready"
            time.sleep(0.1)
        assert ready.json()["checks"] == {
            "kafka": True,
            "completed_index": True,
            "partitions_progressing": True,
        }
        assert httpx.get(f"{base}/healthz").json() == {"alive": True}
        command = harness.send(wix_create({"info.name.first": "Process"}))
        assert harness.wait_outcome(command.command_id)["status"] == "CREATED"
        metrics = httpx.get(f"{base}/metrics").text
        assert "tether_loader_outcomes_total" in metrics
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - started < 20
        harness.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class FakeConsumer:
    def __init__(self, assigned: set[str]) -> None:
        self.assigned = assigned

    def assignment(self) -> set[str]:
        return self.assigned


def test_a_consumer_left_without_partitions_is_replaced(sims: Stack, topic_prefix: str) -> None:
    settings = sims.settings("127.0.0.1:1", topic_prefix, loader_unassigned_restart_seconds=0.2)
    ctx = ServiceContext.create("loader", settings, install_signals=False)
    service = LoaderService(ctx, settings, {})
    assert not service._stuck(FakeConsumer({"p"}))  # type: ignore[arg-type]
    assert not service._stuck(FakeConsumer(set()))  # type: ignore[arg-type]
    time.sleep(0.3)
    assert service._stuck(FakeConsumer(set()))  # type: ignore[arg-type]
    assert not service._stuck(FakeConsumer({"p"}))  # type: ignore[arg-type]
