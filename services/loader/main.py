"""``tether loader``: run the loader service until SIGTERM.

Settings come from ``TETHER_*`` variables and the secrets directory (``LoaderSettings``);
``--provision-topics`` creates missing topics first (idempotent; deployments normally run
``tether topics provision`` once instead). Exit codes: 0 after a graceful stop, 2 for a
configuration error.

Imports: the core service machinery and the loader's service/settings modules.
"""

from __future__ import annotations

import argparse
import logging

from services.core.breaker import Breakers
from services.core.errors import ConfigurationError
from services.core.kafka import provision_topics
from services.core.metrics import BreakerCollector
from services.core.service import ServiceContext
from services.core.tenant_labels import TenantLabels
from services.loader.service import LoaderService
from services.loader.settings import LoaderSettings
from services.loader.tenancy import LOADER_BREAKER_SYSTEM, LoaderBreaker

log = logging.getLogger("tether.loader")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether loader",
        description="Apply commands to the target systems; report an outcome for each.",
    )
    parser.add_argument(
        "--provision-topics", action="store_true", help="create missing topics before starting"
    )
    args = parser.parse_args(argv)
    settings: LoaderSettings = LoaderSettings.load()
    ctx = ServiceContext.create("loader", settings)
    try:
        if args.provision_topics:
            provision_topics(settings)
        labels = TenantLabels(settings.metrics_tenant_cap)
        breakers = Breakers()
        ctx.registry.register(BreakerCollector(breakers, labels.label))
        service = LoaderService.from_settings(
            ctx,
            settings,
            tenant_label=labels.label,
            breaker_for=lambda tenant: LoaderBreaker(breakers.get(tenant, LOADER_BREAKER_SYSTEM)),
        )
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        ctx.close()
        return 2
    try:
        return ctx.runtime.run(service.run)
    finally:
        service.close()
        ctx.close()
