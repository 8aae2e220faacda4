"""The console's Starlette application: shared context, connection pool, security middleware.

:func:`build_app` joins the JSON API (``services.console.api``, ``/api/v1/...``) and the web
pages (``services.console.web``, ``/`` and ``/ui/...``, ``/static/...``) behind one middleware
that, for every request:

1. bounds the request body (``public_max_body_bytes``: 413) and the time to answer
   (``public_request_timeout_seconds``: 503);
2. adds security headers (a strict Content-Security-Policy — the pages load no script from
   elsewhere and run no inline script —, no framing, no referrer to other sites (the same-origin
   one lets browsers send a real ``Origin`` on form posts), ``no-store`` caching: pages and
   answers may hold personal data);
3. counts the request by route template and status (``ConsoleMetrics``).

:class:`Console` is what the routes share: settings, the verifiers, sessions and rate limits, a
small pool of read-only PostgreSQL connections, the Kafka view, the action publisher and the tenant
registry (followed, and changed by operators: ``services.console.tenants``). Blocking
work (SQL, Kafka) runs in Starlette's thread pool.

Imports: standard library, anyio, psycopg, starlette and the console's own modules.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import psycopg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console.actions import Actions
from services.console.auth import Identity, RateLimits, Sessions, Verifiers
from services.console.kafkaview import KafkaView, TtlCache
from services.console.metrics import ConsoleMetrics
from services.console.settings import ConsoleSettings
from services.console.tenants import ConsoleTenants

log = logging.getLogger("tether.console")

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class ConnectionPool:
    """A few reusable autocommit, read-only connections (opened lazily, dropped on error)."""

    def __init__(self, dsn: Callable[[], str], size: int = 8) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5)
            # ``conn.read_only`` would apply only to transactions psycopg opens, and autocommit
            # opens none: make every statement of this session read-only instead.
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok and not conn.closed:
                try:
                    self._idle.put_nowait(conn)
                except queue.Full:
                    conn.close()
            else:
                conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


@dataclass
class Console:
    settings: ConsoleSettings
    verifiers: Verifiers
    sessions: Sessions
    limits: RateLimits
    pool: ConnectionPool
    metrics: ConsoleMetrics
    kafka: KafkaView | None
    actions: Actions | None
    overview_cache: TtlCache | None = None
    tenants: ConsoleTenants | None = None

    @property
    def tenant(self) -> str:
        return self.settings.tenant

    def allow(self, key: str) -> bool:
        if self.limits.allow(key):
            return True
        self.metrics.auth_failures.labels("rate_limited").inc()
        return False


def identity_of(request: Request) -> Identity | None:
    value = request.scope.get("tether.identity")
    return value if isinstance(value, Identity) else None


def client_key(request: Request) -> str:
    return f"addr:{request.client.host if request.client else 'unknown'}"


class ConsoleMiddleware:
    """Body cap, timeout, security headers and request metrics (see the module docstring)."""

    def __init__(self, app: ASGIApp, console: Console, routes: list[BaseRoute]) -> None:
        self.app = app
        self.console = console
        self.routes = routes

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "other"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.console.settings
        started = time.perf_counter()
        route = self._template(scope)
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > settings.public_max_body_bytes
        ):
            await JSONResponse({"error": "body_too_large"}, 413)(scope, receive, send)
            self._count(route, scope["method"], 413, started)
            return
        received = {"bytes": 0}

        async def capped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > settings.public_max_body_bytes:
                    raise _BodyTooLargeError
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                raw = list(message.get("headers") or [])
                present = {k.lower() for k, _ in raw}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        raw.append((name.encode(), value.encode()))
                message = {**message, "headers": raw}
            await send(message)

        try:
            with anyio.fail_after(settings.public_request_timeout_seconds):
                await self.app(scope, capped_receive, send_with_headers)
        except _BodyTooLargeError:
            await JSONResponse({"error": "body_too_large"}, 413)(scope, receive, send)
            status["code"] = 413
        except TimeoutError:
            log.warning("%s %s timed out", scope["method"], route)
            await JSONResponse({"error": "timeout"}, 503)(scope, receive, send)
            status["code"] = 503
        self._count(route, scope["method"], status["code"], started)

    def _count(self, route: str, method: str, status: int, started: float) -> None:
        metrics = self.console.metrics
        metrics.requests.labels(route, method, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)


class _BodyTooLargeError(Exception):
    pass


def build_app(console: Console) -> Starlette:
    from services.console import api, web

    routes: list[BaseRoute] = [*api.routes(console), *web.routes(console)]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ConsoleMiddleware, console=console, routes=routes)],
        exception_handlers={404: _not_found},
    )
    app.state.console = console
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "not_found"}, 404)
    return Response("not found", 404, media_type="text/plain")
