"""Benchmark of the shared API budget in PostgreSQL (a script, not a test).

    .venv/bin/python bench/shared_budget.py                  # ~30 s against TETHER_POSTGRES_DSN
    .venv/bin/python bench/shared_budget.py --processes 1 3 --threads 8 --seconds 10

For each number of processes (replicas), every process runs ``--threads`` threads that acquire
as fast as they are granted from one ``SharedBudget`` of 20 requests/s (the loader's workers
behind one shared budget), while one more process does the same on a second credential.
Prints per credential: the grants per second against the rate (the share used), the busiest
1-second window of grant times (never above the rate), the take statements per grant (the
waiting processes' polling) and the take statement's latency (p50/p99, from the client).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
import uuid

from benchkit import add_timeout, arm_timeout

from services.core.budget import AimdRule
from services.core.shared_budget import BudgetStore, SharedBudget, Taken, credential_key

#: Tokens per second of each credential's bucket (whole tokens: 1 per 1/RATE s).
RATE = 20.0


class CountingStore(BudgetStore):
    """The store, recording every take's latency and every grant's database time."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.grants: list[float] = []
        self.latencies: list[float] = []

    def take(
        self, key: str, holder: str, rule: AimdRule, *, now: float | None = None
    ) -> Taken | None:
        started = time.perf_counter()
        taken = super().take(key, holder, rule, now=now)
        self.latencies.append(time.perf_counter() - started)  # one thread at a time (the turn)
        if taken is not None and taken.granted:
            self.grants.append(taken.at)
        return taken


def hammer(dsn: str, key: str, threads: int, seconds: float) -> tuple[list[float], list[float]]:
    """Grant times and take latencies of ``threads`` threads acquiring for ``seconds``."""
    store = CountingStore(dsn)
    budget = SharedBudget("bench", 1, 1.0 / RATE, store=store, credential_key=key, holder="loader")
    stop = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop:
            budget.acquire()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    store.close()
    return store.grants, store.latencies


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def report(label: str, runs: list[tuple[list[float], list[float]]]) -> None:
    grants = sorted(t for run in runs for t in run[0])
    latencies = sorted(x for run in runs for x in run[1])
    per_second = (len(grants) - 1) / (grants[-1] - grants[0])
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"  {label}: {per_second:6.2f} grants/s of {RATE:g} ({per_second / RATE:4.0%}), "
        f"busiest second {busiest_second(grants)}, "
        f"{len(latencies) / len(grants):4.1f} statements/grant, take latency "
        f"p50 {statistics.median(latencies) * 1000:5.2f} ms p99 {p99 * 1000:5.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TETHER_POSTGRES_DSN"))
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    add_timeout(parser, 900)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/shared_budget.py")
    if not args.dsn:
        parser.error("set TETHER_POSTGRES_DSN or --dsn")
    context = multiprocessing.get_context("spawn")
    for processes in args.processes:
        busy, quiet = (credential_key("bench", uuid.uuid4().hex) for _ in range(2))
        jobs = [(args.dsn, busy, args.threads, args.seconds)] * processes
        jobs.append((args.dsn, quiet, args.threads, args.seconds))
        with context.Pool(len(jobs)) as pool:
            runs = pool.starmap(hammer, jobs)
        print(f"{processes} process(es) x {args.threads} threads on one credential:")
        report("shared credential", runs[:-1])
        report("other credential ", runs[-1:])


if __name__ == "__main__":
    main()
