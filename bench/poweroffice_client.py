"""Benchmark of PowerOfficeClient against the in-process simulator (a script, not a test).

    .venv/bin/python bench/poweroffice_client.py [--seconds 3] [--backlog 100]

(a) Raw client throughput with the simulator's limits lifted and an unlimited budget.
(b) With the real gateway limit (10 requests/second per subscription key) and a client budget
    share of 100 % and 50 %: a backlog of requests (alternating GET and guarded PATCH) is worked
    off as fast as the budget allows. Reported: the steady rate ((N - burst) / elapsed, i.e.
    without the limiter's initial full bucket) as a share of the budget (target >= 95 %), 429s
    that the gateway sent (absorbed by the client) and 429s that reached the caller (target 0).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchkit import add_timeout, arm_timeout
from pydantic import SecretStr

from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.poweroffice.simulator import (
    Credentials,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import ServerThread
from services.core.budget import ApiBudget
from services.core.errors import RateLimitedError

CREDS = Credentials()


def client_for(
    sim: PowerOfficeSimulator, server: ServerThread, budget: ApiBudget
) -> PowerOfficeClient:
    return PowerOfficeClient(
        application_key=SecretStr(CREDS.application_key),
        client_key=SecretStr(CREDS.client_key),
        subscription_key=SecretStr(CREDS.subscription_key),
        budget=budget,
        base_url=sim.base_url(server),
        token_url=sim.token_url(server),
    )


def lifted(seconds: float) -> dict[str, Any]:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    ids = [r["Id"] for r in sim.seed("customers", [{"Name": f"Bench {i} AS"} for i in range(200)])]
    out: dict[str, Any] = {}
    with sim.serve() as server, client_for(sim, server, ApiBudget("po-bench", 0)) as po:
        po.resource("customers").get(ids[0])
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            po.resource("customers").get(ids[n % len(ids)])
            n += 1
        out["GET requests/s"] = n / (time.perf_counter() - started)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            cid = ids[n % len(ids)]
            current = po.resource("customers").get(cid)
            po.resource("customers").update(
                cid, {"Name": f"Bench {n} AS"}, expected={"Name": current.name}
            )
            n += 2
        out["GET + guarded PATCH requests/s"] = n / (time.perf_counter() - started)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            po.resource("employees").create(
                {"FirstName": "B", "LastName": str(n)}, reference=f"bench-{n}"
            )
            n += 1  # one lookup GET + one POST each
        out["creates/s (lookup GET + POST each)"] = n / (time.perf_counter() - started)
    return out


def limited(share: float, backlog: int) -> dict[str, Any]:
    sim = PowerOfficeSimulator()  # the real 10 requests/second
    ids = [r["Id"] for r in sim.seed("customers", [{"Name": f"Bench {i} AS"} for i in range(50)])]
    per_second = max(1, round(10 * share))
    budget = ApiBudget(f"po-bench-{per_second}", per_second, 1.0)
    reached_caller = 0
    with sim.serve() as server, client_for(sim, server, budget) as po:
        po.resource("customers").get(ids[0])  # token + one call
        time.sleep(1.1)  # let both windows empty before the measured backlog
        sim.reset_counters()
        throttled_before = budget.throttled_by_api
        names = {cid: f"Bench {i} AS" for i, cid in enumerate(ids)}
        started = time.perf_counter()
        for n in range(backlog):
            cid = ids[n % len(ids)]
            try:
                if n % 2 == 0:
                    po.resource("customers").get(cid)
                else:
                    new = f"Bench {cid} v{n}"
                    po.resource("customers").update(
                        cid, {"Name": new}, expected={"Name": names[cid]}
                    )
                    names[cid] = new
            except RateLimitedError:
                reached_caller += 1
        elapsed = time.perf_counter() - started
        counters = sim.counters_json()
    steady = (backlog - per_second) / elapsed
    return {
        "share": share,
        "budget_per_s": per_second,
        "requests": counters["total"],
        "elapsed_s": elapsed,
        "steady_per_s": steady,
        "of_share": steady / per_second,
        "gateway_429": counters["rate_limited"],
        "client_saw_429": budget.throttled_by_api - throttled_before,
        "429_reached_caller": reached_caller,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--backlog", type=int, default=100)
    add_timeout(parser, 900)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/poweroffice_client.py")
    print("(a) limits lifted, unlimited budget, one client thread, in-process simulator")
    for name, value in lifted(args.seconds).items():
        print(f"    {name:<38} {value:8.0f}")
    print(f"(b) real limit 10 req/s; backlog of {args.backlog} requests (GET / guarded PATCH)")
    for share in (1.0, 0.5):
        r = limited(share, args.backlog if share == 1.0 else args.backlog // 2)
        print(
            f"    share {r['share']:.0%} ({r['budget_per_s']}/s): {r['requests']} requests in"
            f" {r['elapsed_s']:.2f} s, steady {r['steady_per_s']:.2f}/s = {r['of_share']:.1%}"
            f" of share; gateway 429s {r['gateway_429']} (absorbed {r['client_saw_429']}),"
            f" 429s reaching the caller {r['429_reached_caller']}"
        )


if __name__ == "__main__":
    main()
