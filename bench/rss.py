"""Memory benchmark (not a test): peak RSS of each service (extractor, mapper, loader) while the
real pipeline syncs N records (default 100k) end to end.

    .venv/bin/python bench/rss.py [--records 100000] [--timeout 7200] [--stall-seconds 300]
                                  [--interval 1.0]

Needs Kafka and PostgreSQL (``scripts/infra.py up``; TETHER_KAFKA_BOOTSTRAP_SERVERS and
TETHER_POSTGRES_DSN). Run it against ``TETHER_POSTGRES_DURABLE=1`` infra (fsync on). The stack
(``services.demo.stack``: the same processes ``tether demo`` and ``bench/e2e.py`` start, each a
``tether <service>`` OS process on free ports, own topic prefix and database) runs with the
simulators' and clients' rate limits lifted; the simulators are seeded with
``seed.generate(records)``.

Every ``--interval`` seconds it reads each service's ``VmRSS`` from ``/proc/<pid>/status`` (its
process and any children); at the end also the kernel's high-water mark ``VmHWM``. Kafka,
PostgreSQL and the simulators are not counted. Prints, per service, the peak RSS in MiB and
whether it is under the 200 MiB target, plus the links reached and the time taken.

It never hangs: when the linked count does not move for ``--stall-seconds`` or the run exceeds
``--timeout``, it prints the peaks measured so far and exits with status 1 saying where the
sync stood. Exit status 2: a service is over the target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from services.connectors.seed import generate
from services.demo import mapperdb
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack

TARGET_MIB = 200.0


def _status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (0 when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += _children(current)
    return out


class Sampler:
    """Peak resident memory per service: sampled VmRSS (summed over the process tree) and the
    kernel's per-process high-water mark VmHWM."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.peak_kib: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self.hwm_kib: dict[str, int] = dict.fromkeys(SERVICES, 0)

    def sample(self) -> None:
        for name in SERVICES:
            process = self.stack.processes.get(name)
            if process is None or process.popen is None:
                continue
            pids = tree(process.popen.pid)
            rss = sum(_status_kib(pid, "VmRSS") for pid in pids)
            self.peak_kib[name] = max(self.peak_kib[name], rss)
            hwm = max(_status_kib(pid, "VmHWM") for pid in pids)
            self.hwm_kib[name] = max(self.hwm_kib[name], hwm)

    def report(self) -> dict[str, dict[str, float | bool]]:
        out: dict[str, dict[str, float | bool]] = {}
        for name in SERVICES:
            peak = max(self.peak_kib[name], self.hwm_kib[name]) / 1024
            out[name] = {
                "peak_rss_mib": round(peak, 1),
                "sampled_rss_mib": round(self.peak_kib[name] / 1024, 1),
                "vmhwm_mib": round(self.hwm_kib[name] / 1024, 1),
                "under_200_mib": peak < TARGET_MIB,
            }
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records seeded")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=7200.0, help="exit 1 after this long")
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=300.0,
        help="exit 1 when the linked count did not move for this long",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the services (repeatable), e.g. MALLOC_ARENA_MAX=2",
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    stack = Stack(
        os.environ["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        os.environ["TETHER_POSTGRES_DSN"],
        Path(tempfile.mkdtemp(prefix="tether-bench-rss-")),
        lift_limits=True,
        extra_env=extra_env,
    )
    sampler = Sampler(stack)
    result: dict[str, object] = {
        "records": args.records,
        "service_env": extra_env,
        "run_dir": str(stack.run_dir),
    }
    status = 0
    started = time.monotonic()
    try:
        stack.create_database()
        stack.start_simulators()
        data = generate(args.records, seed=args.seed)
        seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
        total = sum(seeded.counts()[r] for r in ("employees", "customers", "contact_persons"))
        result["poweroffice_records"] = total
        result["wix_contacts_seeded"] = len(data.wix_contacts)
        result["seed_seconds"] = round(time.monotonic() - started, 1)
        del data, seeded
        stack.provision_topics()
        stack.start_services()
        started = time.monotonic()
        last_state = 0.0
        linked = moved_at = stable_since = 0.0
        best = -1
        while True:
            sampler.sample()
            now = time.monotonic()
            for name in SERVICES:
                if not stack.processes[name].running:
                    raise RuntimeError(f"{name} stopped; see {stack.processes[name].log_path}")
            if now - last_state >= 10.0:
                last_state = now
                state = mapperdb.sync_state(stack.database_dsn)
                linked = state.linked + state.in_review
                if linked > best:
                    best, moved_at = int(linked), now
                peaks = {n: round(k / 1024) for n, k in sampler.peak_kib.items()}
                print(
                    f"[{time.strftime('%H:%M:%S')}] {int(now - started)}s: {state.linked} linked "
                    f"+ {state.in_review} in review of {total}; pending "
                    f"{state.pending_commands}; peak RSS MiB {peaks}",
                    file=sys.stderr,
                    flush=True,
                )
                settled = (
                    linked >= total and state.pending_commands == 0 and not state.unproduced_outbox
                )
                if settled:
                    stable_since = stable_since or now
                    if now - stable_since >= 10.0:
                        break
                else:
                    stable_since = 0.0
                if now - moved_at > args.stall_seconds:
                    status = 1
                    result["stopped"] = f"STALLED: no new link for {args.stall_seconds:g}s"
                    break
            if now - started > args.timeout:
                status = 1
                result["stopped"] = f"TIMEOUT after {args.timeout:g}s"
                break
            time.sleep(args.interval)
        result["links_reached"] = best
        result["sync_seconds"] = round(time.monotonic() - started, 1)
    finally:
        sampler.sample()
        result["services"] = sampler.report()
        stack.stop()
        stack.drop_database()
    print(json.dumps(result, indent=2), flush=True)
    if status:
        sys.exit(f"bench/rss.py: {result['stopped']} (peaks above are as far as it got)")
    if not all(s["under_200_mib"] for s in sampler.report().values()):
        sys.exit(2)


if __name__ == "__main__":
    main()
