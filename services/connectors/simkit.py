"""Shared machinery of the local API simulators (never imported by production clients).

- ``ServerThread`` serves an ASGI app with uvicorn on a loopback port inside this process (tests)
  — ``run_forever`` does the same in the foreground for a simulator started as its own process.
- ``FaultInjector`` is ASGI middleware that injects latency, error statuses, timeouts, dropped
  connections and 429 bursts per endpoint; rules are set from tests or the admin API.
  ``lose_response`` lets the app handle the request (its effect happens) and then replaces the
  answer with ``status`` (0: drops the connection) — the "did my create go through?" case.
- ``WindowRateLimiter`` counts requests per key in a sliding window, as the real gateways do;
  ``count_rejected`` (off by default) makes a refused request use a slot too, as gateways that
  count every arrival do — then clients that retry on a fixed timer keep the window full.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import parse_qsl

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["latency", "status", "timeout", "drop", "rate_limit", "lose_response"]


@dataclass
class FaultRule:
    """One injected fault.

    ``path`` is a regular expression matched against the request path (``re.search``), ``method``
    an HTTP method or ``"*"``. ``times`` limits how many requests it hits (``None``: forever);
    ``probability`` makes it random (seeded, so runs are repeatable).
    """

    kind: FaultKind
    path: str = ".*"
    method: str = "*"
    status: int = 503
    seconds: float = 0.0
    times: int | None = None
    probability: float = 1.0
    body: bytes = b'{"message":"injected fault"}'

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method.upper() == method) and re.search(
            self.path, path
        ) is not None


@dataclass
class FaultInjector:
    """ASGI middleware applying ``FaultRule``s before the wrapped app sees a request."""

    app: ASGIApp
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 7
    injected: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _pick(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                if rule.times is not None and rule.times <= 0:
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                self.injected[rule.kind] += 1
                return rule
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_admin"):
            await self.app(scope, receive, send)
            return
        rule = self._pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.kind == "latency":
            await asyncio.sleep(rule.seconds)
            await self.app(scope, receive, send)
        elif rule.kind == "timeout":
            # Hold the request longer than any sane client timeout, then answer nothing useful.
            await asyncio.sleep(rule.seconds or 30.0)
            await _respond(send, 504, rule.body)
        elif rule.kind == "drop":
            # Start a response and abort: uvicorn closes the connection mid-response, which the
            # client sees as a protocol/transport error (the closest ASGI gets to a TCP reset).
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionAbortedError("injected dropped connection")
        elif rule.kind == "lose_response":

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, receive, discard)
            if rule.status == 0:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                raise ConnectionAbortedError("injected lost response")
            await _respond(send, rule.status, rule.body)
        else:  # "status" or "rate_limit"
            status = 429 if rule.kind == "rate_limit" else rule.status
            await _respond(send, status, rule.body)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WindowRateLimiter:
    """Sliding-window request counter per key: ``allow(key)`` is False past ``limit`` per window.

    ``limit <= 0`` lifts the limit (benchmarks). ``retry_after(key)`` says how many whole seconds
    until the oldest request in the window expires. ``count_rejected``: a refused request counts
    against the window as well (realism option, off by default).
    """

    def __init__(self, limit: int, window_seconds: float, count_rejected: bool = False) -> None:
        self.limit = limit
        self.window = window_seconds
        self.count_rejected = count_rejected
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()
        self.rejected = 0

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                self.rejected += 1
                if self.count_rejected:
                    hits.append(now)
                return False
            hits.append(now)
            return True

    def retry_after(self, key: str) -> int:
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 1
            return max(1, int(hits[0] + self.window - time.monotonic() + 0.999))


#: A tenant id as the tenant registry spells it (it is also a path segment: ``/_tenants/{id}``).
TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def tenant_ids(count: int) -> list[str]:
    """The tenant ids ``tether simulate ... --tenants N`` and the test helpers use:
    ``tenant-001``, ``tenant-002``, ..."""
    return [f"tenant-{number:03d}" for number in range(1, count + 1)]


def tenant_admin_path(path: str) -> tuple[str, str] | None:
    """``/_tenants/{tenant}/_admin/x`` -> ``(tenant, "/_admin/x")``; None for any other path."""
    if not path.startswith("/_tenants/"):
        return None
    tenant, _, admin = path.removeprefix("/_tenants/").partition("/")
    if not tenant or not (admin == "_admin" or admin.startswith("_admin/")):
        return None
    return tenant, "/" + admin


S = TypeVar("S")


class TenantFront(Generic[S]):
    """What the multi-tenant fronts of both simulators share: one simulator per tenant, found by
    ``[tenant]``; ``default`` (the first: the one ``/_admin/...`` addresses); ``serve``;
    ``admin_root`` (where a tenant's ``/_admin`` is). Subclasses fill ``_simulators`` under
    ``_lock`` and route requests by credentials."""

    #: The front's ASGI app (the front itself), named as on the single-tenant simulators.
    app: ASGIApp

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._simulators: dict[str, S] = {}

    def __getitem__(self, tenant: str) -> S:
        with self._lock:
            return self._simulators[tenant]

    @property
    def default(self) -> S | None:
        """The first tenant's simulator: the one ``/_admin/...`` addresses."""
        with self._lock:
            return next(iter(self._simulators.values()), None)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServerThread:
        """A ``ServerThread`` for the front (not started; use it as a context manager)."""
        return ServerThread(self.app, host=host, port=port)

    @staticmethod
    def admin_root(server_url: str, tenant: str) -> str:
        """The root URL whose ``/_admin`` is ``tenant``'s (for the admin clients)."""
        return f"{server_url.rstrip('/')}/_tenants/{tenant}"


class TokenIndex:
    """Which tenant issued a bearer token (thread-safe). Only a routing hint: the tenant's own
    simulator still validates the token (expired, revoked), so an entry may outlive its token
    until ``add`` prunes it. ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tenants: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, token: str, tenant: str, lifetime_seconds: float) -> None:
        now = self._clock()
        with self._lock:
            self._tenants = {t: v for t, v in self._tenants.items() if v[1] > now}
            self._tenants[token] = (tenant, now + lifetime_seconds)

    def tenant_of(self, token: str) -> str | None:
        with self._lock:
            entry = self._tenants.get(token)
        return entry[0] if entry is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._tenants)


def header(scope: Scope, name: str) -> str | None:
    """The first value of request header ``name`` (lower-case) in an ASGI scope."""
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def query_params(scope: Scope) -> Mapping[str, str]:
    """The query string of an ASGI scope, keys as sent (the last value of a repeated key wins)."""
    raw = bytes(scope.get("query_string", b"")).decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the request is then replayed with ``forward(..., body=...)``)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def forward(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    path: str | None = None,
    body: bytes | None = None,
) -> None:
    """Hand a request to ``app``, under ``path`` instead of its own and/or with a ``body`` the
    caller already read (``read_body`` consumed the original stream)."""
    if path is not None:
        scope = {**scope, "path": path, "raw_path": path.encode()}
    if body is not None:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the disconnect as usual
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        receive = replay
    await app(scope, receive, send)


class ServerThread:
    """Serve an ASGI app on loopback in a daemon thread; ``url`` is ready when ``start`` returns."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
        # and accepted sockets inherit it; with proto 0 every response waited ~40 ms (Nagle).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("simulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_forever(app: ASGIApp, host: str, port: int) -> None:
    """Serve ``app`` in the foreground until SIGINT/SIGTERM (a simulator as its own process)."""
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
