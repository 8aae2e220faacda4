"""End-to-end benchmark (not a test): the whole pipeline as real processes, figures printed.

    bash scripts/with-infra.sh .venv/bin/python bench/e2e.py [--records 10000] [--edits 100]
        [--edit-rate 10] [--timeout 1800] [--stall-seconds 120]
    bash scripts/with-infra.sh .venv/bin/python bench/e2e.py --real-limits [--records 500]

PostgreSQL must be durable (``fsync`` and ``synchronous_commit`` on: start the infrastructure
with ``TETHER_POSTGRES_DURABLE=1``); the script reads both settings from the server and refuses
to run otherwise (``--allow-volatile-postgres`` runs anyway and labels every figure with it).

Limits lifted (the default) it prints:
- initial-sync records/s end to end (from the services being ready until every record is linked
  or in review and nothing is in flight; the time the pipeline has been settled is not counted);
- change-to-target latency p50/p99 per direction at a steady edit rate: edits are started on a
  fixed schedule (``--edit-rate`` per second, alternating sides; each waits for its arrival on
  its own thread, so a slow edit never delays the next). PowerOffice -> Wix edits arrive by
  polling (the stack polls PowerOffice every second), Wix -> PowerOffice ones by webhook;
- API writes per effective change (target 1.0) and echo writes (target 0);
- peak RSS per service (VmHWM from /proc);
- where the initial sync's CPU went: CPU seconds and ms per record of every service and
  simulator and of the whole machine (PostgreSQL, Kafka and anything else running included),
  and ``cpu_bound_records_per_second``, the rate at which that CPU cost per record would keep
  every core busy: the ceiling for this code on this machine, however well the stages overlap.

With ``--real-limits`` the simulators enforce their real limits (PowerOffice 10 requests/s, Wix
200/min) and every service takes its default share. It prints the initial-sync time against the
floor the loader's write budget sets: the loader's permits (its API requests, from its /metrics)
need ``(permits - 1) // per_window`` whole windows after the first burst (Wix 100 per 60 s,
PowerOffice 5 per 1 s); the floor is the larger of the two. Also the 429s each simulator sent.

Every run is bounded: ``--timeout`` (whole script) and ``--stall-seconds`` (no progress at all:
no change extracted, command issued, outcome produced, record linked or put in review). Either
ends the run with exit code 1 and a message naming the state it stopped in and the logs'
directory. Default stall bound (120 s) is longer than a Wix budget window (60 s), during which a
loader with real limits legitimately waits.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.connectors import registry
from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.core.budget import budget_shape
from services.core.codec import default_codec
from services.core.settings import PowerOfficeSettings, WixSettings
from services.core.topics import TopicLayout
from services.demo import apicounts, mapperdb
from services.demo.main import PO_RESOURCE, api_counts
from services.demo.progress import render, snapshot
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack
from services.demo.verify import LinkView
from services.mapper.domain import read_hub, read_member

SETTLED_FOR_SECONDS = 3.0  # settled this long = done (the time is not counted)
POLL_SECONDS = 0.5
ARRIVAL_POLL_SECONDS = 0.05
EDIT_TIMEOUT_SECONDS = 60.0


class BenchFailedError(RuntimeError):
    """The pipeline stalled, a service died or the run took longer than allowed."""


# -- durability ---------------------------------------------------------------------------------
def postgres_durability(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("fsync", "synchronous_commit")
        }


def is_durable(settings: dict[str, str]) -> bool:
    return settings.get("fsync") == "on" and settings.get("synchronous_commit") == "on"


# -- waiting for the initial sync ----------------------------------------------------------------
@dataclass
class Stages:
    """When (seconds from the services being ready) the stages of the initial sync ended."""

    snapshot_extracted: float | None = None  # every seeded record is a change event
    last_command: float = 0.0  # the mapper issued its last command
    last_outcome: float = 0.0  # the loader produced its last outcome


def wait_settled(
    stack: Stack,
    layout: TopicLayout,
    total: int,
    seeded_changes: int,
    stall_seconds: float,
    stages: Stages,
) -> float:
    """Seconds until every record is linked or in review with nothing in flight (held for
    ``SETTLED_FOR_SECONDS``, not counted); fills ``stages``. Raises ``BenchFailedError`` when
    nothing moves for ``stall_seconds`` or a service exits."""
    started = time.monotonic()
    settled_at: float | None = None
    last_change = started
    last_key: tuple[float, ...] = ()
    last_print = 0.0
    while True:
        now = time.monotonic()
        progress = snapshot(layout, stack.metrics_text)
        state = mapperdb.sync_state(stack.database_dsn)
        line = render(progress, state.linked, total, state.in_review, now - started)
        settled = (
            state.linked + state.in_review >= total
            and state.pending_commands == 0
            and state.unproduced_outbox == 0
            and progress.backlog == 0
        )
        key = (
            progress.extracted,
            progress.commands,
            progress.outcomes,
            float(state.linked),
            float(state.in_review),
        )
        if stages.snapshot_extracted is None and progress.extracted >= seeded_changes:
            stages.snapshot_extracted = now - started
        if last_key and progress.commands != last_key[1]:
            stages.last_command = now - started
        if last_key and progress.outcomes != last_key[2]:
            stages.last_outcome = now - started
        if key != last_key:
            last_key, last_change = key, now
        if now - last_print >= 2.0:
            print(line, flush=True)
            last_print = now
        if settled:
            settled_at = settled_at or now
            if now - settled_at >= SETTLED_FOR_SECONDS:
                print(line, flush=True)
                return settled_at - started
        else:
            settled_at = None
            if now - last_change > stall_seconds:
                raise BenchFailedError(
                    f"pipeline stalled: no progress for {now - last_change:.0f}s "
                    f"(--stall-seconds {stall_seconds:.0f}); last state: {line}; "
                    f"logs in {stack.run_dir}"
                )
        for name, process in stack.processes.items():
            if not process.running:
                raise BenchFailedError(f"{name} exited unexpectedly; see {process.log_path}")
        time.sleep(POLL_SECONDS)


# -- edits at a steady rate ---------------------------------------------------------------------
@dataclass
class Edit:
    direction: str  # "poweroffice->wix" (polled) or "wix->poweroffice" (webhook)
    seconds: float | None  # None: not arrived within EDIT_TIMEOUT_SECONDS
    writes_expected: int
    value: str = ""  # the value written: found again in the change, command and outcome
    made_at: float = 0.0  # wall clock when the edit's API call returned


def _po_mapped(po: PowerOfficeSimulatorAdmin, member: tuple[str, str], prop: str) -> Any:
    resource, record_id = member
    record = po.record(PO_RESOURCE[resource], int(record_id))["record"]
    return read_member(resource, record).get(prop, Ellipsis)


def _until(predicate: Callable[[], bool]) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < EDIT_TIMEOUT_SECONDS:
        if predicate():
            return time.monotonic() - started
        time.sleep(ARRIVAL_POLL_SECONDS)
    return None


def one_edit(po: PowerOfficeSimulatorAdmin, wix: WixAdmin, link: LinkView, i: int) -> Edit | None:
    """Even ``i``: a PowerOffice person's last name (must reach the Wix contact and the link's
    other persons); odd: the Wix contact's first name (must reach every member mapping it).
    The clock starts when the edit's API call has returned. ``None``: the link has no member the
    edit applies to."""
    value = f"Edit{i:04d}"
    contact_id = str(link.contact_id)
    if i % 2 == 0:
        prop = "last_name"
        persons = [m for m in link.members if _po_mapped(po, m, prop) is not Ellipsis]
        if not persons:
            return None
        edited, targets = persons[0], persons[1:]
        po.edit(PO_RESOURCE[edited[0]], int(edited[1]), {"LastName": value})
        made_at = time.time()

        def arrived() -> bool:
            if read_hub(wix.contact(contact_id)).get(prop) != value:
                return False
            return all(_po_mapped(po, m, prop) == value for m in targets)

        return Edit("poweroffice->wix", _until(arrived), 1 + len(targets), value, made_at)
    prop = "first_name"
    targets = [m for m in link.members if _po_mapped(po, m, prop) is not Ellipsis]
    last = read_hub(wix.contact(contact_id)).get("last_name")
    wix.edit(contact_id, {"name": {"first": value, "last": last}})
    made_at = time.time()
    seconds = _until(lambda: all(_po_mapped(po, m, prop) == value for m in targets))
    return Edit("wix->poweroffice", seconds, len(targets), value, made_at)


def steady_edits(stack: Stack, count: int, rate: float) -> list[Edit]:
    """``count`` edits started every ``1/rate`` s on their own threads, on distinct links."""
    links = [
        link
        for link in mapperdb.links(stack.database_dsn)
        if link.status == "active" and link.contact_id and link.members
    ]
    chosen = random.Random(3).sample(links, min(count, len(links)))
    po = PowerOfficeSimulatorAdmin(stack.poweroffice_url)
    wix = WixAdmin(stack.wix_url)
    futures: list[Future[Edit | None]] = []
    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            started = time.monotonic()
            for i, link in enumerate(chosen):
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
                futures.append(pool.submit(one_edit, po, wix, link, i))
        return [edit for f in futures if (edit := f.result()) is not None]
    finally:
        po.close()
        wix.close()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def latency_figures(edits: list[Edit]) -> dict[str, object]:
    figures: dict[str, object] = {}
    for direction, name in (("poweroffice->wix", "po_to_wix"), ("wix->poweroffice", "wix_to_po")):
        mine = [e for e in edits if e.direction == direction]
        arrived = sorted(e.seconds for e in mine if e.seconds is not None)
        figures[f"{name}_edits"] = len(mine)
        figures[f"{name}_lost"] = len(mine) - len(arrived)
        if arrived:
            figures[f"{name}_p50_seconds"] = round(statistics.median(arrived), 3)
            figures[f"{name}_p99_seconds"] = round(percentile(arrived, 0.99), 3)
            figures[f"{name}_max_seconds"] = round(arrived[-1], 3)
    return figures


def stage_latencies(stack: Stack, layout: TopicLayout, edits: list[Edit]) -> dict[str, object]:
    """Where each edit's time went, from the Kafka timestamps (producer send time) of the first
    change event, the first command and that command's first outcome carrying its value:
    extractor = edit -> change event (includes the wait for the next PowerOffice poll),
    mapper = change -> first command, loader = first command -> first outcome (the target write
    included)."""
    if not edits:
        return {}
    codec = default_codec()
    pattern = re.compile(r"Edit\d{4}")
    change_at: dict[str, float] = {}
    command_at: dict[str, float] = {}
    token_of_command: dict[str, str] = {}
    outcome_at: dict[str, float] = {}
    outcomes: list[tuple[str, float]] = []
    consumer = KafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap.split(","), enable_auto_commit=False
    )
    try:
        topics = [*layout.all_changes(), *layout.all_commands(), layout.outcomes]
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        since = int(min(e.made_at for e in edits) * 1000) - 1000
        starts = consumer.offsets_for_times(dict.fromkeys(partitions, since))
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        remaining = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    at = record.timestamp / 1000
                    kind = codec.message_type_of(record.value)
                    datum = codec.decode(record.value, kind)
                    if tp.topic == layout.outcomes:
                        outcomes.append((str(datum.get("command_id")), at))
                        continue
                    match = pattern.search(repr(datum))
                    if match is None:
                        continue
                    token = match.group()
                    if tp.topic in layout.all_changes():
                        change_at[token] = min(at, change_at.get(token, at))
                    else:
                        command_at[token] = min(at, command_at.get(token, at))
                        token_of_command[str(datum.get("command_id"))] = token
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()
    for command_id, at in outcomes:  # the first outcome of any of the edit's commands
        edit = token_of_command.get(command_id)
        if edit is not None:
            outcome_at[edit] = min(at, outcome_at.get(edit, at))
    figures: dict[str, object] = {}
    for direction, name in (("poweroffice->wix", "po_to_wix"), ("wix->poweroffice", "wix_to_po")):
        mine = [e for e in edits if e.direction == direction and e.value in outcome_at]
        stages = {
            "extractor": [change_at[e.value] - e.made_at for e in mine if e.value in change_at],
            "mapper": [
                command_at[e.value] - change_at[e.value]
                for e in mine
                if e.value in change_at and e.value in command_at
            ],
            "loader": [outcome_at[e.value] - command_at[e.value] for e in mine],
        }
        for stage, values in stages.items():
            if values:
                values.sort()
                figures[f"{name}_{stage}_p50_p99_ms"] = (
                    round(statistics.median(values) * 1000),
                    round(percentile(values, 0.99) * 1000),
                )
    return figures


# -- figures from the services ------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (``/proc/<pid>/stat`` utime and stime)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU the whole machine has spent not idle, all cores (``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS  # minus idle and iowait


def cpu_snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of every stack process (services and simulators) and the machine."""
    found = {"machine": machine_busy_seconds()}
    for name, process in stack.processes.items():
        if process.popen is not None and process.popen.poll() is None:
            found[name] = process_cpu_seconds(process.popen.pid)
    return found


def cpu_figures(before: dict[str, float], after: dict[str, float], records: int) -> dict[str, Any]:
    """Where the initial sync's CPU went, per record, and the rate that CPU cost allows.

    ``machine`` is every process on the machine: the services, the simulators, PostgreSQL,
    Kafka, and anything else running at the time (on a shared machine, other people's work);
    ``cpu_bound_records_per_second`` is the rate at which the sync's whole CPU cost would use
    every core, the ceiling for this code on this machine even with perfect overlap.
    """
    spent = {name: after[name] - before[name] for name in after if name in before}
    per_record = {name: round(seconds * 1000 / records, 2) for name, seconds in spent.items()}
    engine = sum(spent.get(name, 0.0) for name in SERVICES)
    cores = os.cpu_count() or 1
    return {
        "sync_cpu_seconds": {name: round(seconds, 1) for name, seconds in spent.items()},
        "cpu_ms_per_record": per_record,
        "engine_services_cpu_ms_per_record": round(engine * 1000 / records, 2),
        "cpu_bound_records_per_second": (
            round(cores * records / spent["machine"], 1) if spent.get("machine") else None
        ),
        "cores": cores,
    }


def peak_rss_mib(stack: Stack) -> dict[str, float]:
    peaks = {}
    for name in SERVICES:
        process = stack.processes[name].popen
        if process is None:
            continue
        status = Path(f"/proc/{process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[name] = int(line.split()[1]) / 1024
    return peaks


def webhook_figures(stack: Stack) -> dict[str, object]:
    """The Wix simulator's webhook deliveries: how many, how fast, how long each took."""
    wix = WixAdmin(stack.wix_url)
    try:
        deliveries = wix.deliveries()
    finally:
        wix.close()
    if not deliveries:
        return {}
    seconds = sorted(float(d["seconds"]) for d in deliveries)
    span = max(float(d["at"]) for d in deliveries) - min(float(d["at"]) for d in deliveries)
    return {
        "webhook_deliveries": len(deliveries),
        "webhook_not_ok": sum(1 for d in deliveries if not d["ok"]),
        "webhook_deliveries_per_second": round(len(deliveries) / max(span, 1e-9), 1),
        "webhook_delivery_p50_ms": round(statistics.median(seconds) * 1000, 1),
        "webhook_delivery_p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
    }


def mean_seconds(metrics_text: str, histogram: str) -> float | None:
    total = count = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == f"{histogram}_sum":
                total += float(sample.value)
            elif sample.name == f"{histogram}_count":
                count += float(sample.value)
    return total / count if count else None


def budget_permits(metrics_text: str) -> dict[str, float]:
    permits: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "tether_api_budget_permits_total":
                budget = sample.labels.get("budget", "?")
                permits[budget] = permits.get(budget, 0.0) + float(sample.value)
    return permits


def window_floor(permits: int, per_window: float, window_seconds: float) -> float:
    """Least time ``permits`` requests take under a budget of ``per_window`` per window: the
    first window's burst is free, every further ``per_window`` waits one more window."""
    requests, seconds = budget_shape(per_window, window_seconds)
    if permits <= 0 or requests == 0:
        return 0.0
    return ((permits - 1) // requests) * seconds


def write_floor(loader_permits: dict[str, float]) -> dict[str, float]:
    """The floor per API from the loader's default shares (LoaderSettings' defaults)."""
    wix, po = WixSettings(), PowerOfficeSettings()
    return {
        "wix": window_floor(
            int(loader_permits.get("wix", 0)),
            wix.wix_requests_per_minute * wix.wix_budget_share,
            60.0,
        ),
        "poweroffice": window_floor(
            int(loader_permits.get("poweroffice", 0)),
            po.poweroffice_requests_per_second * po.poweroffice_budget_share,
            1.0,
        ),
    }


# -- one run ------------------------------------------------------------------------------------
def run(
    records: int,
    edits: int,
    edit_rate: float,
    lifted: bool,
    stall_seconds: float,
    on_stack: Callable[[Stack], None],
) -> dict[str, object]:
    # Keep the stack's env free of the bench's own TETHER_* settings (the stack builds its own).
    stack = Stack(
        os.environ["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        os.environ["TETHER_POSTGRES_DSN"],
        Path(tempfile.mkdtemp(prefix="tether-bench-")),
        lift_limits=lifted,
    )
    on_stack(stack)
    layout = TopicLayout(prefix=stack.topic_prefix, partitions=3)
    try:
        stack.create_database()
        stack.start_simulators()
        data = generate(records, seed=7)
        seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
        total = sum(seeded.counts()[r] for r in ("employees", "customers", "contact_persons"))
        stack.provision_topics()
        before_start = time.monotonic()
        stack.start_services()
        startup = time.monotonic() - before_start
        stages = Stages()
        seeded_changes = total + seeded.counts()["wix_contacts"]
        cpu_before = cpu_snapshot(stack)
        seconds = wait_settled(stack, layout, total, seeded_changes, stall_seconds, stages)
        cpu = cpu_figures(cpu_before, cpu_snapshot(stack), total)
        counts = api_counts(stack)
        loader_metrics = stack.metrics_text("loader")
        command_seconds = mean_seconds(loader_metrics, "tether_loader_command_seconds")
        result: dict[str, object] = {
            "records": total,
            "services_startup_seconds": round(startup, 1),
            "initial_sync_seconds": round(seconds, 1),
            "records_per_second": round(total / seconds, 1),
            "contacts_created": data.expectations["created_contacts"],
            "http_429": {system: c["throttled_429"] for system, c in counts.items()},
            "snapshot_extracted_seconds": (
                None if stages.snapshot_extracted is None else round(stages.snapshot_extracted, 1)
            ),
            "last_command_seconds": round(stages.last_command, 1),
            "last_outcome_seconds": round(stages.last_outcome, 1),
            "loader_command_mean_ms": (
                None if command_seconds is None else round(command_seconds * 1000, 1)
            ),
            **webhook_figures(stack),
            **cpu,
        }
        if not lifted:
            permits = budget_permits(loader_metrics)
            floors = write_floor(permits)
            floor = max(floors.values())
            result["loader_permits"] = {k: int(v) for k, v in permits.items()}
            result["floor_seconds"] = {k: round(v, 1) for k, v in floors.items()}
            if floor:
                result["time_over_floor"] = round(seconds / floor, 3)
        if edits:
            before = api_counts(stack)
            made = steady_edits(stack, edits, edit_rate)
            time.sleep(3)  # echoes come back by polling and webhooks
            after = api_counts(stack)
            writes = sum(apicounts.difference(after[s], before[s])["writes"] for s in after)
            expected = sum(e.writes_expected for e in made)
            result.update(latency_figures(made))
            result.update(stage_latencies(stack, layout, made))
            result["edit_rate"] = edit_rate
            result["writes_per_effective_change"] = round(writes / max(1, expected), 3)
            result["echo_writes"] = max(0, writes - expected)
        result["peak_rss_mib"] = {k: round(v, 1) for k, v in peak_rss_mib(stack).items()}
        return result
    finally:
        stack.stop()
        stack.drop_database()


def main() -> int:
    registry.install()  # core's topics and record types, as the tether command does
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, help="PowerOffice records (10000; 500 real)")
    parser.add_argument("--edits", type=int, default=100, help="edits after the sync (lifted)")
    parser.add_argument("--edit-rate", type=float, default=10.0, help="edits started per second")
    parser.add_argument("--real-limits", action="store_true", help="the real API limits instead")
    parser.add_argument("--timeout", type=float, default=1800.0, help="whole run, seconds")
    parser.add_argument("--stall-seconds", type=float, default=120.0, help="no progress, seconds")
    parser.add_argument("--allow-volatile-postgres", action="store_true")
    args = parser.parse_args()

    durability = postgres_durability(os.environ["TETHER_POSTGRES_DSN"])
    label = "durable" if is_durable(durability) else "NOT DURABLE"
    print(f"postgresql: {durability} ({label})", flush=True)
    if not is_durable(durability) and not args.allow_volatile_postgres:
        print(
            "bench/e2e.py needs PostgreSQL with fsync and synchronous_commit on: start the "
            "infrastructure with TETHER_POSTGRES_DURABLE=1 (scripts/infra.py), or pass "
            "--allow-volatile-postgres to measure anyway",
            file=sys.stderr,
        )
        return 2

    stacks: list[Stack] = []

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        where = f"; logs in {stacks[-1].run_dir}" if stacks else ""
        raise BenchFailedError(f"run took longer than --timeout {args.timeout:.0f}s{where}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, int(args.timeout)))
    try:
        if args.real_limits:
            result = run(
                args.records or 500, 0, args.edit_rate, False, args.stall_seconds, stacks.append
            )
            print(f"real limits ({label}): {result}", flush=True)
        else:
            result = run(
                args.records or 10000,
                args.edits,
                args.edit_rate,
                True,
                args.stall_seconds,
                stacks.append,
            )
            print(f"lifted limits ({label}): {result}", flush=True)
    except (BenchFailedError, TimeoutError) as failure:
        print(f"bench/e2e.py FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.alarm(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
