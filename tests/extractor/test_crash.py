"""The extractor as a real process (``python -m services.cli extractor``): kill -9 and SIGTERM.

The PowerOffice simulator runs in this process (``ServerThread``, real HTTP); the extractor's own
budget is slow and its pages small, so a kill lands in the middle of a run. Events are read back
from the real Kafka.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from services.connectors.poweroffice.simulator import (
    Credentials,
    ManualClock,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import ServerThread
from services.core.codec import AvroCodec
from services.core.kafka import make_admin
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision
from tests.extractor.support import partitions_of, read_topics

ROOT = Path(__file__).resolve().parents[2]
CREDS = Credentials()
PAGE = 4
CUSTOMERS = 60


@pytest.fixture
def simulator() -> Iterator[tuple[PowerOfficeSimulator, ManualClock, ServerThread]]:
    clock = ManualClock(datetime.now(UTC) - timedelta(days=1))
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(), clock=clock)
    for i in range(CUSTOMERS):  # one second apart: the 2 s overlap re-reads two or three
        sim.seed("customers", [{"Name": f"Kunde {i} AS"}])
        clock.advance(1.0)
    with sim.serve() as server:
        yield sim, clock, server


def extractor_env(server: ServerThread, bootstrap: str, prefix: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        {
            "TETHER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TETHER_TOPIC_PREFIX": prefix,
            "TETHER_TOPIC_PARTITIONS": "2",
            "TETHER_HTTP_HOST": "127.0.0.1",
            "TETHER_HTTP_PORT": "0",
            "TETHER_PUBLIC_PORT": "0",
            "TETHER_SECRETS_DIR": str(tmp / "no-secrets"),
            "TETHER_WIX_ENABLED": "false",
            "TETHER_POWEROFFICE_BASE_URL": server.url + "/v2",
            "TETHER_POWEROFFICE_TOKEN_URL": server.url + "/OAuth/Token",
            "TETHER_POWEROFFICE_APP_KEY": CREDS.application_key,
            "TETHER_POWEROFFICE_CLIENT_KEY": CREDS.client_key,
            "TETHER_POWEROFFICE_SUBSCRIPTION_KEY": CREDS.subscription_key,
            "TETHER_POWEROFFICE_REQUESTS_PER_SECOND": "10",
            "TETHER_POWEROFFICE_BUDGET_SHARE": "0.6",  # 6 requests/s: ~0.17 s per page of 4
            "TETHER_POWEROFFICE_PAGE_SIZE": str(PAGE),
            "TETHER_POLL_OVERLAP_SECONDS": "2",
            "TETHER_POWEROFFICE_POLL_INTERVAL_SECONDS": "0.2",
        }
    )
    return env


def spawn(env: dict[str, str], tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(tmp / "extractor.log", "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "extractor", *args],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Watcher:
    """Counts customer change events as they arrive."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None)
        tps = partitions_of(self.consumer, topic)
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.count = 0

    def wait_for(self, n: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            assert time.monotonic() < deadline, f"only {self.count} events"
            assert proc.poll() is None, "the extractor exited early"
            for batch in self.consumer.poll(timeout_ms=50).values():
                self.count += len(batch)

    def close(self) -> None:
        self.consumer.close()


def customer_events(bootstrap: str, layout: TopicLayout) -> list[dict[str, Any]]:
    codec = AvroCodec()
    topic = layout.changes("poweroffice", "customers")
    return [codec.decode(m.value, "ChangeEvent") for m in read_topics(bootstrap, [topic])]


def provisioned(bootstrap: str, prefix: str) -> TopicLayout:
    layout = TopicLayout(prefix=prefix, partitions=2)
    admin = make_admin(TetherSettings(kafka_bootstrap_servers=bootstrap))
    try:
        provision(admin, layout)
    finally:
        admin.close()
    return layout


def test_kill_9_mid_run_loses_nothing(
    simulator: tuple[PowerOfficeSimulator, ManualClock, ServerThread],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    sim, clock, server = simulator
    layout = provisioned(kafka_bootstrap, topic_prefix)
    env = extractor_env(server, kafka_bootstrap, topic_prefix, tmp_path)
    watcher = Watcher(kafka_bootstrap, layout.changes("poweroffice", "customers"))
    edited: dict[int, str] = {}
    try:
        for kill_after in (14, 35):  # two crashes in the middle of the snapshot
            proc = spawn(env, tmp_path, "--once")
            watcher.wait_for(kill_after, proc)
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            # While it is down: edit a record it emitted and one it has not reached yet.
            for record in (sim.store.live("customers")[2], sim.store.live("customers")[-3]):
                clock.advance(1.0)
                changed = sim.edit("customers", record["Id"], {"Name": f"{record['Name']} v2"})
                edited[changed["Id"]] = changed["LastChangedDateTimeOffset"]
        proc = spawn(env, tmp_path, "--once")
        assert proc.wait(timeout=60) == 0
    finally:
        watcher.close()

    events = customer_events(kafka_bootstrap, layout)
    seen = {(e["record_id"], e["source_version"]) for e in events}
    # Nothing lost: every customer's current version is there, every edit included.
    current = {(str(r["Id"]), r["LastChangedDateTimeOffset"]) for r in sim.store.live("customers")}
    assert current <= seen
    assert {(str(i), v) for i, v in edited.items()} <= seen
    # At most a page re-emitted per crash, and each repeat with the same event id.
    repeats = collections.Counter((e["record_id"], e["source_version"]) for e in events)
    assert sum(n - 1 for n in repeats.values()) <= 2 * PAGE
    ids = collections.defaultdict(set)
    for e in events:
        ids[(e["record_id"], e["source_version"])].add(e["event_id"])
    assert all(len(v) == 1 for v in ids.values())


def test_sigterm_finishes_the_page_and_restarts_without_duplicates(
    simulator: tuple[PowerOfficeSimulator, ManualClock, ServerThread],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    sim, _clock, server = simulator
    layout = provisioned(kafka_bootstrap, topic_prefix)
    env = extractor_env(server, kafka_bootstrap, topic_prefix, tmp_path)
    watcher = Watcher(kafka_bootstrap, layout.changes("poweroffice", "customers"))
    try:
        proc = spawn(env, tmp_path)  # the service loop, not --once
        watcher.wait_for(10, proc)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        stopped_at = len(customer_events(kafka_bootstrap, layout))
        assert stopped_at < CUSTOMERS  # it stopped in the middle of the snapshot
        proc = spawn(env, tmp_path, "--once")
        assert proc.wait(timeout=60) == 0
    finally:
        watcher.close()
    events = customer_events(kafka_bootstrap, layout)
    assert sorted(int(e["record_id"]) for e in events) == sorted(
        r["Id"] for r in sim.store.live("customers")
    )  # every customer exactly once
