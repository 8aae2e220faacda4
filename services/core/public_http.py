"""The public HTTP port: routes reached from outside the pod, served by uvicorn + starlette.

What is public: the extractor's Wix webhook receiver (internet-facing, through the ingress) and the
mapper's ``/explain`` (console-facing). ``/metrics``, ``/healthz`` and ``/readyz`` are *not* here:
they stay on the operations port (``services.core.runtime.HttpServer``, ``http_port``) that only
Prometheus and the kubelet reach, so a NetworkPolicy can admit the ingress to this port alone.

:class:`PublicServer` binds its socket when it is built (a port clash fails at start-up, and port
0 gives an ephemeral port known at once), serves from one daemon thread running uvicorn (h11) and
stops gracefully (``stop``: no new connections, in-flight requests finish within
``timeout_graceful_shutdown``). Routes are the same plain callables the services always had —
blocking code, run in a worker thread:

* a POST route ``(body, lower-cased headers) -> (status, content type, body)``;
* a GET route ``(query parameters, last value of each) -> (status, content type, body)``.

Limits (:class:`PublicLimits`, from ``PublicHttpSettings``):

* request body: a route's ``max_body`` (else ``max_body_bytes``). A larger ``Content-Length`` is
  answered **413** before a byte of the body is read; a chunked body is counted while it streams
  and refused with 413 as soon as it passes the cap. Either way the connection is closed;
* request timeout: reading the body plus the route must finish within ``request_timeout``, else
  **503** ``{"error": "timeout"}`` (the route's thread is abandoned, not killed: routes bound
  their own waits — the webhook's Kafka ack wait is ~1 s);
* uvicorn: ``timeout_keep_alive`` (idle keep-alive connections are closed), ``limit_concurrency``
  (more concurrent connections/requests -> 503), ``h11_max_incomplete_event_size`` (a request
  head still incomplete after this many bytes -> 400); a complete head (target + headers) over
  ``max_header_bytes`` -> **431**.

Imports: standard library, anyio, starlette and uvicorn only.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp

log = logging.getLogger("tether.http")

Answer = tuple[int, str, bytes]
PostRoute = Callable[[bytes, dict[str, str]], Answer]
"""A POST route: (body, lower-cased headers) -> (status, content type, body)."""
GetRoute = Callable[[dict[str, str]], Answer]
"""A GET route: the query parameters (last value of each) -> (status, content type, body)."""


@dataclass(frozen=True)
class PublicLimits:
    max_body_bytes: int = 65_536
    request_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_concurrency: int = 64
    max_header_bytes: int = 16_384
    graceful_shutdown_timeout: float = 10.0


@dataclass(frozen=True)
class _Post:
    route: PostRoute
    max_body: int | None
    on_too_large: Callable[[], None] | None


class _TooLargeError(Exception):
    pass


def _error(status: int, error: str, *, close: bool = False) -> Response:
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": error}, status_code=status, headers=headers)


class PublicServer:
    """The service's public routes on their own port (uvicorn in a daemon thread)."""

    def __init__(
        self,
        host: str,
        port: int,
        limits: PublicLimits | None = None,
        app: ASGIApp | None = None,
    ) -> None:
        """``app``: serve this ASGI application (e.g. the console's) instead of the route table;
        it then enforces its own body and time limits, uvicorn's limits apply as always."""
        self.limits = limits or PublicLimits()
        self.routes: dict[str, _Post] = {}
        self.get_routes: dict[str, GetRoute] = {}
        # Bound now, listening once started (uvicorn's asyncio server calls listen): the port is
        # known (port 0) and a clash fails at start-up, and until then no connection is accepted
        # into a backlog nobody serves.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only for those; without
        # it, h11's separate head and body writes wait out the client's delayed ACK (~40 ms).
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._port = int(self._socket.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._own_app = app is not None
        self.app: ASGIApp = app or Starlette(
            routes=[StarletteRoute("/{path:path}", self._endpoint, methods=["GET", "POST"])]
        )

    @property
    def port(self) -> int:
        return self._port

    @property
    def serving(self) -> bool:
        return bool(self._own_app or self.routes or self.get_routes)

    def add_route(
        self,
        method: str,
        path: str,
        route: PostRoute,
        *,
        max_body: int | None = None,
        on_too_large: Callable[[], None] | None = None,
    ) -> None:
        """Serve ``POST path``; a body over ``max_body`` bytes (default: the server's cap) is
        answered 413 (and ``on_too_large`` called) without reaching the route."""
        if method.upper() != "POST":
            raise ValueError("body routes are POST routes")
        self.routes[path] = _Post(route, max_body, on_too_large)

    def add_get(self, path: str, route: GetRoute) -> None:
        """Serve ``GET path?...``: ``route`` gets the query parameters."""
        self.get_routes[path] = route

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> PublicServer:
        config = uvicorn.Config(
            self.app,
            http="h11",
            lifespan="off",
            access_log=False,  # metrics count requests; access logs would flood
            log_config=None,  # the service's JSON logging applies
            server_header=False,
            timeout_keep_alive=max(1, round(self.limits.keep_alive_timeout)),
            limit_concurrency=self.limits.max_concurrency,
            h11_max_incomplete_event_size=self.limits.max_header_bytes,
            timeout_graceful_shutdown=max(1, round(self.limits.graceful_shutdown_timeout)),
        )
        server = uvicorn.Server(config)
        self._server = server
        # uvicorn installs no signal handlers outside the main thread: SIGTERM stays the runtime's.
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="public-http"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the public HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), close the socket."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(self.limits.graceful_shutdown_timeout + 5)
        self._socket.close()

    # -- requests -------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        path = request.url.path
        # h11 bounds what it buffers of an unfinished head; a complete head that arrived in one
        # read is measured here.
        head = len(request.url.path) + len(request.url.query)
        head += sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
        if head > self.limits.max_header_bytes:
            return _error(431, "headers_too_large", close=True)
        try:
            with anyio.fail_after(self.limits.request_timeout):
                return await self._dispatch(request, path)
        except TimeoutError:
            log.warning(
                "%s %s timed out after %.0fs", request.method, path, self.limits.request_timeout
            )
            return _error(503, "timeout", close=True)

    async def _dispatch(self, request: Request, path: str) -> Response:
        if request.method == "GET":
            get_route = self.get_routes.get(path)
            if get_route is None:
                return Response(b"not found", 404, media_type="text/plain")
            params = dict(request.query_params.multi_items())  # the last value of each wins
            return await self._answer(request.method, path, lambda: get_route(params))
        post = self.routes.get(path)
        if post is None:
            return Response(b"not found", 404, media_type="text/plain")
        limit = post.max_body if post.max_body is not None else self.limits.max_body_bytes
        try:
            body = await self._read_body(request, limit)
        except _TooLargeError as exc:
            # The rest of the body is unread: the connection cannot carry another request.
            log.warning("%s %s refused: %s", request.method, path, exc)
            if post.on_too_large is not None:
                post.on_too_large()
            return _error(413, "body_too_large", close=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await self._answer(request.method, path, lambda: post.route(body, headers))

    @staticmethod
    async def _read_body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        # h11 has validated Content-Length already (an invalid one is answered 400).
        if declared is not None and int(declared) > limit:
            raise _TooLargeError(f"Content-Length {declared} over {limit} bytes")
        parts: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _TooLargeError(f"body over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    @staticmethod
    async def _answer(method: str, path: str, route: Callable[[], Answer]) -> Response:
        try:
            # Abandoned (not awaited) on timeout: the route's thread finishes on its own.
            status, content_type, payload = await anyio.to_thread.run_sync(
                route, abandon_on_cancel=True
            )
        except Exception:
            log.exception("route %s %s failed", method, path)
            status, content_type, payload = 500, "text/plain", b"internal error"
        return Response(payload, status, media_type=content_type)
