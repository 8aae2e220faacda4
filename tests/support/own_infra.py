"""A private Kafka + PostgreSQL (``scripts/infra.py``) that a fault test may stop and start.

The shared infrastructure must never be restarted; a test that needs an outage starts its own on
free ports in a temporary ``TETHER_INFRA_DIR`` and uses ``kafka-stop``/``kafka-start``/
``postgres-stop``/``postgres-start`` on it (data kept), then ``down``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OwnInfra:
    env: dict[str, str]
    bootstrap: str = ""
    dsn: str = ""

    values: dict[str, str] | None = None

    @classmethod
    def up(cls, *, tls: bool = False, retried: bool = False) -> OwnInfra:
        """``tls``: also a SASL_SSL listener and PostgreSQL with TLS (``TETHER_INFRA_TLS``)."""
        env = {
            **os.environ,
            "TETHER_INFRA_DIR": tempfile.mkdtemp(prefix="tether-own-infra-", dir="/tmp"),
            "TETHER_KAFKA_PORT": str(_free_port()),
            "TETHER_KAFKA_CONTROLLER_PORT": str(_free_port()),
            "TETHER_KAFKA_SECURE_PORT": str(_free_port()),
            "TETHER_POSTGRES_PORT": str(_free_port()),
            "TETHER_INFRA_TLS": "1" if tls else "",
        }
        infra = cls(env)
        try:
            out = infra.run("up")
        except RuntimeError:
            infra.run("down")  # whatever half started
            if retried:
                raise
            # A port picked free a moment ago may have been taken meanwhile: once more, anew.
            return cls.up(tls=tls, retried=True)
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        infra.values = values
        infra.bootstrap = values["TETHER_KAFKA_BOOTSTRAP_SERVERS"]
        infra.dsn = values["TETHER_POSTGRES_DSN"]
        return infra

    def run(self, command: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "infra.py"), command],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:  # say why (a port taken meanwhile, a slow start, ...)
            raise RuntimeError(f"infra.py {command} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def down(self) -> None:
        self.run("down")
