"""``tether demo``: the whole pipeline on the embedded default, with a result a person can check.

It starts both API simulators seeded with realistic Norwegian data (``seed.generate``: people who
already exist in Wix must be matched, not duplicated), provisions the topics, starts the
extractor, mapper and loader as separate processes and the operator console (its URL and a login
token made for this run are printed, on standard output only), shows progress, and ends the
initial sync with a reconciliation summary read from the two systems themselves, then saves
screenshots of the console's pages (``--screenshots``, headless Chromium). Then it either keeps
running (edit a record with ``tether edit`` or the admin endpoints and watch it arrive) or, with
``--edits M --exit-after-sync``, makes M random edits on both sides, measures how long each takes
to arrive, and writes a JSON report.

Kafka and PostgreSQL come from the environment (``make demo`` starts them).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.stream import API_RESOURCE
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.core.topics import TopicLayout
from services.demo import apicounts, mapperdb
from services.demo.progress import render, snapshot
from services.demo.seeding import seed_simulators
from services.demo.stack import Stack
from services.demo.verify import reconcile
from services.mapper.domain import read_hub, read_member
from services.onboarding.preview import predict

PO_RESOURCE = API_RESOURCE


def say(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tether demo",
        description="Run the whole Tether pipeline locally on seeded simulators.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--records",
        type=int,
        default=2000,
        help="PowerOffice records to seed (employees+customers+contact persons)",
    )
    parser.add_argument("--seed", type=int, default=42, help="data generator seed")
    parser.add_argument(
        "--edits",
        type=int,
        default=20,
        help="random edits after the initial sync, half on each side",
    )
    parser.add_argument(
        "--exit-after-sync",
        action="store_true",
        help="stop after the initial sync (and the edits) instead of running on",
    )
    parser.add_argument("--report", type=Path, help="write the JSON report to this file")
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument(
        "--real-limits",
        action="store_true",
        help="the APIs' real budgets: PowerOffice 10 req/s, Wix 200 req/min "
        "(an initial sync of N records then takes minutes per 100)",
    )
    limits.add_argument(
        "--lifted-limits",
        action="store_true",
        help="no API rate limits, in the simulators and the clients (default)",
    )
    parser.add_argument(
        "--no-webhooks",
        action="store_true",
        help="Wix changes by polling only (API key, no webhook app)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="give up on the initial sync after this many seconds",
    )
    parser.add_argument("--run-dir", type=Path, help="where logs go (default: a temp dir)")
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=Path(".demo/screenshots"),
        help="where the console's page screenshots go (after the initial sync)",
    )
    parser.add_argument(
        "--no-screenshots", action="store_true", help="take no screenshots of the console"
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="sync and edit under the 'mild' fault profile (services/demo/faults.py): API "
        "500s/timeouts/lost responses/429 storms, service kill -9s with a restarter, poison "
        "bytes, forged and oversize webhooks, odd names, simulator realism options; it still "
        "ends with the seed's exact counts (Kafka/PostgreSQL kills: make chaos)",
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=0,
        help="serve N tenants from the tenant registry (each its own PowerOffice client and "
        "Wix site on the multi-tenant simulators, 50-200 records each) and check each exactly",
    )
    parser.add_argument(
        "--records-per-tenant",
        type=int,
        default=None,
        help="with --tenants: records per tenant (default: 50-200, by tenant)",
    )
    parser.add_argument(
        "--extractor-replicas",
        type=int,
        default=1,
        help="with --tenants: extractor replicas sharing the tenants' work",
    )
    return parser.parse_args(argv)


def wait_for_sync(stack: Stack, layout: TopicLayout, total: int, timeout: float) -> float:
    """Until every record is linked or in review and nothing is in flight, stable for 3 s."""
    started = time.monotonic()
    stable_since: float | None = None
    last_print = 0.0
    while True:
        elapsed = time.monotonic() - started
        progress = snapshot(layout, stack.metrics_text)
        state = mapperdb.sync_state(stack.database_dsn)
        settled = (
            state.linked + state.in_review >= total
            and state.pending_commands == 0
            and state.unproduced_outbox == 0
            and progress.backlog == 0
        )
        if time.monotonic() - last_print >= 2.0:
            say(render(progress, state.linked, total, state.in_review, elapsed))
            last_print = time.monotonic()
        if settled:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 3.0:
                say(render(progress, state.linked, total, state.in_review, elapsed))
                return elapsed
        else:
            stable_since = None
        for name, process in stack.processes.items():
            if not process.running:
                raise RuntimeError(f"{name} stopped unexpectedly; see {process.log_path}")
        if elapsed > timeout:
            raise TimeoutError(f"initial sync not finished after {timeout:.0f}s")
        time.sleep(0.5)


def collect_records(po: PowerOfficeSimulatorAdmin) -> dict[str, list[dict[str, Any]]]:
    return {
        resource: [row["record"] for row in po.records(sim) if not row.get("deleted")]
        for resource, sim in PO_RESOURCE.items()
    }


def make_edits(
    stack: Stack, count: int, rng: random.Random, timeout: float = 60.0, start: int = 0
) -> dict[str, Any]:
    """M random edits, alternating sides; returns how many arrived and how fast.

    Even edits change a person's last name in PowerOffice (it must reach the Wix contact and the
    link's other members), odd ones the first name in Wix (it must reach every member whose flow
    maps it). ``writes_expected`` counts one write per target record whose value changes.
    """
    links = [
        link
        for link in mapperdb.links(stack.database_dsn)
        if link.status == "active" and link.contact_id
    ]
    po = PowerOfficeSimulatorAdmin(stack.poweroffice_url)
    wix = WixAdmin(stack.wix_url)
    seconds: list[float] = []
    lost: list[dict[str, Any]] = []
    expected_writes = 0
    try:
        for i in range(start, start + count):
            link = rng.choice(links)
            value = f"Edit{i:03d}"
            if i % 2 == 0:  # PowerOffice -> Wix (and the link's other PowerOffice members)
                prop, direction = "last_name", "poweroffice->wix"
                persons: list[tuple[str, str]] = []
                for _ in range(50):  # company customers map no name: find a person
                    persons = [m for m in link.members if _po_value(po, m, prop) is not Ellipsis]
                    if persons:
                        break
                    link = rng.choice(links)
                if not persons:
                    continue
                edited = rng.choice(persons)
                po.edit(PO_RESOURCE[edited[0]], int(edited[1]), {"LastName": value})
                targets = [m for m in persons if m != edited]
                expected_writes += 1 + len(targets)
                wix_target = True
                contact_id = str(link.contact_id)
            else:  # Wix -> every PowerOffice member whose flow maps the first name
                prop, direction = "first_name", "wix->poweroffice"
                contact_id = str(link.contact_id)
                last = _wix_value(wix, contact_id, "last_name")
                wix.edit(contact_id, {"name": {"first": value, "last": last}})
                targets = [m for m in link.members if _po_value(po, m, prop) is not Ellipsis]
                expected_writes += len(targets)
                wix_target = False
            started = time.monotonic()
            check = functools.partial(
                _arrived, po, wix, contact_id if wix_target else None, targets, prop, value
            )
            if _wait(check, timeout):
                seconds.append(time.monotonic() - started)
            else:
                lost.append({"edit": i, "direction": direction, "link": link.link_id})
    finally:
        po.close()
        wix.close()
    return {
        "edits_made": len(seconds) + len(lost),
        "edits_propagated": len(seconds),
        "edits_not_propagated": lost,
        "max_propagation_seconds": round(max(seconds), 3) if seconds else None,
        "median_propagation_seconds": round(statistics.median(seconds), 3) if seconds else None,
        "writes_expected": expected_writes,
    }


def _po_value(po: PowerOfficeSimulatorAdmin, member: tuple[str, str], prop: str) -> Any:
    """The member's mapped value of ``prop``; ``Ellipsis`` when its flow does not map it."""
    resource, record_id = member
    record = po.record(PO_RESOURCE[resource], int(record_id))["record"]
    return read_member(resource, record).get(prop, Ellipsis)


def _wix_value(wix: WixAdmin, contact_id: str, prop: str) -> str | None:
    return read_hub(wix.contact(contact_id)).get(prop)


def _arrived(
    po: PowerOfficeSimulatorAdmin,
    wix: WixAdmin,
    contact_id: str | None,
    members: list[tuple[str, str]],
    prop: str,
    value: str,
) -> bool:
    if contact_id is not None and _wix_value(wix, contact_id, prop) != value:
        return False
    return all(_po_value(po, member, prop) == value for member in members)


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def api_counts(stack: Stack) -> dict[str, dict[str, int]]:
    with PowerOfficeSimulatorAdmin(stack.poweroffice_url) as po:
        po_counts = apicounts.poweroffice_counts(po.counters())
    wix = WixAdmin(stack.wix_url)
    try:
        wix_counts = apicounts.wix_counts(wix.counters())
    finally:
        wix.close()
    return {"poweroffice": po_counts, "wix": wix_counts}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bootstrap = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS")
    dsn = os.environ.get("TETHER_POSTGRES_DSN")
    if not bootstrap or not dsn:
        print("tether demo needs Kafka and PostgreSQL: run it with `make demo`", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="tether-demo-"))
    if args.faults:
        from services.demo import chaos  # chaos imports this module: import it when used

        return chaos.demo_with_faults(args, run_dir)
    if args.tenants:
        from services.demo import tenants  # imports this module's checks: import it when used

        return tenants.demo(args, run_dir, bootstrap, dsn)
    stack = Stack(
        bootstrap, dsn, run_dir, lift_limits=not args.real_limits, webhooks=not args.no_webhooks
    )
    layout = TopicLayout(prefix=stack.topic_prefix, partitions=3)
    report: dict[str, Any] = {
        "records_requested": args.records,
        "seed": args.seed,
        "rate_limits": "real" if args.real_limits else "lifted",
    }
    say(
        f"Tether demo: {args.records} PowerOffice records, limits "
        f"{report['rate_limits']}, logs in {run_dir}"
    )
    try:
        stack.create_database()
        stack.start_simulators()
        data = generate(args.records, args.seed)
        seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
        say(
            f"seeded {seeded.counts()} (expected: {data.expectations['matched_existing_records']}"
            f" records match existing Wix contacts, {data.expectations['review_items']} are "
            "ambiguous)"
        )
        say(predict(stack.service_env("mapper")))  # read-only: docs/first-run.md
        stack.provision_topics()
        stack.start_services()
        say(
            f"services ready: extractor {stack.service_url('extractor')}, mapper "
            f"{stack.service_url('mapper')}, loader {stack.service_url('loader')}"
        )
        # The token exists for this run only; it is printed here and nowhere else (the console
        # gets its SHA-256 digest; the report and the logs never hold it).
        token = stack.start_console({"operator": "operator"})["operator"]
        say(f"operator console: {stack.console_url}/  (sign in with this token: {token})")
        total = sum(seeded.counts()[r] for r in ("employees", "customers", "contact_persons"))
        sync_seconds = wait_for_sync(stack, layout, total, args.timeout)
        with PowerOfficeSimulatorAdmin(stack.poweroffice_url) as po:
            records = collect_records(po)
        wix = WixAdmin(stack.wix_url)
        contacts = wix.contacts()
        wix.close()
        summary = reconcile(
            records,
            contacts,
            {str(c["id"]) for c in seeded.wix_contacts},
            mapperdb.links(stack.database_dsn),
            mapperdb.review_records(stack.database_dsn),
        )
        report["initial_sync"] = {
            "seconds": round(sync_seconds, 1),
            "records_per_second": round(total / sync_seconds, 1),
            **summary,
        }
        report["review_items"] = mapperdb.review_items(stack.database_dsn)
        report["api_calls_initial_sync"] = api_counts(stack)
        print_summary(summary, report["review_items"], data.expectations)
        misses = expectation_misses(summary, report["review_items"], data.expectations)
        report["expected_counts_met"] = not misses
        report["expectation_misses"] = misses
        say("  exact expected counts: " + ("yes" if not misses else "NO"))
        for miss in misses:
            say(f"  NOT AS EXPECTED: {miss}")

        if args.edits:
            before = api_counts(stack)
            say(f"making {args.edits} random edits on both sides ...")
            report["edits"] = make_edits(stack, args.edits, random.Random(args.seed))
            time.sleep(3)  # let echoes come back, so echo writes would be counted
            after = api_counts(stack)
            writes = {s: apicounts.difference(after[s], before[s]) for s in after}
            report["api_calls_edits"] = writes
            # Every write beyond one per changed target record is an echo or a no-op write.
            actual = sum(w["writes"] for w in writes.values())
            report["edits"]["writes_actual"] = actual
            report["edits"]["echo_writes"] = max(0, actual - report["edits"]["writes_expected"])
            say(json.dumps(report["edits"]))
        if not args.no_screenshots:
            report["screenshots"] = console_screenshots(stack, token, args.screenshots)
        state = mapperdb.sync_state(stack.database_dsn)
        report["pending_commands"] = state.pending_commands
        report["failed_commands"] = state.failed_commands
        report["dead_letters"] = snapshot(layout, stack.metrics_text).dead_letters
        if args.report:
            args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False))
            say(f"report written to {args.report}")
        if not args.exit_after_sync:
            say(
                f"\nOperator console: {stack.console_url}/  (token: {token})\n"
                "Tether keeps running. Edit a record and watch it arrive on the other side:\n"
                f"  tether edit poweroffice employees <Id> LastName=Nordmann "
                f"--url {stack.poweroffice_url}\n"
                f"  curl {stack.public_url('mapper')}/explain?system=poweroffice&resource="
                "employees&id=<Id>\nCtrl-C stops everything."
            )
            while all(p.running for p in stack.processes.values()):
                time.sleep(1)
        return 0 if not misses else 1
    except KeyboardInterrupt:
        return 0
    finally:
        codes = stack.stop()
        say(f"stopped: {codes}")
        stack.drop_database()


def console_screenshots(stack: Stack, token: str, directory: Path) -> dict[str, str]:
    """Screenshots of the console's pages (``services.demo.screenshots``); {page: file}."""
    from services.demo import screenshots  # the browser is wanted here only

    directory = directory.resolve()
    say(f"taking screenshots of the console's pages into {directory} ...")
    taken = screenshots.take(
        stack.console_url, token, directory, mapperdb.busiest_link(stack.database_dsn)
    )
    if taken.skipped:
        say(f"  no screenshots: {taken.skipped} (python3 scripts/infra.py browser installs it)")
    for page, path in taken.pages.items():
        say(f"  {page:<14} {path}")
    return {page: str(path) for page, path in taken.pages.items()}


def expectation_misses(
    summary: dict[str, Any], review: list[dict[str, Any]], expectations: dict[str, Any]
) -> list[str]:
    """What differs from the seed's exact expected result (empty: the sync is exactly right)."""
    checks = {
        "contacts created": (summary["contacts_created"], expectations["created_contacts"]),
        "contacts matched": (
            summary["contacts_matched"],
            expectations["matched_existing_contacts"],
        ),
        "review items": (len(review), expectations["review_items"]),
        "duplicate contacts": (summary["duplicate_contacts"], 0),
        "linked more than once": (summary["linked_more_than_once"], 0),
        "unlinked records": (len(summary["unlinked_records"]), 0),
        "value mismatches": (summary["value_mismatches"], 0),
    }
    return [
        f"{what}: {actual} (expected {expected})"
        for what, (actual, expected) in checks.items()
        if actual != expected
    ]


def print_summary(
    summary: dict[str, Any], review: list[dict[str, Any]], expectations: dict[str, Any]
) -> None:
    say("\n=== Initial sync: reconciliation ===")
    for flow, counts in summary["flows"].items():
        say(
            f"  {flow:<16} records {counts['records']:>6}  linked {counts['linked']:>6}  "
            f"in review {counts['in_review']:>3}"
        )
    say(
        f"  Wix contacts: {summary['wix_contacts_before']} before, "
        f"{summary['wix_contacts_after']} after; created {summary['contacts_created']} "
        f"(expected {expectations['created_contacts']}), matched {summary['contacts_matched']} "
        f"(expected {expectations['matched_existing_contacts']})"
    )
    say(
        f"  linked more than once: {summary['linked_more_than_once']}   duplicate contacts: "
        f"{summary['duplicate_contacts']}   unlinked: {len(summary['unlinked_records'])}   "
        f"value mismatches: {summary['value_mismatches']}"
    )
    say(f"  review items ({len(review)}):")
    for item in review[:20]:
        say(f"    {item['resource']} {item['record_id']}: {item['reason']}")
