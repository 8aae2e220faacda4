"""Benchmark of the adaptive API budget in a 429 storm (a script, not a test).

    .venv/bin/python bench/budget.py                     # ~2 min: fixed vs adaptive, 3 set-ups
    .venv/bin/python bench/budget.py --writes 16 --window 6

Eight threads (the loader's workers) share one ``WixClient`` and its ``ApiBudget`` and write
contacts into the in-process Wix simulator, whose real limit is below the budget (limits are
shared with other apps), with no ``Retry-After`` header: the client then retries a 429 after a
fixed wait, a sixth of the window (as 10 s is of Wix's minute). Each set-up runs with the fixed
budget (``adaptive=False``, the behaviour before issue #11) and the adaptive one, and prints the
429s among all calls, the budget's cuts and its final effective rate, and the wall-clock time.
A fixed run that has not finished within ``--give-up`` seconds is reported as a livelock (its
retries keep a window that counts 429s full).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import dataclass

from benchkit import add_timeout, arm_timeout
from pydantic import SecretStr

from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget


@dataclass
class Run:
    calls: int
    throttled: int
    seconds: float
    finished: bool
    cuts: int
    rate: float


def storm(
    *,
    adaptive: bool,
    window: float,
    real: int,
    budget: int,
    workers: int,
    writes: int,
    count_throttled: bool,
    give_up: float,
) -> Run:
    sim = WixSimulator(
        rate_limit=real,
        rate_window_seconds=window,
        retry_after_header=False,
        count_throttled=count_throttled,
    )
    server = sim.server().start()
    shared = ApiBudget("wix", budget, window, adaptive=adaptive)
    client = WixClient(
        ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id),
        shared,
        base_url=server.url,
        rate_limit_wait_seconds=window / 6,
        max_rate_limit_retries=100_000,
    )
    stop = threading.Event()

    def work(w: int) -> None:
        for i in range(writes):
            if stop.is_set():
                return
            client.create_info({"name": {"first": f"W{w}", "last": f"N{i}"}}, allow_duplicates=True)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, give_up - (time.monotonic() - started)))
    finished = not any(thread.is_alive() for thread in threads)
    stop.set()
    seconds = time.monotonic() - started
    counts = list(sim.counters.items())
    run = Run(
        calls=sum(n for _key, n in counts),
        throttled=sum(n for (_m, _op, status), n in counts if status == 429),
        seconds=seconds,
        finished=finished,
        cuts=shared.cuts,
        rate=shared.effective_rate_per_second,
    )
    if finished:
        client.close()
        server.stop()
    sim.close()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=2.0, help="window in seconds")
    parser.add_argument("--budget", type=int, default=10, help="configured permits per window")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--writes", type=int, default=8, help="writes per worker")
    parser.add_argument("--give-up", type=float, default=90.0, help="seconds per run")
    add_timeout(parser, 900)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/budget.py")
    logging.basicConfig(level=logging.ERROR)
    setups = [(6, False), (8, True), (6, True)]  # (real limit per window, 429s count)
    print(
        f"budget {args.budget} per {args.window:g} s, {args.workers} workers x {args.writes} "
        "writes, no Retry-After"
    )
    for real, counted in setups:
        for adaptive in (False, True):
            run = storm(
                adaptive=adaptive,
                window=args.window,
                real=real,
                budget=args.budget,
                workers=args.workers,
                writes=args.writes,
                count_throttled=counted,
                give_up=args.give_up,
            )
            share = 100 * run.throttled / max(1, run.calls)
            state = f"{run.seconds:5.1f} s" if run.finished else "LIVELOCK (gave up)"
            print(
                f"real {real}/{args.window:g} s, 429s {'count' if counted else 'free':5} | "
                f"{'adaptive' if adaptive else 'fixed':8} | 429s {run.throttled:4}/{run.calls:<4}"
                f" = {share:3.0f} % | cuts {run.cuts} | rate now {run.rate:.2f}/s | {state}"
            )


if __name__ == "__main__":
    main()
