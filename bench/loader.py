"""Benchmark of the loader service: real Kafka, both simulators in-process (a script, not a test).

    python3 scripts/infra.py up                     # Kafka (prints the bootstrap address)
    .venv/bin/python bench/loader.py                # ~1.5 min: (a) lifted, (b) budgets, (c)
    .venv/bin/python bench/loader.py --full         # adds Wix's real 200 per 60 s (4+ minutes)

A backlog of commands is produced to the command topics first, then a loader (``LoaderService``
as ``tether loader`` runs it, on its own thread) works it off.

(a) Limits lifted (simulators and budgets): writes/s for Wix updates, PowerOffice guarded
    patches and Wix creates, at several worker counts. Every command is one write request.
(b) Real limits and the loader's configured share (50 %): the budget share the loader used while
    a backlog was waiting = permits taken in k whole windows from its first request / permits the
    share allows in that time (target >= 95 %), 429s on the wire and 429s surfacing as failed
    outcomes (target 0). PowerOffice runs at its real 10 requests/s; Wix at a scaled window with
    the real ratio (20 per 6 s = 200 per 60 s / 10, as ``bench/wix_client.py`` does), or the real
    200 per 60 s with ``--full``.
(c) Oversubscribed Wix: the loader configured with 60 % and another client (standing in for the
    extractor) with 60 % of the same limit. The simulator answers 429; the clients honour
    ``Retry-After``; no command may fail because of it.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from benchkit import add_timeout, arm_timeout
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import SecretStr

from services.connectors import registry
from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simulator import Credentials
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.simulator import DEFAULT_SITE_ID
from services.core.budget import ApiBudget
from services.core.codec import default_registry
from services.core.kafka import provision_topics
from services.core.service import ServiceContext
from services.core.topics import link_key
from services.loader.messages import command_datum
from services.loader.plan import Action, LoaderCommand
from services.loader.service import LoaderService
from services.loader.settings import LoaderSettings, budget_for

BOOTSTRAP = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
CODEC = default_registry()
PO = Credentials()


def encode(kind: str, datum: dict[str, Any]) -> bytes:
    from services.core.codec import AvroCodec

    return AvroCodec(CODEC).encode(kind, datum)


def decode(kind: str, payload: bytes) -> dict[str, Any]:
    from services.core.codec import AvroCodec

    return AvroCodec(CODEC).decode(payload, kind)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("simulator exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("simulator did not start")


class Sims:
    """Both simulators, each in its own process (so they do not share the loader's GIL)."""

    def __init__(self, wix_limit: int, wix_window: float, po_lifted: bool) -> None:
        self.wix_url = f"http://127.0.0.1:{free_port()}"
        self.po_url = f"http://127.0.0.1:{free_port()}"
        wix_args = ["--lift-limits"] if wix_limit <= 0 else []
        wix_args += ["--rate-limit", str(max(wix_limit, 1)), "--rate-window", str(wix_window)]
        self.processes = [
            self._spawn("services.connectors.wix.simulator", self.wix_url, wix_args),
            self._spawn(
                "services.connectors.poweroffice.simulator",
                self.po_url,
                ["--lift-limits"] if po_lifted else [],
            ),
        ]
        self.wix_admin = WixAdmin(self.wix_url, timeout_seconds=60)
        self.po_admin = PowerOfficeSimulatorAdmin(self.po_url, timeout=60)

    @staticmethod
    def _spawn(module: str, url: str, args: list[str]) -> subprocess.Popen[bytes]:
        port = int(url.rsplit(":", 1)[1])
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port, process)
        return process

    @classmethod
    def start(cls, wix_limit: int, wix_window: float, po_lifted: bool) -> Sims:
        return cls(wix_limit, wix_window, po_lifted)

    def stop(self) -> None:
        self.wix_admin.close()
        self.po_admin.close()
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)

    def settings(self, prefix: str, concurrency: int, **overrides: Any) -> LoaderSettings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": BOOTSTRAP,
            "topic_prefix": prefix,
            "topic_partitions": 6,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "log_level": "WARNING",
            "poll_timeout_ms": 100,
            "wix_base_url": self.wix_url,
            "wix_api_key": SecretStr("sim-wix-api-key"),
            "wix_site_id": DEFAULT_SITE_ID,
            "poweroffice_base_url": self.po_url + "/v2",
            "poweroffice_token_url": self.po_url + "/OAuth/Token",
            "poweroffice_app_key": SecretStr(PO.application_key),
            "poweroffice_client_key": SecretStr(PO.client_key),
            "poweroffice_subscription_key": SecretStr(PO.subscription_key),
            "loader_concurrency": concurrency,
        }
        values.update(overrides)
        return LoaderSettings(**values)

    def wix_contacts(self, n: int) -> list[dict[str, Any]]:
        return self.wix_admin.seed(
            [{"info": {"name": {"first": f"Bench{i}", "last": "Person"}}} for i in range(n)]
        )

    def employees(self, n: int) -> list[dict[str, Any]]:
        return self.po_admin.seed(
            "employees", [{"FirstName": f"Bench{i}", "LastName": "Person"} for i in range(n)]
        )

    def wix_429(self) -> int:
        return int(self.wix_admin.counters()["rateLimited"])

    def po_429(self) -> int:
        return int(self.po_admin.counters()["rate_limited"])


def wix_updates(contacts: list[dict[str, Any]]) -> list[LoaderCommand]:
    return [
        LoaderCommand(
            command_id=str(uuid.uuid4()),
            tenant="default",
            link_id=str(uuid.uuid4()),
            system="wix",
            resource="contacts",
            action=Action.UPDATE,
            target_id=c["id"],
            fields={"info.name.last": "Updated"},
            expected_revision=c["revision"],
            target_record=c,
        )
        for c in contacts
    ]


def wix_creates(n: int) -> list[LoaderCommand]:
    return [
        LoaderCommand(
            command_id=str(uuid.uuid4()),
            tenant="default",
            link_id=str(uuid.uuid4()),
            system="wix",
            resource="contacts",
            action=Action.CREATE,
            fields={
                "info.name.first": f"New{i}",
                "info.emails[primary].email": f"new{i}.{uuid.uuid4().hex[:6]}@example.com",
            },
        )
        for i in range(n)
    ]


def po_updates(records: list[dict[str, Any]]) -> list[LoaderCommand]:
    return [
        LoaderCommand(
            command_id=str(uuid.uuid4()),
            tenant="default",
            link_id=str(uuid.uuid4()),
            system="poweroffice",
            resource="employees",
            action=Action.UPDATE,
            target_id=str(r["Id"]),
            fields={"LastName": "Updated"},
            expected={"LastName": r["LastName"]},
        )
        for r in records
    ]


class Run:
    """One loader on fresh topics with a pre-produced backlog."""

    def __init__(
        self,
        sims: Sims,
        commands: list[LoaderCommand],
        concurrency: int,
        *,
        wix_budget: ApiBudget | None = None,
        po_budget: ApiBudget | None = None,
        **overrides: Any,
    ) -> None:
        self.prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.settings = sims.settings(self.prefix, concurrency, **overrides)
        provision_topics(self.settings)
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP.split(","), acks="all", linger_ms=5)
        for command in commands:
            topic = f"{self.prefix}.commands.{command.system}.{command.resource}"
            payload = encode("Command", command_datum(command))
            producer.send(topic, key=link_key(command.link_id), value=payload)
        producer.flush()
        producer.close()
        self.total = len(commands)
        self.ctx = ServiceContext.create("loader", self.settings, install_signals=False)
        logging.getLogger().setLevel(logging.ERROR)
        self.service = LoaderService.from_settings(
            self.ctx,
            self.settings,
            budgets={
                system: budget
                for system, budget in (("wix", wix_budget), ("poweroffice", po_budget))
                if budget is not None
            },
        )
        self.thread = threading.Thread(
            target=self.ctx.runtime.run, args=(self.service.run,), daemon=True
        )
        self.reader = KafkaConsumer(bootstrap_servers=BOOTSTRAP.split(","), group_id=None)
        tps = [TopicPartition(f"{self.prefix}.outcomes", p) for p in range(6)]
        self.reader.assign(tps)
        self.reader.seek_to_beginning(*tps)
        self.statuses: collections.Counter[str] = collections.Counter()
        self.codes: collections.Counter[str] = collections.Counter()
        self.last_completed: datetime | None = None
        self.completed_at: list[datetime] = []

    def start(self) -> float:
        self.thread.start()
        while not self.service.follower.caught_up:
            time.sleep(0.005)
        return time.monotonic()

    def collect(self) -> int:
        for batch in self.reader.poll(timeout_ms=50).values():
            for record in batch:
                outcome = decode("Outcome", record.value)
                self.statuses[outcome["status"]] += 1
                if outcome["error_code"]:
                    self.codes[outcome["error_code"]] += 1
                done = outcome["completed_at"]
                self.completed_at.append(done)
                if self.last_completed is None or done > self.last_completed:
                    self.last_completed = done
        return sum(self.statuses.values())

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.collect() < self.total and time.monotonic() < deadline:
            pass

    def stop(self) -> None:
        self.ctx.runtime.stopping.set()
        self.thread.join(timeout=25)
        self.service.close()
        self.ctx.close()
        self.reader.close()


def lifted(counts: int, workers: list[int]) -> None:
    print("(a) limits lifted: writes/s (one write request per command)")
    sims = Sims.start(0, 60.0, po_lifted=True)
    try:
        for concurrency in workers:
            for label, commands in (
                ("wix update", wix_updates(sims.wix_contacts(counts))),
                ("poweroffice patch", po_updates(sims.employees(counts))),
                ("wix create", wix_creates(counts)),
            ):
                run = Run(
                    sims,
                    commands,
                    concurrency,
                    wix_requests_per_minute=0,
                    poweroffice_requests_per_second=0,
                )
                started_wall = datetime.now(UTC)
                started = run.start()
                run.wait_all(300)
                elapsed = time.monotonic() - started
                if run.last_completed is not None:
                    elapsed = (run.last_completed - started_wall).total_seconds()
                run.stop()
                print(
                    f"  {label:<18} {concurrency:>3} workers  {run.total:>5} commands  "
                    f"{run.total / elapsed:>7.0f} writes/s  {dict(run.statuses)}"
                )
    finally:
        sims.stop()


@dataclass
class Share:
    label: str
    allowed: int
    used: int
    completed: int
    wire_429: int
    failed_429: int
    failed: int

    def line(self) -> str:
        return (
            f"  {self.label:<30} used {self.used:>4}/{self.allowed:<4} permits = "
            f"{self.used / self.allowed:>6.1%}  writes done {self.completed:>4}  "
            f"429 on wire {self.wire_429:>3}  "
            f"429 as errors {self.failed_429}  failed outcomes {self.failed}"
        )


def rate_errors(run: Run) -> int:
    """Outcomes that failed because of a 429 (the clients should absorb every one)."""
    return run.codes["RateLimitedError"] + run.codes["RESOURCE_EXHAUSTED"]


class TimedBudget(ApiBudget):
    """An ``ApiBudget`` that remembers when each permit was granted."""

    def __init__(self, name: str, requests: int, per_seconds: float) -> None:
        super().__init__(name, requests, per_seconds)
        self.granted: list[float] = []

    def acquire(self) -> float:
        waited = super().acquire()
        self.granted.append(time.monotonic())
        return waited


def measure(run: Run, budget: TimedBudget, windows: int, window: float) -> tuple[int, int]:
    """Permits granted in ``windows`` whole windows from the loader's first request (by their
    grant times, so a late sample cannot count the next window's burst)."""
    run.start()
    while not budget.granted:
        time.sleep(0.001)
    first = budget.granted[0]
    end = first + windows * window
    while time.monotonic() < end + 0.5:
        run.collect()
        time.sleep(0.01)
    used = sum(1 for t in list(budget.granted) if t < end)
    wall_end = datetime.now(UTC) - timedelta(seconds=time.monotonic() - end)
    completed = sum(1 for done in run.completed_at if done < wall_end)
    return used, completed


def budgets(windows: int, scale: tuple[int, float], full: bool) -> None:
    print(f"(b) backlog under the real limits, {windows}+ whole budget windows per run")
    results: list[Share] = []
    # PowerOffice: the real 10 requests per second; the loader's share as configured (50 %, and
    # the 25 % of each of two replicas in deploy/k8s: 2.5/s, a budget of 2 per 0.8 s).
    for po_share in (0.5, 0.25):
        sims = Sims.start(0, 60.0, po_lifted=False)
        try:
            shape = budget_for("poweroffice", 10, po_share, 1.0)
            po_budget = TimedBudget("poweroffice", shape.requests, shape.per_seconds)
            po_windows = max(windows, math.ceil(10 / shape.per_seconds))
            backlog = po_updates(sims.employees(shape.requests * po_windows * 2))
            run = Run(sims, backlog, 8, po_budget=po_budget)
            used, completed = measure(run, po_budget, po_windows, shape.per_seconds)
            wire = sims.po_429()
            run.stop()
            results.append(
                Share(
                    f"poweroffice 10/s, {po_share:.0%}: {shape.requests}/{shape.per_seconds:g}s",
                    shape.requests * po_windows,
                    used,
                    completed,
                    wire,
                    rate_errors(run),
                    run.statuses["FAILED"],
                )
            )
        finally:
            sims.stop()
    scales = [scale] + ([(200, 60.0)] if full else [])
    for limit, window in scales:
        sims = Sims.start(limit, window, po_lifted=True)
        try:
            share = limit // 2
            wix_budget = TimedBudget("wix", share, window)
            run = Run(
                sims, wix_updates(sims.wix_contacts(share * windows * 2)), 8, wix_budget=wix_budget
            )
            used, completed = measure(run, wix_budget, windows, window)
            wire = sims.wix_429()
            run.stop()
            results.append(
                Share(
                    f"wix {limit}/{window:g}s, share {share}/{window:g}s",
                    share * windows,
                    used,
                    completed,
                    wire,
                    rate_errors(run),
                    run.statuses["FAILED"],
                )
            )
        finally:
            sims.stop()
    for result in results:
        print(result.line())


def oversubscribed(windows: int, scale: tuple[int, float]) -> None:
    limit, window = scale
    print(f"(c) oversubscribed wix {limit}/{window:g}s: loader 60 % + another client 60 %")
    logging.getLogger("services.connectors").setLevel(logging.CRITICAL)
    sims = Sims.start(limit, window, po_lifted=True)
    stop = threading.Event()
    try:
        share = int(limit * 0.6)
        other = WixClient(
            ApiKeyAuth(api_key=SecretStr("sim-wix-api-key"), site_id=DEFAULT_SITE_ID),
            ApiBudget("extractor", share, window),
            base_url=sims.wix_url,
        )
        seeded = sims.wix_contacts(share * windows * 2)

        def compete() -> None:
            while not stop.is_set():
                other.get(seeded[0]["id"])

        competitor = threading.Thread(target=compete, daemon=True)
        competitor.start()
        wix_budget = TimedBudget("wix", share, window)
        run = Run(sims, wix_updates(seeded[1:]), 8, wix_budget=wix_budget)
        measure(run, wix_budget, windows, window)
        stop.set()
        wire = sims.wix_429()
        run.collect()
        run.stop()
        competitor.join(timeout=30)
        other.close()
        print(
            f"  outcomes {dict(run.statuses)}  429 on wire {wire}  "
            f"failed outcomes {run.statuses['FAILED']} (target 0)"
        )
    finally:
        stop.set()
        sims.stop()


def main(argv: list[str] | None = None) -> int:
    registry.install()  # core's topics and record types, as the tether command does
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--commands", type=int, default=1500, help="backlog of the lifted runs")
    parser.add_argument("--workers", default="1,8,32", help="loader_concurrency values for (a)")
    parser.add_argument("--windows", type=int, default=4, help="whole windows measured in (b)")
    parser.add_argument("--scale", default="20/6", help="Wix L/W for (b) and (c)")
    parser.add_argument("--full", action="store_true", help="also Wix's real 200 per 60 s")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a,b,c")
    add_timeout(parser, 1800)
    args = parser.parse_args(argv)
    arm_timeout(args.timeout, "bench/loader.py")
    # SIGTERM -> SystemExit, so the simulator processes are stopped by the ``finally`` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    limit, window = args.scale.split("/")
    scale = (int(limit), float(window))
    skip = set(args.skip.split(","))
    if "a" not in skip:
        lifted(args.commands, [int(w) for w in args.workers.split(",")])
    if "b" not in skip:
        budgets(args.windows, scale, args.full)
    if "c" not in skip:
        oversubscribed(args.windows, scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
