"""Entry point of the verifier: ``tether verify [--loop] [--no-repair]``.

Without ``--loop``: one cycle, the report printed as JSON (counts, and per divergent link its id,
flow, property names and the repair events — never values), exit code 0 when every link agrees
or every divergent one got its repair events, 1 when a divergent link could not be repaired
(``stuck``/``unencodable``/``--no-repair``), 2 on a configuration, API or database error.

With ``--loop``: a service (Kubernetes Deployment ``tether-verify``) serving ``/metrics``,
``/healthz`` and ``/readyz`` on ``TETHER_HTTP_PORT`` (9103) and running a cycle every
``TETHER_VERIFY_INTERVAL_SECONDS`` (from the start of one to the start of the next); a failed
cycle is logged and counted, the next one starts over. SIGTERM stops between pages.

Imports: the core service context and the verifier's modules.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import psycopg
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from services.core.codec import default_codec
from services.core.errors import ConfigurationError, TetherError
from services.core.kafka import layout_from, make_producer
from services.core.metrics import BudgetCollector, CoreMetrics
from services.core.runtime import ServiceRuntime, configure_logging
from services.core.service import ServiceContext
from services.verify.cycle import Verifier
from services.verify.metrics import VerifyMetrics
from services.verify.reading import build_clients
from services.verify.settings import VerifySettings

log = logging.getLogger("tether.verify")


class StopRequestedError(Exception):
    """The scan was asked to stop (SIGTERM)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether verify",
        description="Compare both systems for every link and repair what differs through the "
        "pipeline (settings: TETHER_*). See docs/verification.md.",
    )
    parser.add_argument("--loop", action="store_true", help="run as a service, cycle after cycle")
    parser.add_argument(
        "--no-repair", action="store_true", help="report only: emit no repair events"
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    overrides = {"verify_repair": False} if args.no_repair else {}
    settings = VerifySettings.load(**overrides)
    if args.loop:
        ctx = ServiceContext.create("verify", settings)
        registry, core, codec, layout = ctx.registry, ctx.metrics, ctx.codec, ctx.layout
    else:
        # One cycle serves no HTTP port (the service context would bind one).
        configure_logging("verify", settings.log_level, settings.log_personal_data)
        registry = CollectorRegistry()
        core = CoreMetrics(registry, "verify")
        codec, layout = default_codec(), layout_from(settings)
    metrics = VerifyMetrics(registry, settings.tenant)
    try:
        clients = build_clients(settings, core)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        return 2
    registry.register(BudgetCollector(clients.budgets))
    producer = make_producer(settings, "verify")
    verifier = Verifier(settings, clients, producer, codec, layout, metrics)
    try:
        if args.loop:
            return ctx.runtime.run(lambda runtime: _loop(verifier, settings, runtime))
        try:
            report = verifier.run_cycle()
        except (TetherError, psycopg.Error, KafkaError) as exc:
            # Never echo the DSN or a credential: the error class is enough to act on.
            sys.stderr.write(f"tether verify: cycle failed ({type(exc).__name__})\n")
            return 2
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return 0 if report.converging else 1
    finally:
        producer.close(timeout=10)
        clients.close()
        if args.loop:
            ctx.close()


def _loop(verifier: Verifier, settings: VerifySettings, runtime: ServiceRuntime) -> None:
    def progress() -> None:
        runtime.heartbeat()
        if runtime.stopping.is_set():
            raise StopRequestedError

    while not runtime.stopping.is_set():
        started = time.monotonic()
        runtime.heartbeat()
        try:
            verifier.run_cycle(progress)
        except StopRequestedError:
            return
        except Exception as exc:  # one failed cycle never stops the service
            log.error("verification cycle failed", extra={"fields": {"error": type(exc).__name__}})
        # Beat while waiting: /healthz watches the loop, not the cycle length.
        deadline = started + settings.verify_interval_seconds
        while not runtime.stopping.is_set() and time.monotonic() < deadline:
            runtime.heartbeat()
            runtime.stopping.wait(min(5.0, max(0.0, deadline - time.monotonic())))
