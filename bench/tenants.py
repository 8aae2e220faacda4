"""Scale benchmark (not a test): many tenants on one deployment, 1/2/3 extractor replicas.

    bash scripts/with-infra.sh .venv/bin/python bench/tenants.py [--tenants 200]
        [--replicas 1,2,3] [--records-per-tenant N] [--lifted-limits] [--no-kill]
        [--poweroffice-poll-seconds 30] [--pool-budgets] [--kill-after-seconds 20]
        [--timeout 3600] [--allow-volatile-postgres]

Per run (one per replica count; each on fresh topics, database and simulators): the multi-tenant
simulators serve ``--tenants`` PowerOffice clients and Wix sites, each seeded with its own 50-200
records (``tenantseed``) and enforcing its own real limits (PowerOffice 10 requests/s per
subscription key — one key per tenant here —, Wix 200/min per site); every tenant is registered
in the registry as an operator would; the mapper, the loader and K extractor replicas serve them
all, sharing each credential's budget through PostgreSQL. With K >= 2, the last replica is killed
(``kill -9``) ``--kill-after-seconds`` (20) after the start, once it runs tenants still in their
initial sync: its tenants move to the others.

It prints, per run:
- tenants with the seed's exact expected counts, duplicates, 429s (the simulators refuse any call
  above a tenant's limit with 429, so 0 means no tenant's limit was ever exceeded);
- per tenant, the time to sync against its own rate-limit floor: the calls it made on each API
  divided by that API's limit (PowerOffice 10/s, Wix 200/60 s; the larger of the two) —
  distribution of the ratio and how many tenants are within 10 % of their floor;
- the engine's overhead per tenant: CPU seconds and peak RSS per service, PostgreSQL
  transactions and row writes, Kafka messages;
- after the kill: the killed replica's tenants, their new owners, and whether they synced exactly.

PostgreSQL must be durable (``TETHER_POSTGRES_DURABLE=1``), as for bench/e2e.py. Every run is
bounded by ``--timeout`` and exits 1 with a message if it is exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from e2e import is_durable, postgres_durability

from services.connectors import registry
from services.core.codec import default_codec
from services.core.kafka import make_consumer
from services.demo.stack import Stack
from services.demo.tenants import TenantsRun, print_table, stack_settings
from services.tenants.registry import TenantDirectory

PO_PER_SECOND = 10.0
WIX_PER_SECOND = 200.0 / 60.0


class BenchFailedError(RuntimeError):
    pass


def say(message: str) -> None:
    print(message, flush=True)


# -- figures ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def service_usage(stack: Stack) -> dict[str, dict[str, float]]:
    usage: dict[str, dict[str, float]] = {}
    for name, process in stack.processes.items():
        if name in ("poweroffice", "wix") or process.popen is None or not process.running:
            continue
        pid = process.popen.pid
        usage[name] = {"cpu_s": round(cpu_seconds(pid), 1), "peak_rss_mib": peak_rss_mib(pid)}
    return usage


def postgres_load(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, blks_read + blks_hit "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    keys = ("transactions", "rows_inserted", "rows_updated", "rows_deleted", "blocks_accessed")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def kafka_messages(stack: Stack) -> int:
    """Messages written to this run's topics (the sum of their end offsets)."""
    from kafka import TopicPartition

    settings = stack_settings(stack)
    consumer = make_consumer(settings, None)
    try:
        tps = [
            TopicPartition(topic, partition)
            for topic in consumer.topics()
            if topic.startswith(stack.topic_prefix + ".")
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        return int(sum(consumer.end_offsets(tps).values()))
    finally:
        consumer.close()


def phases(run: TenantsRun) -> dict[str, tuple[str, str]]:
    """tenant -> (owning replica, phase), as the owners published them."""
    directory = TenantDirectory(run.registry_settings(), default_codec())
    try:
        directory.refresh()
        return {t: (status.owner, status.phase) for t, status in directory.statuses().items()}
    finally:
        directory.close()


def owners(run: TenantsRun) -> dict[str, str]:
    return {tenant: owner for tenant, (owner, _) in phases(run).items()}


def floor_seconds(api: dict[str, dict[str, int]]) -> float:
    """The time a tenant's own limits require for the calls it made (the larger API's)."""
    po = api["poweroffice"]["reads"] + api["poweroffice"]["writes"]
    wix = api["wix"]["reads"] + api["wix"]["writes"]
    return max(po / PO_PER_SECOND, wix / WIX_PER_SECOND)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- one run ---------------------------------------------------------------------------------------


def one_run(args: argparse.Namespace, replicas: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"tether-bench-tenants-{replicas}-"))
    stack = Stack(
        os.environ["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        os.environ["TETHER_POSTGRES_DSN"],
        run_dir,
        lift_limits=args.lifted_limits,
        simulator_tenants=args.tenants,
    )
    if args.poweroffice_poll_seconds is not None:
        # The demo polls PowerOffice every second (edits arrive fast); with 200 tenants that is
        # 600 requests/s of polling alone. Production polls every 30 s.
        stack.extra_env["TETHER_POWEROFFICE_POLL_INTERVAL_SECONDS"] = str(
            args.poweroffice_poll_seconds
        )
    if args.pool_budgets:
        # One bucket per credential for the extractor and the loader, of the whole limit.
        stack.extra_env.update(
            TETHER_SHARED_BUDGET_POOL="tether",
            TETHER_WIX_BUDGET_SHARE="1",
            TETHER_POWEROFFICE_BUDGET_SHARE="1",
        )
    run = TenantsRun(
        stack, args.tenants, extractor_replicas=replicas, records=args.records_per_tenant, say=say
    )
    say(f"\n=== {args.tenants} tenants, {replicas} extractor replica(s); logs in {run_dir} ===")
    killed: dict[str, Any] = {}
    try:
        stack.create_database()
        stack.start_simulators()
        run.seed()
        stack.provision_topics()
        run.register()
        pg_before = postgres_load(stack.database_dsn)
        run.start()
        victim = run.extractors[-1] if replicas >= 2 and not args.no_kill else None

        def tick(elapsed: float) -> None:
            if victim is None or killed:
                return
            if elapsed >= args.kill_after_seconds:
                statuses = phases(run)
                owned = sorted(t for t, (owner, _) in statuses.items() if owner == victim)
                syncing = [t for t in owned if statuses[t][1] != "live"]
                if not syncing:
                    return  # the group is still settling: kill it once it runs unsynced tenants
                say(
                    f"  killing {victim} (kill -9) at {elapsed:.1f}s; it owned {len(owned)} "
                    f"tenants, {len(syncing)} of them not live yet"
                )
                run.kill_extractor(victim)
                killed.update(
                    replica=victim,
                    at_seconds=round(elapsed, 1),
                    tenants=owned,
                    not_live_at_kill=len(syncing),
                )

        seconds = run.wait(args.timeout, tick)
        usage = service_usage(stack)
        pg_after = postgres_load(stack.database_dsn)
        messages = kafka_messages(stack)
        results = run.check_all()
        if killed:
            now = owners(run)
            moved = killed["tenants"]
            killed["new_owners"] = sorted({now.get(t, "") for t in moved})
            killed["moved_and_exact"] = sum(
                1
                for row in results
                if row["tenant"] in moved and not row["misses"] and now.get(row["tenant"]) != victim
            )
    finally:
        stack.stop()
        stack.drop_database()

    print_table(results, say)
    ratios = []
    for row in results:
        floor = floor_seconds(row["api"])
        row["floor_seconds"] = round(floor, 1)
        if row["synced_after_seconds"] is not None and floor > 0:
            ratios.append(row["synced_after_seconds"] / floor)
    n = len(results)
    pg = {key: pg_after[key] - pg_before[key] for key in pg_after}
    figures = {
        "tenants": n,
        "extractor_replicas": replicas,
        "records": sum(row["records"] for row in results),
        "all_synced_seconds": round(seconds, 1),
        "tenants_exact": sum(1 for row in results if not row["misses"]),
        "duplicates": sum(row["duplicate_contacts"] for row in results),
        "throttled_429": sum(
            api["throttled_429"] for row in results for api in row["api"].values()
        ),
        "time_over_floor": {
            "p50": round(statistics.median(ratios), 2) if ratios else None,
            "p90": round(percentile(ratios, 0.9), 2) if ratios else None,
            "max": round(max(ratios), 2) if ratios else None,
            "within_10_percent": sum(1 for r in ratios if r <= 1.10),
        },
        "overhead_per_tenant": {
            "cpu_seconds": {k: round(v["cpu_s"] / n, 3) for k, v in usage.items()},
            "postgres_transactions": round(pg["transactions"] / n, 1),
            "postgres_row_writes": round(
                (pg["rows_inserted"] + pg["rows_updated"] + pg["rows_deleted"]) / n, 1
            ),
            "kafka_messages": round(messages / n, 1),
        },
        "peak_rss_mib": {k: round(v["peak_rss_mib"], 1) for k, v in usage.items()},
        # the killed replica's tenants by count here; by name in the --report file
        "kill": {**killed, "tenants": len(killed["tenants"])} if killed else None,
    }
    say(json.dumps(figures, indent=2))
    if args.report:
        path = Path(f"{args.report}.{replicas}.json")
        path.write_text(
            json.dumps({"figures": figures, "kill": killed or None, "tenants": results}, indent=2)
        )
    return figures


def main() -> int:
    registry.install()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument(
        "--replicas", default="1,2,3", help="extractor replica counts, one run each"
    )
    parser.add_argument("--records-per-tenant", type=int, default=None, help="default 50-200")
    parser.add_argument("--lifted-limits", action="store_true", help="no API limits (engine only)")
    parser.add_argument("--no-kill", action="store_true", help="kill no replica")
    parser.add_argument(
        "--pool-budgets",
        action="store_true",
        help="the extractor and the loader share each credential's whole limit "
        "(TETHER_SHARED_BUDGET_POOL) instead of half each",
    )
    parser.add_argument(
        "--kill-after-seconds",
        type=float,
        default=20.0,
        help="with 2+ replicas, kill the last one this long after the services are ready, "
        "once it runs tenants that are not live yet (during their initial sync)",
    )
    parser.add_argument(
        "--poweroffice-poll-seconds",
        type=float,
        default=None,
        help="the extractor's PowerOffice poll interval (default: the demo's 1 s)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="per run, seconds")
    parser.add_argument("--report", type=Path, help="write <report>.<replicas>.json per run")
    parser.add_argument("--allow-volatile-postgres", action="store_true")
    args = parser.parse_args()

    durability = postgres_durability(os.environ["TETHER_POSTGRES_DSN"])
    label = "durable" if is_durable(durability) else "NOT DURABLE"
    say(f"postgresql: {durability} ({label})")
    if not is_durable(durability) and not args.allow_volatile_postgres:
        say("bench/tenants.py needs durable PostgreSQL (TETHER_POSTGRES_DURABLE=1)")
        return 2

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise BenchFailedError(f"a run took longer than --timeout {args.timeout:.0f}s")

    signal.signal(signal.SIGALRM, on_alarm)
    summary = []
    try:
        for replicas in (int(r) for r in args.replicas.split(",")):
            signal.alarm(max(1, int(args.timeout) + 300))
            summary.append(one_run(args, replicas))
            signal.alarm(0)
    except (BenchFailedError, TimeoutError, RuntimeError) as failure:
        say(f"bench/tenants.py FAILED: {failure}")
        return 1
    say("\n=== summary ===")
    for figures in summary:
        say(
            f"replicas {figures['extractor_replicas']}: {figures['tenants_exact']}/"
            f"{figures['tenants']} tenants exact, {figures['duplicates']} duplicates, "
            f"{figures['throttled_429']} 429s, all synced in {figures['all_synced_seconds']}s, "
            f"time/floor p50 {figures['time_over_floor']['p50']} max "
            f"{figures['time_over_floor']['max']}, within 10%: "
            f"{figures['time_over_floor']['within_10_percent']}"
        )
    return 0 if all(f["tenants_exact"] == f["tenants"] for f in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
