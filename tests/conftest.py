"""Session fixtures: the real Kafka and PostgreSQL that scripts/infra.py starts, once per session.

`make test` starts the infrastructure and exports TETHER_KAFKA_BOOTSTRAP_SERVERS and
TETHER_POSTGRES_DSN; a bare `pytest` starts it here instead (and leaves it running for the next
run — `make infra-down` stops it). Tests isolate themselves with their own topic prefix and their
own database instead of restarting anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.connectors import registry

ROOT = Path(__file__).resolve().parents[1]

# What the ``tether`` command does before any command: core's topic and record-type tables
# from the connector descriptors, for the tests that use core without a service's wiring.
registry.install()


@pytest.fixture(scope="session")
def infra_env() -> dict[str, str]:
    """Connection settings of the local infrastructure (started here if not yet running)."""
    if "TETHER_KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "infra.py"), "up"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            key, _, value = line.partition("=")
            os.environ[key] = value
    return {
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": os.environ["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        "TETHER_POSTGRES_DSN": os.environ["TETHER_POSTGRES_DSN"],
    }


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_env: dict[str, str]) -> str:
    return infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"]


def _topics(bootstrap: str) -> set[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        return {t for t in admin.list_topics() if not t.startswith("__")}
    finally:
        admin.close()


@pytest.fixture(scope="module", autouse=True)
def delete_the_modules_topics() -> Iterator[None]:
    """Delete the topics a test module created on the shared broker once the module is done.

    Every test provisions its own topics (``topic_prefix``, the demo stack's prefix); left in
    place, a whole run holds tens of thousands of partitions, each an open log file, and the broker
    died of "Too many open files" (the hard limit here is 20,000 descriptors). Module scope, so
    that topics a module-scoped fixture still uses are kept until that fixture is gone; a broker
    that cannot be reached (or no shared infrastructure at all) makes this a no-op."""
    bootstrap = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS")
    before: set[str] | None = None
    if bootstrap:
        try:
            before = _topics(bootstrap)
        except Exception:  # the broker is the test's business, not this housekeeping's
            before = None
    yield
    if not bootstrap or before is None:
        return
    try:
        from kafka import KafkaAdminClient

        created = sorted(_topics(bootstrap) - before)
        if created:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
            try:
                for start in range(0, len(created), 100):
                    admin.delete_topics(created[start : start + 100], timeout_ms=30_000)
            finally:
                admin.close()
    except Exception:  # best effort: a leftover topic costs descriptors, not correctness
        return


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix: every test gets its own topics on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_dsn(infra_env: dict[str, str]) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin_dsn = infra_env["TETHER_POSTGRES_DSN"]
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_dsn.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
