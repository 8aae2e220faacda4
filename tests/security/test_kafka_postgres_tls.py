"""Kafka over TLS + SASL (SCRAM-SHA-512, PLAIN, mutual TLS) and PostgreSQL with verify-full.

A private infrastructure started by ``scripts/infra.py`` with ``TETHER_INFRA_TLS=1``: a throwaway
CA, a SASL_SSL listener with SCRAM credentials created by ``kafka-storage format --add-scram``,
PostgreSQL with ``ssl=on``. Every client is built by the project's own factories
(``services.core.kafka``), so this is how the services connect.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from services.core.errors import ConfigurationError
from services.core.kafka import make_admin, make_consumer, make_producer
from services.core.kafka_security import check_kafka_security, kafka_client_config
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision
from tests.security.conftest import tls_dir as _tls
from tests.support.own_infra import OwnInfra


def _settings(infra: OwnInfra, prefix: str, **overrides: object) -> TetherSettings:
    assert infra.values is not None
    tls = _tls(infra)
    config: dict[str, object] = {
        "kafka_bootstrap_servers": infra.values["TETHER_INFRA_KAFKA_SASL_SSL"],
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "tether",
        "kafka_sasl_password": SecretStr((tls / "kafka-password").read_text().strip()),
        "kafka_ssl_cafile": tls / "ca.pem",
        "topic_prefix": prefix,
        "topic_partitions": 1,
    }
    config.update(overrides)
    return TetherSettings(**config)  # type: ignore[arg-type]


def test_client_config_per_protocol(tmp_path: Path) -> None:
    assert kafka_client_config(TetherSettings()) == {"security_protocol": "PLAINTEXT"}
    scram = kafka_client_config(
        TetherSettings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="svc",
            kafka_sasl_password=SecretStr("pw"),
            kafka_ssl_cafile=tmp_path / "ca.pem",
            kafka_ssl_certfile=tmp_path / "client.pem",
            kafka_ssl_keyfile=tmp_path / "client.key",
        )
    )
    assert scram["sasl_mechanism"] == "SCRAM-SHA-512"
    assert scram["sasl_plain_password"] == "pw"
    assert scram["ssl_certfile"].endswith("client.pem")
    assert scram["ssl_check_hostname"] is True
    with pytest.raises(ConfigurationError, match="in clear"):
        kafka_client_config(
            TetherSettings(
                kafka_security_protocol="SASL_PLAINTEXT",
                kafka_sasl_mechanism="PLAIN",
                kafka_sasl_username="svc",
            )
        )
    with pytest.raises(ConfigurationError, match="TOKEN_FILE"):
        kafka_client_config(
            TetherSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER")
        )
    token = tmp_path / "token"
    token.write_text("abc.def.ghi\n")
    oauth = kafka_client_config(
        TetherSettings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="OAUTHBEARER",
            kafka_sasl_oauth_token_file=token,
        )
    )
    assert oauth["sasl_oauth_token_provider"].token() == "abc.def.ghi"
    assert "pw" not in repr(TetherSettings(kafka_sasl_password=SecretStr("pw")))


def _round_trip(settings: TetherSettings) -> None:
    layout = TopicLayout(prefix=settings.topic_prefix, partitions=1)
    admin = make_admin(settings)
    try:
        provision(admin, layout)
    finally:
        admin.close()
    topic = layout.outcomes
    producer = make_producer(settings, "tls-test")
    producer.send(topic, key=b"k", value=b"over tls").get(timeout=30)
    producer.close()
    consumer = make_consumer(settings, f"{settings.topic_prefix}-g", [topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += [r.value for r in records]
    consumer.close()
    assert seen == [b"over tls"]


@pytest.mark.integration
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_produce_consume_and_provision_over_sasl_ssl(secure: OwnInfra, mechanism: str) -> None:
    settings = _settings(secure, f"t{uuid.uuid4().hex[:8]}", kafka_sasl_mechanism=mechanism)
    check_kafka_security(settings)
    _round_trip(settings)


@pytest.mark.integration
def test_mutual_tls_with_a_client_certificate(secure: OwnInfra) -> None:
    tls = _tls(secure)
    settings = _settings(
        secure,
        f"t{uuid.uuid4().hex[:8]}",
        kafka_ssl_certfile=tls / "client.pem",
        kafka_ssl_keyfile=tls / "client.key",
    )
    check_kafka_security(settings)
    _round_trip(settings)


@pytest.mark.integration
def test_a_wrong_password_fails_fast_and_clearly(secure: OwnInfra) -> None:
    settings = _settings(secure, "x", kafka_sasl_password=SecretStr("not-the-password"))
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="refused SASL SCRAM-SHA-512") as refused:
        check_kafka_security(settings)
    assert "not-the-password" not in str(refused.value)
    # Not the client's 30 s bootstrap timeout. (A bound on a failure path, not a speed target.)
    assert time.monotonic() - started < 25


@pytest.mark.integration
def test_an_untrusted_certificate_fails_fast_and_clearly(secure: OwnInfra, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="certificate is not trusted"):
        check_kafka_security(_settings(secure, "x", kafka_ssl_cafile=None))  # system CAs only
    with pytest.raises(ConfigurationError, match="cannot load the Kafka TLS files"):
        check_kafka_security(_settings(secure, "x", kafka_ssl_cafile=tmp_path / "missing.pem"))


@pytest.mark.integration
def test_postgres_verify_full_with_the_ca_file(secure: OwnInfra, tmp_path: Path) -> None:
    ca = _tls(secure) / "ca.pem"
    dsn = f"{secure.dsn}?sslmode=verify-full&sslrootcert={ca}"
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)
    other = tmp_path / "other-ca.pem"
    other.write_text((_tls(secure) / "client.pem").read_text())  # not the CA that signed it
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(f"{secure.dsn}?sslmode=verify-full&sslrootcert={other}", connect_timeout=5)


@pytest.mark.integration
def test_a_service_refused_by_kafka_exits_at_once_naming_the_setting(
    secure: OwnInfra, pg_dsn: str
) -> None:
    settings = _settings(secure, "svc")
    env = {
        **os.environ,
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TETHER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TETHER_KAFKA_SASL_USERNAME": "tether",
        "TETHER_KAFKA_SASL_PASSWORD": "wrong-password",
        "TETHER_KAFKA_SSL_CAFILE": str(_tls(secure) / "ca.pem"),
        "TETHER_POSTGRES_DSN": pg_dsn,
        "TETHER_HTTP_PORT": "0",
        "TETHER_PUBLIC_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "mapper"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "tether mapper: Kafka refused SASL SCRAM-SHA-512" in done.stderr
    assert "Traceback" not in done.stderr and "wrong-password" not in done.stderr
