"""Entry point of the extractor service: ``tether extractor [--once [--reconcile]]``.

Builds the settings once (``ExtractorSettings.load()``: ``TETHER_*`` variables and the secrets
directory), the service context and the :class:`~services.extractor.service.Extractor`, then runs
the service loop until SIGTERM/SIGINT (graceful: the current page is finished, acknowledged and
its cursor saved). With ``TETHER_TENANTS_FROM_REGISTRY`` it runs a
:class:`~services.extractor.fleet.Fleet` instead: the tenants of the registry, shared with the
other replicas. ``--once`` runs one poll cycle of every resource (and with ``--reconcile`` one
reconciliation) and exits — for tests, benchmarks and cron-style runs; it serves no HTTP port.

Imports: the core service context and the extractor modules.
"""

from __future__ import annotations

import argparse
import logging

from services.core.errors import ConfigurationError
from services.core.service import ServiceContext
from services.core.tenant_labels import TenantLabels
from services.extractor.fleet import Fleet
from services.extractor.service import Extractor
from services.extractor.settings import ExtractorSettings

log = logging.getLogger("tether.extractor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether extractor",
        description="Extract changes from the connected systems into Kafka (settings: TETHER_*).",
    )
    parser.add_argument(
        "--once", action="store_true", help="one poll cycle of every resource, then exit"
    )
    parser.add_argument(
        "--reconcile", action="store_true", help="with --once: also reconcile every resource once"
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = ExtractorSettings.load()
    ctx = ServiceContext.create("extractor", settings)
    extractor: Extractor | None = None
    try:
        if settings.tenants_from_registry:
            if args.once:
                raise ConfigurationError(
                    "--once extracts the one TETHER_TENANT: not with TETHER_TENANTS_FROM_REGISTRY"
                )
            # Bounded label values: the first TETHER_METRICS_TENANT_CAP tenants, then _other.
            fleet = Fleet(ctx, settings, label=TenantLabels(settings.metrics_tenant_cap).label)
            return ctx.runtime.run(lambda runtime: fleet.run(runtime.stopping, runtime.heartbeat))
        extractor = Extractor(ctx, settings)
        if args.once:
            extractor.start()
            extractor.poll_all(ctx.runtime.stopping.is_set)
            if args.reconcile and not ctx.runtime.stopping.is_set():
                extractor.reconcile_all()
            return 0
        return ctx.runtime.run(extractor.run)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        return 2
    finally:
        if extractor is not None:
            extractor.close()
        ctx.close()
