"""Benchmark of WixClient against the in-process Wix simulator (a script, not a test).

    .venv/bin/python bench/wix_client.py                 # ~1 min: lifted + 10/3 s + 20/6 s
    .venv/bin/python bench/wix_client.py --full          # adds the real 200/60 s (4+ minutes)

(a) Limits lifted: requests/s of one client (sequential) and of four threads sharing a client.
(b) Rate-limited backlog: the simulator enforces L requests per W seconds and the client's
    ApiBudget is its configured share of that. A backlog of updates runs for a whole number of
    windows; "share" = requests completed / permits the budget allowed in that time. Running the
    same ratio at several scales (10/3 s, 20/6 s, 200/60 s) shows the scaled-down runs are
    faithful. Target: share >= 95 %, 0 rate-limit errors reaching the caller.
(c) Oversubscribed: two clients, each told it owns 60 % of the limit (a misconfiguration). The
    server answers 429; the clients honour Retry-After and no error reaches the callers.
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchkit import add_timeout, arm_timeout
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.models import Contact, parse_contact
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget
from services.core.errors import ApiError, RateLimitedError


@dataclass
class Observed:
    """Counts what the client saw on the wire (the ``on_request`` observer)."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, system: str, operation: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1


def make_client(sim: WixSimulator, url: str, budget: ApiBudget, observed: Observed) -> WixClient:
    return WixClient(
        ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id),
        budget,
        base_url=url,
        on_request=observed,
    )


def seed(url: str, n: int) -> list[Contact]:
    with WixAdmin(url) as admin:
        admin.reset()
        rows = admin.seed(
            [
                {
                    "info": {
                        "name": {"first": f"Bench{i}", "last": "Person"},
                        "emails": {"items": [{"email": f"bench{i}@example.com"}]},
                    }
                }
                for i in range(n)
            ]
        )
    return [parse_contact(r) for r in rows]


def lifted(count: int) -> None:
    sim = WixSimulator(rate_limit=0)
    with ServerThread(sim.app) as server:
        contacts = seed(server.url, 200)
        observed = Observed()
        client = make_client(sim, server.url, ApiBudget("bench", 0), observed)

        def timed(label: str, n: int, op: Callable[[int], Any], threads: int = 1) -> None:
            started = time.perf_counter()
            if threads == 1:
                for i in range(n):
                    op(i)
            else:
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(op, range(n)))
            elapsed = time.perf_counter() - started
            print(f"  {label:<38} {n:>6} requests  {n / elapsed:>8.0f} req/s")

        timed("get, 1 thread", count, lambda i: client.get(contacts[i % 200].id))
        timed("get, 4 threads", count, lambda i: client.get(contacts[i % 200].id), threads=4)
        timed("query page of 50, 1 thread", count // 4, lambda i: client.query_page(limit=50))
        state = {c.id: c for c in contacts}

        def update(i: int) -> None:
            current = state[contacts[i % 200].id]
            state[current.id] = client.update(current, {"info.name.last": f"Person{i}"})

        timed("update (revision-guarded), 1 thread", count // 2, update)
        client.close()
    sim.close()
    print(f"  statuses seen: {dict(observed.statuses)}")


@dataclass
class BacklogResult:
    limit: int
    window: float
    share: float
    completed: int
    allowed: int
    server_429: int
    caller_errors: int
    elapsed: float

    @property
    def achieved(self) -> float:
        return self.completed / self.allowed if self.allowed else 0.0


def backlog(limit: int, window: float, windows: int, clients: int, share: float) -> BacklogResult:
    """Run an update backlog for ``windows`` whole windows; count what completed in that time."""
    sim = WixSimulator(rate_limit=limit, rate_window_seconds=window)
    with ServerThread(sim.app) as server:
        contacts = seed(server.url, 50)
        observed = Observed()
        budgets = [
            ApiBudget(f"bench-{k}", max(1, int(limit * share)), window) for k in range(clients)
        ]
        duration = windows * window
        completed = [0] * clients
        errors = [0] * clients
        start = time.monotonic()

        def run(k: int) -> None:
            client = make_client(sim, server.url, budgets[k], observed)
            state = [c for i, c in enumerate(contacts) if i % clients == k]
            i = 0
            while time.monotonic() - start < duration:
                current = state[i % len(state)]
                try:
                    state[i % len(state)] = client.update(current, {"info.name.last": f"P{i}"})
                except RateLimitedError:
                    errors[k] += 1
                except ApiError:
                    errors[k] += 1
                else:
                    if time.monotonic() - start <= duration:
                        completed[k] += 1
                i += 1
            client.close()

        threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    sim.close()
    allowed = min(limit, sum(b.requests for b in budgets)) * windows
    return BacklogResult(
        limit=limit,
        window=window,
        share=share * clients,
        completed=sum(completed),
        allowed=allowed,
        server_429=observed.statuses[429],
        caller_errors=sum(errors),
        elapsed=elapsed,
    )


def print_backlog(label: str, r: BacklogResult) -> None:
    print(
        f"  {label:<26} {r.limit:>4}/{r.window:<5g}s  budget {r.share:>4.0%}  "
        f"done {r.completed:>5}/{r.allowed:<5} = {r.achieved:>6.1%}  "
        f"429 on wire {r.server_429:>3}  errors to caller {r.caller_errors}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="lifted-run request count")
    parser.add_argument("--windows", type=int, default=4, help="windows per backlog run")
    parser.add_argument("--scales", default="10/3,20/6", help="L/W pairs, same ratio as 200/60")
    parser.add_argument("--full", action="store_true", help="also run the real 200 per 60 s")
    parser.add_argument("--skip-lifted", action="store_true")
    add_timeout(parser, 900)
    args = parser.parse_args(argv)
    arm_timeout(args.timeout, "bench/wix_client.py")
    # 429 retries are expected in (c); the client logs each at WARNING.
    logging.getLogger("services.connectors.wix").setLevel(logging.ERROR)

    if not args.skip_lifted:
        print("(a) limits lifted")
        lifted(args.requests)

    scales = [tuple(s.split("/")) for s in args.scales.split(",") if s]
    if args.full:
        scales.append(("200", "60"))
    print(f"(b) backlog of revision-guarded updates, {args.windows} windows per run")
    results = []
    for limit, window in scales:
        result = backlog(int(limit), float(window), args.windows, clients=1, share=1.0)
        results.append(result)
        print_backlog("one client, full budget", result)
    if len(results) > 1:
        spread = statistics.pstdev(r.achieved for r in results)
        print(
            f"  share across scales: {[f'{r.achieved:.1%}' for r in results]} (spread {spread:.1%})"
        )

    print("(c) oversubscribed: two clients each configured with 60 % of the limit")
    limit, window = scales[-1] if not args.full else scales[0]
    result = backlog(int(limit), float(window), args.windows, clients=2, share=0.6)
    print_backlog("two clients, 2 x 60 %", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
