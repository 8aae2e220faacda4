"""First run on a fresh machine: ``scripts/infra.py up`` and ``scripts/with-infra.sh`` (issue 10).

Two traps made both README commands fail on a machine without the Kafka jars cached:
- Maven writes ANSI reset codes to standard output even with ``-q -B``, so the settings that
  ``infra.py up`` printed were no longer ``KEY=value`` lines and ``with-infra.sh``'s ``eval`` ran
  them as a command;
- a state directory under a private parent (``mktemp -d`` makes mode 700) cannot be entered by the
  ``postgres`` user that ``initdb`` runs as.

These tests resolve Kafka into an EMPTY cache through a stand-in ``mvn`` that behaves like the
real one on standard output (escape codes, ``[INFO]`` lines) and copies the jars the session's
real cache already holds, and put the state directory under a mode-700 parent. The second test
starts a second, real Kafka and PostgreSQL on free ports and stops them again.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "scripts" / "infra.py"

STAND_IN_MVN = r"""#!/usr/bin/env bash
# Behaves like Maven on standard output: escape codes even in quiet batch mode, then copies the
# jars of the real cache into -DoutputDirectory.
printf '\033[0m\033[0m'
echo '[INFO] Scanning for projects...'
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
mkdir -p "$out"
cp "$REAL_KAFKA_LIBS"/*.jar "$out"/
printf '\033[0m'
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def real_kafka_libs(infra_env: dict[str, str]) -> Path:
    """The jars of the session's real cache (``infra_env`` makes sure they were resolved)."""
    out = subprocess.run(
        [sys.executable, str(INFRA), "kafka-libs"], check=True, capture_output=True, text=True
    ).stdout
    libs = Path(out.strip())
    assert libs.is_dir(), out
    return libs


@pytest.fixture
def first_run_env(tmp_path: Path, real_kafka_libs: Path) -> dict[str, str]:
    """An empty cache, a stand-in ``mvn`` first on PATH, state under a mode-700 parent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(STAND_IN_MVN)
    mvn.chmod(0o755)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # whatever the umask said
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "REAL_KAFKA_LIBS": str(real_kafka_libs),
        "TETHER_CACHE_DIR": str(tmp_path / "empty-cache"),
        "TETHER_INFRA_DIR": str(private / "infra"),
        "TETHER_KAFKA_PORT": str(_free_port()),
        "TETHER_KAFKA_CONTROLLER_PORT": str(_free_port()),
        "TETHER_POSTGRES_PORT": str(_free_port()),
    }
    for key in ("TETHER_KAFKA_BOOTSTRAP_SERVERS", "TETHER_POSTGRES_DSN", "TETHER_KEEP_INFRA"):
        env.pop(key, None)
    return env


def test_resolving_kafka_keeps_standard_output_to_the_settings(
    first_run_env: dict[str, str],
) -> None:
    result = subprocess.run(
        [sys.executable, str(INFRA), "kafka-libs"],
        env=first_run_env,
        check=True,
        capture_output=True,
        text=True,
    )
    cache = Path(first_run_env["TETHER_CACHE_DIR"])
    assert result.stdout.splitlines() == [str(cache / "kafka-2.13-3.9.1" / "libs")]
    assert "\x1b" not in result.stdout
    assert "[INFO] Scanning" in result.stderr  # the tool's output went to standard error


@pytest.mark.integration
def test_with_infra_starts_everything_from_nothing_under_a_private_parent(
    first_run_env: dict[str, str], tmp_path: Path
) -> None:
    private = tmp_path / "private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    probe = (
        "import os, psycopg\n"
        "from kafka import KafkaAdminClient\n"
        "with psycopg.connect(os.environ['TETHER_POSTGRES_DSN']) as conn:\n"
        "    print('postgres', conn.execute('select 1').fetchone()[0])\n"
        "admin = KafkaAdminClient(bootstrap_servers=os.environ['TETHER_KAFKA_BOOTSTRAP_SERVERS'])\n"
        "print('kafka topics', len(admin.list_topics()))\n"
        "admin.close()\n"
        "print('bootstrap', os.environ['TETHER_KAFKA_BOOTSTRAP_SERVERS'])\n"
    )
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "with-infra.sh"), sys.executable, "-c", probe],
        env=first_run_env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "postgres 1" in lines
    assert f"bootstrap 127.0.0.1:{first_run_env['TETHER_KAFKA_PORT']}" in lines
    assert "postgres user cannot enter" in result.stderr  # PostgreSQL's part was placed elsewhere
    # with-infra.sh started it, so it stopped it and removed its state again.
    assert not (private / "infra").exists()
    for port in ("TETHER_KAFKA_PORT", "TETHER_POSTGRES_PORT"):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(first_run_env[port]))) != 0
