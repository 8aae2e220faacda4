"""``tether console`` as a process: start-up, probes, metrics, the login page, a clean SIGTERM;
and its refusal to start with no way to authenticate callers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.console import support

pytestmark = pytest.mark.integration


def test_the_service_serves_probes_metrics_and_pages(pg_dsn: str, kafka_bootstrap: str) -> None:
    support.migrate(pg_dsn)
    env = {
        **os.environ,
        "TETHER_POSTGRES_DSN": pg_dsn,
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TETHER_CONSOLE_TOKENS": support.TOKENS,
        "TETHER_HTTP_PORT": "0",
        "TETHER_PUBLIC_PORT": "0",
        "TETHER_HTTP_HOST": "127.0.0.1",
        "TETHER_SECRETS_DIR": "/nonexistent",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "console"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    try:
        ports = None
        deadline = time.monotonic() + 60
        while ports is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("{") and json.loads(line).get("msg") == "console started":
                entry = json.loads(line)
                ports = (entry["http_port"], entry["public_port"])
        assert ports is not None, "".join(lines)
        ops = f"http://127.0.0.1:{ports[0]}"
        public = f"http://127.0.0.1:{ports[1]}"
        assert httpx.get(f"{ops}/healthz").json() == {"alive": True}
        ready = httpx.get(f"{ops}/readyz").json()
        assert ready["checks"] == {"postgres": True, "kafka": True}
        assert httpx.get(f"{public}/login").status_code == 200
        who = httpx.get(f"{public}/api/v1/whoami", headers=support.auth(support.OPERATOR_TOKEN))
        assert who.json()["name"] == "alice"
        assert httpx.get(f"{public}/api/v1/whoami").status_code == 401
        metrics = httpx.get(f"{ops}/metrics").text
        assert (
            'tether_console_requests_total{method="GET",route="/api/v1/whoami",status="200"}'
            in (metrics)
        )
        assert 'tether_console_auth_failures_total{reason="missing"} 1.0' in metrics
        assert httpx.get(f"{public}/metrics").status_code == 404  # not on the public port
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        rest = process.stderr.read()
        process.stderr.close()
    output = "".join(lines) + rest
    assert support.OPERATOR_TOKEN not in output and support.READER_TOKEN not in output


def test_the_service_refuses_to_start_without_credentials() -> None:
    env = {**os.environ, "TETHER_CONSOLE_TOKENS": "", "TETHER_SECRETS_DIR": "/nonexistent"}
    env.pop("TETHER_CONSOLE_TOKENS_FILE", None)
    env.pop("TETHER_CONSOLE_JWKS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "console"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no way to authenticate callers" in done.stderr
    bad = {**env, "TETHER_CONSOLE_TOKENS": "alice:operator:0123456789abcdefXYZ:extra,bob:boss:x"}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "console"],
        env=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "entry 2 (bob): role must be read or operator" in done.stderr
    assert "0123456789abcdef" not in done.stderr
