"""``tether console``: the operator console service (API + web pages on one port).

    tether console                 serve (configured by TETHER_* variables, docs/console.md)
    tether console hash-token      read a token on standard input, print its sha256: form for
                                   console_tokens (so the secret need not hold it in clear)
    tether console new-token       print a fresh random token

The service serves the Starlette application of ``services.console.app`` on ``public_port``
(default 9184) with uvicorn (through ``services.core.public_http.PublicServer``), and
``/metrics``, ``/healthz``, ``/readyz`` (PostgreSQL and Kafka reachable) on ``http_port``
(default 9104). It holds one Kafka producer (operator actions, tenant registry changes), a reader
following the tenant registry, and a small pool of read-only PostgreSQL connections; it never
writes to PostgreSQL.

Imports: standard library, prometheus_client, psycopg and the core and console modules.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
from collections.abc import Sequence
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from services.console.actions import Actions
from services.console.app import ConnectionPool, Console, build_app
from services.console.auth import (
    JwtVerifier,
    RateLimits,
    Sessions,
    TokenVerifier,
    Verifier,
    Verifiers,
    parse_token_entries,
)
from services.console.kafkaview import KafkaView, TtlCache
from services.console.metrics import ConsoleMetrics
from services.console.settings import ConsoleSettings
from services.console.tenants import ConsoleTenants
from services.console.tenants import names as tenant_admins
from services.core.errors import ConfigurationError
from services.core.kafka import layout_from, make_producer
from services.core.metrics import CoreMetrics
from services.core.public_http import PublicLimits, PublicServer
from services.core.runtime import CachedCheck, ServiceRuntime, configure_logging, tcp_reachable
from services.core.schema_registry import codec_from

log = logging.getLogger("tether.console")

USAGE = "usage: tether console [hash-token | new-token]   (configured by TETHER_* variables)\n"


def verifiers_from(settings: ConsoleSettings) -> Verifiers:
    """The verifiers the settings configure; ``ConfigurationError`` when none is."""
    text = settings.console_tokens.get_secret_value()
    if settings.console_tokens_file is not None:
        try:
            text += "\n" + settings.console_tokens_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"console_tokens_file cannot be read ({type(exc).__name__})"
            ) from None
    chain: list[Verifier] = []
    entries = parse_token_entries(text)
    if entries:
        chain.append(TokenVerifier(entries))
    if settings.console_jwks_url:
        chain.append(
            JwtVerifier(
                settings.console_jwks_url,
                issuer=settings.console_jwt_issuer,
                audience=settings.console_jwt_audience,
                role_claim=settings.console_jwt_role_claim,
                name_claim=settings.console_jwt_name_claim,
            )
        )
    if not chain:
        raise ConfigurationError(
            "the console has no way to authenticate callers: set TETHER_CONSOLE_TOKENS, "
            "TETHER_CONSOLE_TOKENS_FILE or TETHER_CONSOLE_JWKS_URL"
        )
    return Verifiers(chain)


def build_console(
    settings: ConsoleSettings,
    registry: CollectorRegistry,
    *,
    producer: Any | None = None,
    kafka: bool = True,
) -> Console:
    """Everything the routes share (``producer``: made here unless given; ``kafka=False``: no
    Kafka at all — lists and overview from PostgreSQL only, no actions, no tenant registry)."""
    verifiers = verifiers_from(settings)  # first: a configuration error starts nothing
    metrics = ConsoleMetrics(registry)
    secret = settings.console_session_secret.get_secret_value().encode() or None
    view = None
    actions = None
    tenants = None
    if kafka:
        codec = codec_from(settings)
        layout = layout_from(settings)
        view = KafkaView(
            settings, codec, layout, cache_seconds=settings.console_kafka_cache_seconds
        )
        if producer is None:
            producer = make_producer(settings, "console")
        actions = Actions(
            producer,
            codec,
            layout,
            metrics,
            redriver=view,
            ack_timeout=settings.console_action_ack_timeout_seconds,
        )
        tenants = ConsoleTenants(
            settings,
            codec,
            producer=producer,
            refresh_seconds=settings.console_tenants_refresh_seconds,
            ack_timeout=settings.console_action_ack_timeout_seconds,
            admins=tenant_admins(settings.console_tenant_admins),
        ).start()
    return Console(
        settings=settings,
        verifiers=verifiers,
        sessions=Sessions(secret, settings.console_session_hours * 3600),
        limits=RateLimits(settings.console_rate_per_minute),
        pool=ConnectionPool(settings.postgres_dsn.get_secret_value),
        metrics=metrics,
        kafka=view,
        actions=actions,
        overview_cache=TtlCache(settings.console_overview_cache_seconds),
        tenants=tenants,
    )


def postgres_reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv or [])
    if args in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    if args == ["new-token"]:
        sys.stdout.write(secrets.token_urlsafe(32) + "\n")
        return 0
    if args == ["hash-token"]:
        token = sys.stdin.readline().strip()
        if len(token) < 16:
            sys.stderr.write("tether console hash-token: tokens need 16+ characters\n")
            return 2
        sys.stdout.write("sha256:" + hashlib.sha256(token.encode()).hexdigest() + "\n")
        return 0
    if args:
        sys.stderr.write(USAGE)
        return 2
    settings: ConsoleSettings = ConsoleSettings.load()
    configure_logging("console", settings.log_level, settings.log_personal_data)
    registry = CollectorRegistry()
    CoreMetrics(registry, "console")  # tether_service_info and the process metrics, as elsewhere
    try:
        console = build_console(settings, registry)
    except ConfigurationError as exc:
        sys.stderr.write(f"tether console: {exc}\n")
        return 2
    limits = PublicLimits(
        max_body_bytes=settings.public_max_body_bytes,
        request_timeout=settings.public_request_timeout_seconds,
        keep_alive_timeout=settings.public_keep_alive_seconds,
        max_concurrency=settings.public_max_concurrency,
        max_header_bytes=settings.public_max_header_bytes,
    )
    public = PublicServer(settings.http_host, settings.public_port, limits, app=build_app(console))
    runtime = ServiceRuntime(
        "console",
        registry,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        public=public,
    )
    dsn = settings.postgres_dsn.get_secret_value
    runtime.http.add_check("postgres", CachedCheck(lambda: postgres_reachable(dsn())))
    runtime.http.add_check(
        "kafka", CachedCheck(lambda: tcp_reachable(settings.kafka_bootstrap_servers))
    )
    runtime.install_signal_handlers()

    def loop(rt: ServiceRuntime) -> None:
        log.info("console serving", extra={"fields": {"port": public.port}})
        while not rt.stopping.wait(1.0):
            rt.heartbeat()

    try:
        return runtime.run(loop)
    finally:
        if console.tenants is not None:
            console.tenants.close()
        if console.actions is not None:
            producer = console.actions.producer
            close = getattr(producer, "close", None)
            if close is not None:
                close(timeout=5)
        console.pool.close()


if __name__ == "__main__":
    sys.exit(main())
