"""What every Tether service process shares: JSON logs, the HTTP port, readiness, SIGTERM.

- :func:`configure_logging` writes one JSON object per line to stderr. A filter masks e-mail
  addresses and phone numbers in every message unless ``log_personal_data`` is on.
- :class:`HttpServer` serves ``/metrics`` (Prometheus text format from the service's own
  registry), ``/healthz`` (the process loop is alive), ``/readyz`` (every readiness check passes,
  e.g. Kafka and PostgreSQL reachable) and any extra routes a service adds (the extractor's Wix
  webhook receiver), on one port, from daemon threads.
- :class:`ServiceRuntime` ties it together: it installs SIGTERM/SIGINT handlers that set
  ``stopping``; the service loop checks it between batches, finishes the batch, flushes, commits
  and returns; ``run`` then stops the HTTP server. A watchdog exits the process hard if the drain
  takes longer than ``shutdown_timeout_seconds`` (Kubernetes' grace period is longer).

Imports: standard library and prometheus_client only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("tether.runtime")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 8-15 digits, optionally "+"/"00"-prefixed, single spaces allowed ("+47 912 34 567"); dates and
# short ids do not match. Long numeric ids may be masked too: safe side.
_PHONE = re.compile(r"(?<![\w.:/-])(?:\+|00)?\d(?: ?\d){7,14}(?![\w.:/-])")


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses and phone-like numbers with placeholders."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, mask: bool) -> None:
        super().__init__()
        self.service = service
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": message,
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return mask_personal_data(line) if self.mask else line


def configure_logging(service: str, level: str = "INFO", personal_data: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, mask=not personal_data))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO and would log broker addresses on every reconnect.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


ReadinessCheck = Callable[[], bool]
Route = Callable[[bytes, dict[str, str]], tuple[int, str, bytes]]
"""A POST route: (body, lower-cased headers) -> (status, content type, body)."""
QueryRoute = Callable[[dict[str, str]], tuple[int, str, bytes]]
"""A GET route: the query parameters (last value of each) -> (status, content type, body)."""


class HttpServer:
    """The service's one HTTP port: metrics, health, readiness and extra routes."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.checks: dict[str, ReadinessCheck] = {}
        self.routes: dict[tuple[str, str], Route] = {}
        self.get_routes: dict[str, QueryRoute] = {}
        self.alive: Callable[[], bool] = lambda: True
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="http")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def add_route(self, method: str, path: str, route: Route) -> None:
        self.routes[(method.upper(), path)] = route

    def add_get(self, path: str, route: QueryRoute) -> None:
        """Serve ``GET path?...``: ``route`` gets the query parameters."""
        self.get_routes[path] = route

    def readiness(self) -> dict[str, bool]:
        results = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(check())
            except Exception:  # a failing probe means "not ready", never a crash
                results[name] = False
        return results

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # access logs would flood; metrics count requests instead

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = parts.path
                if method == "GET" and path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
                elif method == "GET" and path == "/healthz":
                    ok = server.alive()
                    self._send(
                        200 if ok else 503, "application/json", json.dumps({"alive": ok}).encode()
                    )
                elif method == "GET" and path == "/readyz":
                    checks = server.readiness()
                    ok = all(checks.values())
                    body = json.dumps({"ready": ok, "checks": checks}).encode()
                    self._send(200 if ok else 503, "application/json", body)
                elif method == "GET" and path in server.get_routes:
                    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                    self._answer(method, path, lambda: server.get_routes[path](params))
                elif (method, path) in server.routes:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    self._answer(method, path, lambda: server.routes[(method, path)](body, headers))
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

            def _answer(
                self, method: str, path: str, route: Callable[[], tuple[int, str, bytes]]
            ) -> None:
                try:
                    status, content_type, payload = route()
                except Exception:
                    log.exception("route %s %s failed", method, path)
                    status, content_type, payload = 500, "text/plain", b"internal error"
                self._send(status, content_type, payload)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler


def tcp_reachable(addresses: str, timeout: float = 1.0) -> bool:
    """True when at least one ``host:port`` of a comma-separated list accepts a TCP connection."""
    for address in addresses.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


class CachedCheck:
    """Run a (possibly slow) readiness probe at most every ``interval`` seconds."""

    def __init__(self, probe: ReadinessCheck, interval: float = 2.0) -> None:
        self.probe = probe
        self.interval = interval
        self._value = False
        self._at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._at >= self.interval:
                try:
                    self._value = bool(self.probe())
                except Exception:
                    self._value = False
                self._at = time.monotonic()
            return self._value


class ServiceRuntime:
    """Signals, HTTP port and graceful stop for one service process."""

    def __init__(
        self,
        name: str,
        registry: CollectorRegistry,
        host: str = "0.0.0.0",
        port: int = 9100,
        shutdown_timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.registry = registry
        self.stopping = threading.Event()
        self.shutdown_timeout = shutdown_timeout
        self.http = HttpServer(host, port, registry)
        self._last_beat = time.monotonic()
        self.http.alive = self._alive

    def heartbeat(self) -> None:
        """Called by the service loop once per iteration; /healthz fails if it stops beating."""
        self._last_beat = time.monotonic()

    def _alive(self) -> bool:
        return time.monotonic() - self._last_beat < 120.0

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: Any) -> None:
            if self.stopping.is_set():
                return
            log.info("received %s: draining", signal.Signals(signum).name)
            self.stopping.set()
            watchdog = threading.Timer(self.shutdown_timeout, self._force_exit)
            watchdog.daemon = True
            watchdog.start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _force_exit(self) -> None:
        log.error("drain took longer than %.0fs: exiting hard", self.shutdown_timeout)
        os._exit(1)

    def run(self, loop: Callable[[ServiceRuntime], None]) -> int:
        """Start the HTTP port, run ``loop(self)`` until it returns, stop; returns the exit code."""
        self.http.start()
        log.info("%s started", self.name, extra={"fields": {"http_port": self.http.port}})
        try:
            loop(self)
        finally:
            self.http.stop()
        log.info("%s stopped", self.name)
        return 0
