"""The installable package: the wheel, installed the way the image installs it, outside the repo.

The Dockerfile installs the dependencies from ``requirements.lock`` with ``--require-hashes`` and
then the package with ``--no-deps``; no Docker engine runs on these machines, so this test does
the same two steps in a fresh virtualenv (which also proves the lock file is complete and its
hashes right), then runs the installed ``tether`` from a directory outside the repository: its
version, a dry-run topic provisioning, and one service start-up (the mapper, which loads every
schema and migrates PostgreSQL) against the local infrastructure until ``/readyz`` says ready.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        found = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if found:
            pins[found[1].lower().replace("_", "-")] = found[2]
    return pins


def test_the_lock_file_pins_exactly_what_pyproject_pins_and_hashes_everything() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"])
    text = LOCK.read_text()
    locked = _pins(text.splitlines())
    mismatched = {n: (v, locked.get(n)) for n, v in declared.items() if locked.get(n) != v}
    assert not mismatched, f"run `make lock`: pyproject vs lock {mismatched}"
    blocks = re.findall(r"^(\S+)==\S+((?: \\\n +--hash=sha256:[0-9a-f]{64})*)", text, re.M)
    assert len(blocks) == len(locked)
    assert [name for name, hashes in blocks if not hashes] == []


def test_the_dockerfile_installs_from_the_lock_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text().split()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the repository with the lock file and the wheel installed."""
    work = tmp_path_factory.mktemp("package")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (wheel,) = (work / "dist").glob("tether-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "services/core/schemas/tether.ChangeEvent.avsc" in names
    assert any(n.startswith("services/core/schemas/released/v1/golden/") for n in names)
    assert "services/mapper/dataflows/default.json" in names
    venv = work / "venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--require-hashes", "-r", str(LOCK)], check=True, timeout=600)
    subprocess.run([*pip, "install", "--no-deps", str(wheel)], check=True, timeout=120)
    return venv


def _run(venv: Path, *args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "tether"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.integration
def test_the_installed_wheel_runs_a_service_from_outside_the_repository(
    installed: Path,
    tmp_path: Path,
    kafka_bootstrap: str,
    pg_dsn: str,
    topic_prefix: str,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": "/usr/bin:/bin",
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TETHER_POSTGRES_DSN": pg_dsn,
        "TETHER_TOPIC_PREFIX": topic_prefix,
        "TETHER_HTTP_PORT": str(port),
        "TETHER_PUBLIC_PORT": "0",
        "TETHER_SECRETS_DIR": str(tmp_path / "no-secrets"),
    }
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(installed, "--version", env=env, cwd=tmp_path).strip() == f"tether {version}"
    planned = _run(installed, "topics", "provision", "--dry-run", env=env, cwd=tmp_path)
    assert any(f'"{topic_prefix}.changes.' in line for line in planned.splitlines())
    _run(installed, "topics", "provision", env=env, cwd=tmp_path)
    mapper = subprocess.Popen(
        [str(installed / "bin" / "tether"), "mapper"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        ready = False
        while time.monotonic() < deadline and mapper.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.5)
        assert ready, f"mapper never became ready (exit {mapper.poll()})"
    finally:
        mapper.send_signal(signal.SIGTERM)
        try:
            _, stderr = mapper.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            mapper.kill()
            _, stderr = mapper.communicate()
    assert mapper.returncode == 0, stderr[-2000:]
