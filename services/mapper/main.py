"""``tether mapper``: build the settings once, wire the service, run the loop until SIGTERM.

Start-up: settings (``MapperSettings``: environment + secret files), the dataflow file and the
policy are validated first (a bad one exits with code 2 before anything connects) and the
dataflow's flows and properties are installed; then the shared context (JSON
logs, metrics, HTTP port with ``/metrics``, ``/healthz``, ``/readyz`` — ready when Kafka and
PostgreSQL are reachable and the loop has started — and the public port with ``/explain``);
then ``Mapper.run``: topics provisioned, migrations applied (advisory-locked), outbox leftovers
produced, and the loop.
SIGTERM finishes the current batch, produces, commits and exits 0 well within 20 s.

Imports: the core service/runtime modules and the mapper's modules.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Sequence

import psycopg

from services.core.errors import ConfigurationError
from services.core.runtime import CachedCheck, ServiceRuntime
from services.core.service import ServiceContext
from services.mapper import http
from services.mapper.domain import FLOWS
from services.mapper.loop import Mapper
from services.mapper.migrations import apply_migrations
from services.mapper.settings import MapperSettings

log = logging.getLogger("tether.mapper")


def postgres_reachable(dsn: str) -> bool:
    """A readiness probe: PostgreSQL answers ``SELECT 1``."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv or [])
    usage = "usage: tether mapper [--migrate-only]   (configured by TETHER_* variables)\n"
    if args in (["-h"], ["--help"]):
        sys.stdout.write(usage)
        return 0
    if args not in ([], ["--migrate-only"]):
        sys.stderr.write(usage)
        return 2
    settings: MapperSettings = MapperSettings.load()
    if args == ["--migrate-only"]:
        # The Kubernetes migrate Job: apply the versioned migrations and exit (the service
        # applies them at start-up too; both hold the same advisory lock).
        with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
            applied = apply_migrations(conn)
        print(json.dumps({"applied": applied}))
        return 0
    try:
        # Before anything handles a change: the decision code reads the flows and properties
        # this installs (services.mapper.domain.mappings.use_dataflow).
        policy = settings.install_dataflow()
    except ConfigurationError as exc:
        sys.stderr.write(f"tether mapper: {exc}\n")
        return 2
    ctx = ServiceContext.create("mapper", settings)
    dsn = settings.postgres_dsn.get_secret_value
    started = threading.Event()
    ctx.runtime.http.add_check("postgres", CachedCheck(lambda: postgres_reachable(dsn())))
    ctx.runtime.http.add_check("loop", started.is_set)
    http.install(ctx.runtime.public, http.ExplainEndpoint(dsn, settings.tenant))
    mapper = Mapper(ctx, settings, policy)
    log.info(
        "mapper starting",
        extra={
            "fields": {
                "group": mapper.group,
                "policy": policy.model_dump(mode="json"),
                "dataflow": str(settings.mapper_dataflow_file),
                "flows": {name: spec.label for name, spec in FLOWS.items()},
            }
        },
    )

    def loop(runtime: ServiceRuntime) -> None:
        def stop() -> bool:
            if not started.is_set() and mapper.consumer is not None:
                started.set()
            return runtime.stopping.is_set()

        mapper.run(stop)

    try:
        return ctx.runtime.run(loop)
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
