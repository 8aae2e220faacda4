"""A service process on the shared runtime: metrics, health, readiness, graceful SIGTERM."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.core.kafka import make_admin
from services.core.public_http import PublicLimits, PublicServer
from services.core.runtime import JsonFormatter, ServiceRuntime, mask_personal_data
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision
from tests.support.tcpproxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


def _wait_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            time.sleep(0.05)
            continue
        entry = json.loads(line)
        if "http_port" in entry:
            return int(entry["http_port"])
    raise AssertionError("service did not report its port")


def _eventually(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_service_serves_health_and_metrics_tracks_kafka_and_stops_on_sigterm(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    host, port = kafka_bootstrap.split(":")
    proxy = TcpProxy(host, int(port)).start()
    settings = TetherSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    admin = make_admin(settings)
    layout = TopicLayout(prefix=topic_prefix, partitions=1)
    provision(admin, layout)
    admin.close()
    env = {
        **os.environ,
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": proxy.address,
        "TETHER_TOPIC_PREFIX": topic_prefix,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.probe_service", layout.outcomes],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{_wait_port(proc)}"
        metrics = httpx.get(f"{base}/metrics").text
        version = importlib.metadata.version("tether")
        assert f'tether_service_info{{service="probe",version="{version}"}} 1.0' in metrics
        # The process, platform and garbage-collector collectors are on the service's registry.
        for family in (
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "python_info",
            "python_gc_objects_collected_total",
        ):
            assert f"\n{family}" in metrics, family
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert _eventually(lambda: httpx.get(f"{base}/readyz").status_code == 200)

        proxy.stop()  # Kafka goes away
        assert _eventually(lambda: httpx.get(f"{base}/readyz").status_code == 503)
        body = httpx.get(f"{base}/readyz").json()
        assert body == {"ready": False, "checks": {"kafka": False}}

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=25)
        assert code == 0
        assert time.monotonic() - started < 20
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.stop()


def test_logs_are_json_and_mask_personal_data() -> None:
    formatter = JsonFormatter("svc", mask=True)
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "matched %s and %s",
        ("Ola.Nordmann@Example.no", "+47 912 34 567"),
        None,
    )
    entry = json.loads(formatter.format(record))
    assert entry["msg"] == "matched <email> and <phone>"
    assert entry["service"] == "svc" and entry["level"] == "info"
    assert mask_personal_data("id 12345 at 2026-11-27") == "id 12345 at 2026-11-27"


class _Shown:
    def __str__(self) -> str:
        return "owner kari@example.no"


def test_personal_data_in_fields_and_exceptions_is_masked_and_the_line_stays_json() -> None:
    formatter = JsonFormatter("svc", mask=True)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "outcome %s", ("FAILED",), None)
    try:
        raise ValueError("refused per@example.no")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.fields = {
        "command_id": "5c1e6a3e-5f2b-4c8e-9d7a-000000000001",
        "email": "Ola.Nordmann@Example.no",
        "phone": "+47 912 34 567",
        "msisdn": 4791234567,
        "attempts": 3,
        "nested": {"kari@example.no": ["+4798765432", ("note", 4798765432)]},
        "shown": _Shown(),
        "retry": True,
    }
    line = formatter.format(record)
    entry = json.loads(line)  # a masked number is a string: the line is still JSON
    assert "example" not in line.lower() and "912 34" not in line and "98765432" not in line
    assert entry["email"] == "<email>" and entry["phone"] == "<phone>"
    assert entry["msisdn"] == "<phone>"
    assert entry["nested"] == {"<email>": ["<phone>", ["note", "<phone>"]]}
    assert entry["shown"] == "owner <email>"
    assert "refused <email>" in entry["exc"]
    assert entry["command_id"] == "5c1e6a3e-5f2b-4c8e-9d7a-000000000001"
    assert (entry["msg"], entry["attempts"], entry["retry"]) == ("outcome FAILED", 3, True)
    assert json.loads(JsonFormatter("svc", mask=False).format(record))["msisdn"] == 4791234567


def test_public_routes_get_their_query_or_body_and_a_failing_route_answers_500() -> None:
    http = PublicServer("127.0.0.1", 0)

    def echo(params: dict[str, str]) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(params, sort_keys=True).encode()

    def broken(_params: dict[str, str]) -> tuple[int, str, bytes]:
        raise RuntimeError("bug")

    http.add_get("/echo", echo)
    http.add_get("/broken", broken)
    http.add_route("POST", "/echo", lambda body, headers: (201, "text/plain", body))
    with pytest.raises(ConnectionRefusedError):  # bound, not listening: nothing waits unserved
        socket.create_connection(("127.0.0.1", http.port), timeout=2)
    http.start()
    base = f"http://127.0.0.1:{http.port}"
    try:
        got = httpx.get(f"{base}/echo?system=wix&id=1&id=2")
        assert got.status_code == 200 and got.json() == {"id": "2", "system": "wix"}
        assert httpx.get(f"{base}/broken").status_code == 500
        posted = httpx.post(f"{base}/echo", content=b"hello")
        assert (posted.status_code, posted.content) == (201, b"hello")
        assert httpx.get(f"{base}/nothing?x=1").status_code == 404
        # The operations paths are not public.
        assert httpx.get(f"{base}/metrics").status_code == 404
        assert httpx.get(f"{base}/healthz").status_code == 404
        assert httpx.put(f"{base}/echo", content=b"x").status_code == 405
    finally:
        http.stop()


def test_public_limits_body_cap_request_timeout_and_header_size() -> None:
    limits = PublicLimits(max_body_bytes=1024, request_timeout=1.0, max_header_bytes=4096)
    http = PublicServer("127.0.0.1", 0, limits)
    release = threading.Event()

    def slow(_body: bytes, _headers: dict[str, str]) -> tuple[int, str, bytes]:
        release.wait(10)
        return 200, "text/plain", b"late"

    http.add_route("POST", "/echo", lambda body, headers: (200, "text/plain", body))
    http.add_route("POST", "/slow", slow)
    http.start()
    base = f"http://127.0.0.1:{http.port}"
    try:
        # The server-wide cap applies to a route without its own.
        assert httpx.post(f"{base}/echo", content=b"a" * 1024).status_code == 200
        refused = httpx.post(f"{base}/echo", content=b"a" * 1025)
        assert refused.status_code == 413 and refused.headers["connection"] == "close"
        # A route that does not answer within the request timeout: 503, the server stays up.
        late = httpx.post(f"{base}/slow", content=b"x", timeout=10)
        assert (late.status_code, late.json()) == (503, {"error": "timeout"})
        release.set()
        # Request line + headers over the limit: refused, never handed to a route (431 when
        # the head arrived whole, 400 from h11 while it is still being buffered).
        big = httpx.post(f"{base}/echo", content=b"x", headers={"X-Big": "b" * 8192})
        assert big.status_code == 431
        with socket.create_connection(("127.0.0.1", http.port), timeout=10) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000)
            assert sock.recv(1024).startswith(b"HTTP/1.1 400 ")  # the head never finished
        assert httpx.post(f"{base}/echo", content=b"ok").content == b"ok"
    finally:
        release.set()
        http.stop()


def test_a_service_with_public_routes_serves_them_apart_from_metrics_and_drains() -> None:
    registry = CollectorRegistry()
    public = PublicServer("127.0.0.1", 0)
    runtime = ServiceRuntime("svc", registry, "127.0.0.1", 0, public=public)
    in_route = threading.Event()

    def route(_body: bytes, _headers: dict[str, str]) -> tuple[int, str, bytes]:
        in_route.set()
        runtime.stopping.set()  # SIGTERM arrives while a request is in flight
        time.sleep(0.5)
        return 200, "text/plain", b"done"

    public.add_route("POST", "/hook", route)
    answers: list[httpx.Response] = []

    def loop(rt: ServiceRuntime) -> None:
        client = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"http://127.0.0.1:{public.port}/hook", content=b"x", timeout=10)
            )
        )
        client.start()
        rt.stopping.wait(10)
        client.join(10)

    assert runtime.run(loop) == 0
    assert in_route.is_set() and [a.status_code for a in answers] == [200]
    with pytest.raises(httpx.ConnectError):  # both ports are closed after the drain
        httpx.get(f"http://127.0.0.1:{public.port}/hook", timeout=2)
