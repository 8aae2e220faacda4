"""Run the whole Tether stack on this machine as real processes: simulators and services.

Used by ``tether demo``, the end-to-end tests and the end-to-end benchmark. Every component is a
separate OS process started from the ``tether`` CLI with ``TETHER_*`` settings in its
environment — exactly how Kubernetes runs them — so a test can ``kill -9`` one and restart it.
Kafka and PostgreSQL are expected to run already (``scripts/infra.py``); the stack gets its own
topic prefix and its own database, so several runs never see each other's data.

Imports: standard library, httpx, psycopg and the core/connectors modules (never a service's
internals: the stack talks to services only through their environment and HTTP ports).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
from psycopg import sql

from services.connectors.poweroffice.simulator import (
    DEFAULT_APPLICATION_KEY,
    DEFAULT_CLIENT_KEY,
    DEFAULT_SUBSCRIPTION_KEY,
)
from services.connectors.wix.simulator import DEFAULT_SITE_ID

SERVICES = ("extractor", "mapper", "loader")
WIX_API_KEY = "sim-wix-api-key"
WIX_SITE_ID = DEFAULT_SITE_ID


_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 20_000


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (outgoing connections' local ports)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port for a service of the stack to listen on, free now.

    Chosen *below* the ephemeral range: a port the kernel handed out for ``bind(0)`` is also one
    it hands to outgoing connections, and between choosing a port and the service binding it
    (seconds: simulators start, data is seeded, each over many connections) such a connection
    took it once ("Address already in use", a service exiting at start). Ports handed out by
    this process are not handed out again."""
    top = _ephemeral_start()
    for _ in range(200):
        port = random.randrange(_LOWEST_PORT, top) if top > _LOWEST_PORT + 100 else 0
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(sock.getsockname()[1])
        _HANDED_OUT.add(chosen)
        return chosen
    raise RuntimeError("no free port below the ephemeral range")


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """``kill -9``: no drain, no flush, no commit."""
        if self.popen is not None and self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.close_log()

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout: float = 25.0) -> int | None:
        """SIGTERM and wait for the graceful drain; SIGKILL if it does not come."""
        if self.popen is None:
            return None
        if self.running:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self.close_log()
        return self.popen.returncode

    def wait_http(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{path}"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url}; see {self.log_path}")


@dataclass
class Stack:
    """One isolated run: its own topics, database, simulator ports and service ports."""

    kafka_bootstrap: str
    postgres_dsn: str
    run_dir: Path
    lift_limits: bool = True
    webhooks: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # More command-line options per simulator ("poweroffice"/"wix"), e.g. realism options.
    simulator_args: dict[str, list[str]] = field(default_factory=dict)
    # Tenants the simulators serve beside "default" (``--tenants N``; ``tenant_simulators``
    # gives their credentials and seeds them). 0: the single-tenant simulators.
    simulator_tenants: int = 0
    topic_prefix: str = field(default_factory=lambda: f"demo{uuid.uuid4().hex[:8]}")
    processes: dict[str, Process] = field(default_factory=dict)
    database_dsn: str = ""
    _scrape_client: httpx.Client | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {
            name: free_port() for name in ("poweroffice", "wix", *SERVICES, "verify", "console")
        }
        # The public routes' ports (webhook, /explain, the console's API and pages); self.ports
        # are the operations ports.
        self.public_ports = {name: free_port() for name in ("extractor", "mapper", "console")}
        self.wix_public_key = self.run_dir / "wix-webhook-public-key.pem"

    # -- URLs -------------------------------------------------------------------------------
    @property
    def poweroffice_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['poweroffice']}"

    @property
    def wix_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['wix']}"

    def service_url(self, name: str) -> str:
        """The operations port: /metrics, /healthz, /readyz."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def public_url(self, name: str) -> str:
        """The public port: the extractor's Wix webhook, the mapper's /explain, the console."""
        return f"http://127.0.0.1:{self.public_ports[name]}"

    @property
    def console_url(self) -> str:
        return self.public_url("console")

    # -- set-up -----------------------------------------------------------------------------
    def create_database(self) -> str:
        name = f"{self.topic_prefix}_mapper"
        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        base, _, _ = self.postgres_dsn.rpartition("/")
        self.database_dsn = f"{base}/{name}"
        return self.database_dsn

    def drop_database(self) -> None:
        if not self.database_dsn:
            return
        name = self.database_dsn.rpartition("/")[2]
        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def service_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env.update(
            {
                "TETHER_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                "TETHER_POSTGRES_DSN": self.database_dsn,
                "TETHER_TOPIC_PREFIX": self.topic_prefix,
                "TETHER_TOPIC_PARTITIONS": "3",
                "TETHER_HTTP_HOST": "127.0.0.1",
                "TETHER_HTTP_PORT": str(self.ports[name]),
                "TETHER_SECRETS_DIR": str(self.run_dir / "no-secrets"),
                "TETHER_POWEROFFICE_BASE_URL": f"{self.poweroffice_url}/v2",
                "TETHER_POWEROFFICE_TOKEN_URL": f"{self.poweroffice_url}/OAuth/Token",
                "TETHER_POWEROFFICE_APP_KEY": DEFAULT_APPLICATION_KEY,
                "TETHER_POWEROFFICE_CLIENT_KEY": DEFAULT_CLIENT_KEY,
                "TETHER_POWEROFFICE_SUBSCRIPTION_KEY": DEFAULT_SUBSCRIPTION_KEY,
                "TETHER_WIX_BASE_URL": self.wix_url,
                "TETHER_WIX_API_KEY": WIX_API_KEY,
                "TETHER_WIX_SITE_ID": WIX_SITE_ID,
            }
        )
        if name in self.public_ports:
            env["TETHER_PUBLIC_PORT"] = str(self.public_ports[name])
        if self.lift_limits:
            env["TETHER_POWEROFFICE_REQUESTS_PER_SECOND"] = "0"
            env["TETHER_WIX_REQUESTS_PER_MINUTE"] = "0"
        if name == "extractor":
            # A demo wants edits to arrive within seconds; production polls less often.
            env["TETHER_POWEROFFICE_POLL_INTERVAL_SECONDS"] = "1"
            env["TETHER_WIX_POLL_INTERVAL_SECONDS"] = "5" if self.webhooks else "1"
            if self.webhooks:
                env["TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE"] = str(self.wix_public_key)
        env.update(self.extra_env)
        return env

    def _tether(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "services.cli", *args]

    def start_simulators(self) -> None:
        po_args = ["simulate", "poweroffice", "--port", str(self.ports["poweroffice"])]
        wix_args = [
            "simulate",
            "wix",
            "--port",
            str(self.ports["wix"]),
            "--api-key",
            WIX_API_KEY,
            "--site-id",
            WIX_SITE_ID,
            "--public-key-out",
            str(self.wix_public_key),
        ]
        if self.lift_limits:
            po_args.append("--lift-limits")
            wix_args.append("--lift-limits")
        if self.webhooks:
            wix_args += ["--webhook-url", f"{self.public_url('extractor')}/webhooks/wix"]
        if self.simulator_tenants:
            po_args += ["--tenants", str(self.simulator_tenants)]
            wix_args += ["--tenants", str(self.simulator_tenants)]
        po_args += self.simulator_args.get("poweroffice", [])
        wix_args += self.simulator_args.get("wix", [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        for name, args in (("poweroffice", po_args), ("wix", wix_args)):
            process = Process(
                name, self._tether(*args), env, self.run_dir / f"{name}.log", self.ports[name]
            )
            self.processes[name] = process
            process.start()
        self.processes["poweroffice"].wait_http("/_admin/health")
        self.processes["wix"].wait_http("/_admin/counters")

    def provision_topics(self) -> None:
        subprocess.run(
            self._tether("topics", "provision"),
            env=self.service_env("mapper"),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start_service(self, name: str) -> Process:
        process = Process(
            name,
            self._tether(name),
            self.service_env(name),
            self.run_dir / f"{name}.log",
            self.ports[name],
        )
        self.processes[name] = process
        process.start()
        return process

    def start_services(self, names: tuple[str, ...] = SERVICES) -> None:
        for name in names:
            self.start_service(name)
        for name in names:
            self.processes[name].wait_http("/readyz", timeout=90)

    def start_verify(self, interval_seconds: float = 5.0) -> Process:
        """The verifier as a service (``tether verify --loop``), a cycle every few seconds."""
        env = self.service_env("verify")
        env["TETHER_VERIFY_INTERVAL_SECONDS"] = str(interval_seconds)
        process = Process(
            "verify",
            self._tether("verify", "--loop"),
            env,
            self.run_dir / "verify.log",
            self.ports["verify"],
        )
        self.processes["verify"] = process
        process.start()
        process.wait_http("/readyz", timeout=90)
        return process

    def start_console(self, callers: dict[str, str] | None = None) -> dict[str, str]:
        """The operator console (``tether console``) on this stack's database and topics.

        ``callers`` maps a caller's name to its role (``operator`` or ``read``; default one
        ``operator``). Each gets a fresh random token, returned as ``{name: token}`` and never
        written anywhere: the tokens file (``TETHER_CONSOLE_TOKENS_FILE``, mode 0600) holds only
        their SHA-256 digests (``name:role:sha256:<hex>``)."""
        callers = callers or {"operator": "operator"}
        tokens = {name: secrets.token_urlsafe(24) for name in callers}
        tokens_file = self.run_dir / "console-tokens"
        tokens_file.touch(mode=0o600)
        tokens_file.chmod(0o600)
        tokens_file.write_text(
            "".join(
                f"{name}:{role}:sha256:{hashlib.sha256(tokens[name].encode()).hexdigest()}\n"
                for name, role in callers.items()
            )
        )
        env = self.service_env("console")
        env["TETHER_CONSOLE_TOKENS_FILE"] = str(tokens_file)
        process = Process(
            "console",
            self._tether("console"),
            env,
            self.run_dir / "console.log",
            self.ports["console"],
        )
        self.processes["console"] = process
        process.start()
        process.wait_http("/readyz", timeout=90)
        return tokens

    def restart(self, name: str) -> Process:
        old = self.processes.get(name)
        if old is not None and old.running:
            old.stop()
        process = self.start_service(name)
        process.wait_http("/readyz", timeout=90)
        return process

    def metrics_text(self, name: str) -> str:
        # One kept-alive client: ``httpx.get`` builds a client, and so an SSL context (CA
        # certificates loaded), per call — a progress loop scraping three services twice a second
        # spent ~20 % of a core on it, taken from the pipeline it measures (bench/e2e.py).
        try:
            return self._scraper().get(f"{self.service_url(name)}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""

    def _scraper(self) -> httpx.Client:
        if self._scrape_client is None:
            self._scrape_client = httpx.Client()
        return self._scrape_client

    def stop(self) -> dict[str, Any]:
        """Stop services first (they drain), then simulators; returns exit codes."""
        if self._scrape_client is not None:
            self._scrape_client.close()
            self._scrape_client = None
        codes: dict[str, Any] = {}
        simulators = ("poweroffice", "wix")
        # Services first, whatever their names (extra replicas: extractor-2 ...), then the APIs.
        first = [n for n in ("console", "verify", *SERVICES) if n in self.processes]
        others = [n for n in self.processes if n not in (*first, *simulators)]
        for name in (*first, *others, *simulators):
            process = self.processes.get(name)
            if process is not None:
                codes[name] = process.stop()
        return codes
