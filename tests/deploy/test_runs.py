"""What the manifests run, run here: the migrate Job's containers, the simulators' probes, the
compose file's services and the image's settings.

- the tether-migrate Job's two containers (``tether topics provision`` and the mapper's
  migrations) run as processes with the environment the demo overlay gives them — Kafka address
  and topic prefix pointed at the test's Kafka, the PostgreSQL DSN as a secret *file* in the
  secrets directory, exactly as Kubernetes mounts it — and leave every topic and the schema;
- the simulators run with the manifests' arguments and answer 200 on their probe paths;
- docker-compose.yml: every TETHER_* variable is a settings field of the service's command, the
  Prometheus config scrapes each service on its default port, Grafana's mounts exist;
- Dockerfile: the user the manifests run as, the schemas directory a settings field points at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from kafka import KafkaAdminClient

from services.core.settings import TetherSettings
from services.core.topics import TopicLayout

from .manifests import (
    ENV_PREFIX,
    NON_FIELD_VARIABLES,
    ROOT,
    SERVICES,
    containers,
    env_fields,
    environment,
    find,
    rendered,
    workloads,
)


@pytest.mark.integration
def test_the_migrate_job_provisions_every_topic_and_migrates_the_database(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, tmp_path: Path
) -> None:
    docs = rendered("demo")
    (job,) = [d for d in docs if d["kind"] == "Job"]  # tether-migrate-<release>
    spec = job["spec"]["template"]["spec"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "tether_postgres_dsn").write_text(pg_dsn)  # the Secret's key, as a file
    for container in containers(spec):
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update({k: v for k, v in environment(docs, container).items() if v is not None})
        assert env["TETHER_SECRETS_DIR"] == "/var/run/secrets/tether"
        env.update(
            TETHER_SECRETS_DIR=str(secrets),  # where this test mounted the Secret
            TETHER_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            TETHER_TOPIC_PREFIX=topic_prefix,
        )
        argv = container.get("command") or ["tether", *container["args"]]
        if argv[0] == "tether":
            argv = [sys.executable, "-m", "services.cli", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (container["name"], done.stdout, done.stderr)
    config = find(docs, "ConfigMap", "tether-common")["data"]
    layout = TopicLayout(prefix=topic_prefix, partitions=int(config["TETHER_TOPIC_PARTITIONS"]))
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert set(layout.all_topics()) <= set(admin.list_topics())
    finally:
        admin.close()
    with psycopg.connect(pg_dsn) as conn:
        versions = conn.execute("SELECT version FROM mapper_schema_migrations").fetchall()
        assert versions and conn.execute("SELECT count(*) FROM mapper_links").fetchone()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_simulators_run_with_the_manifests_arguments_and_answer_their_probes(
    tmp_path: Path,
) -> None:
    checked = 0
    for doc, spec in workloads(rendered("demo")):
        for container in containers(spec):
            args = list(container.get("args", []))
            if args[:1] != ["simulate"]:
                continue
            assert args[args.index("--port") + 1] == str(container["ports"][0]["containerPort"])
            assert args[args.index("--host") + 1] == "0.0.0.0"
            port = _free_port()
            args[args.index("--port") + 1] = str(port)
            args[args.index("--host") + 1] = "127.0.0.1"
            env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
            log = (tmp_path / f"{args[1]}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                for probe in ("readinessProbe", "livenessProbe"):
                    path = container[probe]["httpGet"]["path"]
                    deadline = time.monotonic() + 60
                    status = None
                    while status != 200 and time.monotonic() < deadline:
                        assert process.poll() is None, (tmp_path / f"{args[1]}.log").read_text()
                        try:
                            status = httpx.get(
                                f"http://127.0.0.1:{port}{path}", timeout=2
                            ).status_code
                        except httpx.HTTPError:
                            time.sleep(0.2)
                    assert status == 200, (doc["metadata"]["name"], path, status)
                    checked += 1
            finally:
                process.terminate()
                process.wait(timeout=15)
                log.close()
    assert checked == 4


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_sets_only_settings_fields_and_prometheus_scrapes_the_real_ports() -> None:
    services = _compose()["services"]
    commands = {"topics": TetherSettings, **SERVICES}
    for name, service in services.items():
        command = service.get("command", [])
        env = service.get("environment", {}) or {}
        tether_vars = {k for k in env if k.startswith(ENV_PREFIX)}
        if service.get("build") != "." or command[0] == "simulate":
            assert not tether_vars, name
            continue
        cls = commands[command[0]]
        unknown = tether_vars - set(env_fields(cls)) - NON_FIELD_VARIABLES
        assert not unknown, (name, unknown)
        cls(**{k[len(ENV_PREFIX) :].lower(): v for k, v in env.items()})
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus-compose.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]
    }
    for name, cls in SERVICES.items():
        assert targets[name] == [f"{name}:{cls.model_fields['http_port'].default}"]
        assert f"{cls.model_fields['http_port'].default}:" in services[name]["ports"][0]
    prometheus = services["prometheus"]
    assert prometheus["command"] == ["--config.file=/etc/prometheus/prometheus-compose.yml"]
    for volume in (*prometheus["volumes"], *services["grafana"]["volumes"]):
        assert (ROOT / volume.split(":")[0]).is_dir(), volume


def test_the_image_runs_as_the_manifests_user_and_builds_the_wheel_with_its_schemas() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\d+):(\d+)$", final, re.M)
    assert user is not None
    for doc, spec in workloads(rendered("production")):
        assert spec["securityContext"]["runAsUser"] == int(user[1]), doc["metadata"]["name"]
        assert spec["securityContext"]["runAsGroup"] == int(user[2])
    # The wheel carries the schemas (tests/deploy/test_package.py installs it as the image does).
    assert "COPY schemas ./schemas" in dockerfile.split("\nFROM ", 2)[1]
    assert re.search(r'^ENTRYPOINT \["tether"\]$', final, re.M)
    exposed = {
        int(p) for p in re.findall(r"\b(\d{4})\b", re.search(r"^EXPOSE (.*)$", final, re.M)[1])
    }
    assert {cls.model_fields["http_port"].default for cls in SERVICES.values()} <= exposed
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"services", "schemas", "pyproject.toml", "README.md"} & set(ignored)


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_compose_file_is_valid_for_docker_compose_when_the_plugin_exists() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed")
    done = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
