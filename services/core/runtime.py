"""What every Tether service process shares: JSON logs, the HTTP port, readiness, SIGTERM.

- :func:`configure_logging` writes one JSON object per line to stderr. Unless
  ``log_personal_data`` is on, e-mail addresses and phone numbers are masked in every text the
  line carries — the message, each string of the ``fields`` (keys and values, nested ones too,
  numbers as they are written), the exception — before it is encoded (masking the text, not the
  encoded line: cheaper, and a masked number is still valid JSON); another
  (:class:`KafkaNoiseFilter`) drops a precise list of harmless kafka-python start-up lines.
- :class:`HttpServer` is the operations port (``http_port``): ``/metrics`` (Prometheus text format
  from the service's own registry), ``/healthz`` (the process loop is alive) and ``/readyz``
  (every readiness check passes, e.g. Kafka and PostgreSQL reachable), from daemon threads. Only
  Prometheus and the kubelet reach it.
- Public routes (the extractor's Wix webhook, the mapper's ``/explain``) are served by
  :class:`~services.core.public_http.PublicServer` (uvicorn + starlette, body cap, timeouts) on
  its own port (``public_port``); ``ServiceRuntime.public`` holds it when the service has one.
- :class:`ServiceRuntime` ties it together: it installs SIGTERM/SIGINT handlers that set
  ``stopping``; the service loop checks it between batches, finishes the batch, flushes, commits
  and returns; ``run`` then stops the public server (in-flight requests finish) and the HTTP
  server. A watchdog exits the process hard if the drain
  takes longer than ``shutdown_timeout_seconds`` (Kubernetes' grace period is longer).

Imports: standard library, prometheus_client and ``services.core.public_http``.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.core.public_http import PublicServer

log = logging.getLogger("tether.runtime")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 8-15 digits, optionally "+"/"00"-prefixed, single spaces allowed ("+47 912 34 567"); dates and
# short ids do not match. Long numeric ids may be masked too: safe side.
_PHONE = re.compile(r"(?<![\w.:/-])(?:\+|00)?\d(?: ?\d){7,14}(?![\w.:/-])")


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses and phone-like numbers with placeholders."""
    if "@" in text:  # every e-mail has one; the e-mail pattern is the costly one to run
        text = _EMAIL.sub("<email>", text)
    return _PHONE.sub("<phone>", text)


def mask_fields(value: object) -> object:
    """``value`` (a log line's fields) with ``mask_personal_data`` applied to every text it holds
    as the JSON encoder would write it: strings, dict keys, nested dicts/lists/tuples, numbers
    (one that masks becomes the masked string) and anything else as its ``str()``."""
    if isinstance(value, str):
        return mask_personal_data(value)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, (int, float)):
        text = int.__repr__(value) if isinstance(value, int) else float.__repr__(value)
        masked = mask_personal_data(text)
        return value if masked == text else masked
    if isinstance(value, dict):
        return {_mask_key(k): mask_fields(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_fields(v) for v in value]
    return mask_personal_data(str(value))  # what json.dumps(default=str) writes


def _mask_key(key: object) -> object:
    """A dict key masked like a value; keys JSON cannot take are left for the encoder to refuse."""
    if isinstance(key, (str, int, float)) and not isinstance(key, bool):
        return mask_fields(key)
    return key


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, mask: bool) -> None:
        super().__init__()
        self.service = service
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        mask = self.mask
        message = record.getMessage()
        # ts, level, service and logger are the formatter's own texts: nothing to mask in them.
        entry: dict[Any, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": mask_personal_data(message) if mask else message,
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict) and mask:
            entry.update({_mask_key(k): mask_fields(v) for k, v in extra.items()})
        elif isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            text = self.formatException(record.exc_info)
            entry["exc"] = mask_personal_data(text) if mask else text
        return json.dumps(entry, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class _Harmless:
    logger: str  # the record's logger or a parent of it
    message: re.Pattern[str]
    startup_only: bool


# kafka-python lines that alarm operators at every start-up and mean nothing (kafka-python 3.0.x).
# A precise list: each pattern matches one message of one logger, anchored. Anything else from
# kafka-python passes — connection failures, coordinator errors, a topic missing after start-up.
KAFKA_HARMLESS = (
    # The client's own event-loop timing diagnostic (its threshold is 0.1 s; a busy host trips it).
    _Harmless(
        "kafka.net.selector",
        re.compile(
            r"Task .* ran for [\d.]+s \(>[\d.]+s threshold\)\. It is blocking the event loop"
        ),
        startup_only=False,
    ),
    # Group-less reads (the extractor's known-set rebuild, the verifier) commit nothing by design.
    _Harmless(
        "kafka.coordinator.consumer",
        re.compile(r"group_id is None: disabling auto-commit\.$"),
        startup_only=False,
    ),
    # Topics being created or propagated while the service starts.
    _Harmless(
        "kafka.coordinator.assignors",
        re.compile(r"No partition metadata for topic \S+$"),
        startup_only=True,
    ),
    _Harmless(
        "kafka.cluster",
        re.compile(r"Topic \S+ not found in cluster metadata$"),
        startup_only=True,
    ),
)


class KafkaNoiseFilter(logging.Filter):
    """Drops the ``KAFKA_HARMLESS`` lines (the start-up-only ones for ``startup_seconds``)."""

    def __init__(
        self, startup_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._clock = clock
        self._until = clock() + startup_seconds

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        for rule in KAFKA_HARMLESS:
            if record.name != rule.logger and not record.name.startswith(rule.logger + "."):
                continue
            if rule.startup_only and self._clock() >= self._until:
                continue
            if rule.message.match(record.getMessage()):
                return False
        return True


def configure_logging(service: str, level: str = "INFO", personal_data: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, mask=not personal_data))
    # On the handler: a logger's filters do not see its children's records.
    handler.addFilter(KafkaNoiseFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO and would log broker addresses on every reconnect.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


ReadinessCheck = Callable[[], bool]


class HttpServer:
    """The service's operations port: ``/metrics``, ``/healthz`` and ``/readyz`` only.

    Public routes (the Wix webhook, ``/explain``) are on :class:`~services.core.public_http.
    PublicServer`'s own port, so Prometheus and the kubelet reach this one and the ingress the
    other (deploy/k8s/base/networkpolicies.yaml). Requests carry no body: none is read.
    """

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.checks: dict[str, ReadinessCheck] = {}
        self.alive: Callable[[], bool] = lambda: True
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="http")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

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
            # Head and body are separate writes: with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms a request on a kept-alive connection).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # access logs would flood; metrics count requests instead

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
                elif path == "/healthz":
                    ok = server.alive()
                    self._send(
                        200 if ok else 503, "application/json", json.dumps({"alive": ok}).encode()
                    )
                elif path == "/readyz":
                    checks = server.readiness()
                    ok = all(checks.values())
                    body = json.dumps({"ready": ok, "checks": checks}).encode()
                    self._send(200 if ok else 503, "application/json", body)
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

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
        public: PublicServer | None = None,
    ) -> None:
        self.name = name
        self.registry = registry
        self.stopping = threading.Event()
        self.shutdown_timeout = shutdown_timeout
        self.http = HttpServer(host, port, registry)
        # The public routes' port (services with public routes only: extractor, mapper).
        self.public = public
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
        fields: dict[str, Any] = {"http_port": self.http.port}
        public = self.public if self.public is not None and self.public.serving else None
        if public is not None:
            public.start()
            fields["public_port"] = public.port
        log.info("%s started", self.name, extra={"fields": fields})
        try:
            loop(self)
        finally:
            # The loop has drained: public requests still in flight finish (uvicorn's graceful
            # shutdown, bounded), then the operations port goes.
            if public is not None:
                public.stop()
            self.http.stop()
        log.info("%s stopped", self.name)
        return 0
