"""End-to-end benchmark (not a test): the whole pipeline as real processes, figures printed.

    bash scripts/with-infra.sh .venv/bin/python bench/e2e.py [--records 2000] [--edits 40]
        [--edit-rate 2] [--real-limits-records 150]

Prints:
- initial-sync records/s end to end with simulator limits lifted;
- p50/p99 change-to-target latency at a steady edit rate (alternating sides);
- API writes per effective change (target 1.0) and echo writes (target 0);
- peak RSS per service (VmHWM from /proc);
- with the real limits (PowerOffice 10/s, Wix 200/min, each split between extractor and loader
  by the default shares), the initial-sync time of a small seed against the floor the Wix write
  budget sets (creates / loader's Wix share).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from services.connectors.seed import generate
from services.core.settings import WixSettings
from services.core.topics import TopicLayout
from services.demo import apicounts
from services.demo.main import api_counts, make_edits, wait_for_sync
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack


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


def run(records: int, edits: int, edit_rate: float, lifted: bool) -> dict[str, object]:
    stack = Stack(
        os.environ["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        os.environ["TETHER_POSTGRES_DSN"],
        Path(tempfile.mkdtemp(prefix="tether-bench-")),
        lift_limits=lifted,
    )
    layout = TopicLayout(prefix=stack.topic_prefix, partitions=3)
    try:
        stack.create_database()
        stack.start_simulators()
        data = generate(records, seed=7)
        seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
        total = sum(seeded.counts()[r] for r in ("employees", "customers", "contact_persons"))
        stack.provision_topics()
        stack.start_services()
        seconds = wait_for_sync(stack, layout, total, timeout=3600)
        result: dict[str, object] = {
            "records": total,
            "initial_sync_seconds": round(seconds, 1),
            "records_per_second": round(total / seconds, 1),
            "contacts_created": data.expectations["created_contacts"],
        }
        if edits:
            before = api_counts(stack)
            latencies: list[float] = []
            expected = 0
            rng = random.Random(3)
            for i in range(edits):
                started = time.monotonic()
                one = make_edits(stack, 1, random.Random(rng.random()), timeout=60, start=i)
                if one["median_propagation_seconds"] is not None:
                    latencies.append(float(one["median_propagation_seconds"]))
                expected += int(one["writes_expected"])
                time.sleep(max(0.0, 1.0 / edit_rate - (time.monotonic() - started)))
            time.sleep(3)  # echoes come back by polling and webhooks
            after = api_counts(stack)
            writes = sum(apicounts.difference(after[s], before[s])["writes"] for s in after)
            latencies.sort()
            result.update(
                {
                    "edits": len(latencies),
                    "latency_p50_seconds": round(statistics.median(latencies), 3),
                    "latency_p99_seconds": round(
                        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3
                    ),
                    "writes_per_effective_change": round(writes / max(1, expected), 3),
                    "echo_writes": max(0, writes - expected),
                }
            )
        result["peak_rss_mib"] = {k: round(v, 1) for k, v in peak_rss_mib(stack).items()}
        return result
    finally:
        stack.stop()
        stack.drop_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--edit-rate", type=float, default=2.0, help="edits per second")
    parser.add_argument("--real-limits-records", type=int, default=150)
    args = parser.parse_args()

    lifted = run(args.records, args.edits, args.edit_rate, lifted=True)
    print(f"lifted limits: {lifted}", flush=True)
    if args.real_limits_records:
        real = run(args.real_limits_records, 0, args.edit_rate, lifted=False)
        # The loader's Wix share is a sliding window of N writes per minute: C creates need
        # at least ((C - 1) // N) full windows after the first burst.
        wix = WixSettings()
        per_window = int(wix.wix_requests_per_minute * wix.wix_budget_share)
        floor = ((int(str(real["contacts_created"])) - 1) // per_window) * 60.0
        real["floor_seconds"] = round(floor, 1)
        if floor:
            real["time_over_floor"] = round(float(str(real["initial_sync_seconds"])) / floor, 2)
        print(f"real limits: {real}", flush=True)


if __name__ == "__main__":
    main()
