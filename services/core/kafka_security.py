"""How every Kafka client Tether creates connects: TLS, mTLS and SASL, from settings, in one place.

``kafka_client_config(settings)`` is the keyword arguments every kafka-python client gets (the
producer, consumer and admin factories in ``kafka.py`` merge it; nothing else builds a client):

=====================  ==========================================================================
PLAINTEXT (default)    loopback/demo brokers only
SSL                    TLS; the broker is verified against ``kafka_ssl_cafile`` (else the system
                       CA store) and its host name is checked; a client certificate
                       (``kafka_ssl_certfile``/``kafka_ssl_keyfile``) makes it mutual TLS
SASL_SSL               TLS as above plus SASL: ``SCRAM-SHA-512`` (default), ``SCRAM-SHA-256``,
                       ``PLAIN`` (username + password), or ``OAUTHBEARER`` with a token read from
                       ``kafka_sasl_oauth_token_file`` at every authentication (a projected
                       Kubernetes token, or one a sidecar refreshes)
SASL_PLAINTEXT         SASL without TLS: refused for PLAIN (a password in clear on the network)
=====================  ==========================================================================

Secrets (``kafka_sasl_password``, ``kafka_ssl_key_password``) are ``SecretStr`` settings, read from
the secrets directory (``tether_kafka_sasl_password``) or the environment.

``check_kafka_security(settings)`` runs at service start-up: kafka-python answers a certificate it
does not trust or refused credentials only with "Unable to bootstrap" after its 30 s bootstrap
timeout. This check does a TLS handshake itself (an untrusted certificate fails in milliseconds,
naming the setting to fix) and, for SASL, watches the client's connection log for the broker's
authentication failure, so a wrong password fails in about a second with a clear message. An
unreachable broker is not a configuration error: the check returns and the service retries as it
does in any outage.

Imports: standard library, kafka-python and the core settings/errors.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any

from kafka.net.sasl.oauth import AbstractTokenProvider

from services.core.errors import ConfigurationError
from services.core.settings import TetherSettings

log = logging.getLogger("tether.kafka")


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER: the token in a file, read again at every authentication (rotation-safe)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def token(self) -> str:
        with open(self.path, encoding="utf-8") as handle:
            return handle.read().strip()


def kafka_client_config(settings: TetherSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for the configured security protocol."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        config["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
        if settings.kafka_ssl_cafile:
            config["ssl_cafile"] = str(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            config["ssl_certfile"] = str(settings.kafka_ssl_certfile)
            config["ssl_keyfile"] = str(settings.kafka_ssl_keyfile or settings.kafka_ssl_certfile)
        if settings.kafka_ssl_key_password.get_secret_value():
            config["ssl_password"] = settings.kafka_ssl_key_password.get_secret_value()
    if protocol.startswith("SASL_"):
        mechanism = settings.kafka_sasl_mechanism
        if protocol == "SASL_PLAINTEXT" and mechanism == "PLAIN":
            raise ConfigurationError(
                "TETHER_KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT would send the password "
                "in clear: use TETHER_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        config["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            if not settings.kafka_sasl_oauth_token_file:
                raise ConfigurationError(
                    "OAUTHBEARER needs TETHER_KAFKA_SASL_OAUTH_TOKEN_FILE (a file with the token)"
                )
            config["sasl_oauth_token_provider"] = FileTokenProvider(
                str(settings.kafka_sasl_oauth_token_file)
            )
        else:
            if not settings.kafka_sasl_username:
                raise ConfigurationError(f"SASL {mechanism} needs TETHER_KAFKA_SASL_USERNAME")
            config["sasl_plain_username"] = settings.kafka_sasl_username
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return config


def _first_broker(settings: TetherSettings) -> tuple[str, int]:
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
    return host.strip("[]"), int(port)


def _tls_context(settings: TetherSettings) -> ssl.SSLContext:
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile:
        password = settings.kafka_ssl_key_password.get_secret_value() or None
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile or settings.kafka_ssl_certfile),
            password,
        )
    return context


def _check_tls(settings: TetherSettings, timeout: float) -> bool:
    """False when the broker cannot be reached (not ours to judge); raises on a bad certificate.

    A refused or reset connection is tried again until ``timeout`` (a broker starting up)."""
    host, port = _first_broker(settings)
    try:
        context = _tls_context(settings)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the Kafka TLS files (TETHER_KAFKA_SSL_CAFILE/CERTFILE/KEYFILE): {exc}"
        ) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            with (
                socket.create_connection((host, port), timeout=timeout) as raw,
                context.wrap_socket(raw, server_hostname=host),
            ):
                return True
        except ssl.SSLCertVerificationError as exc:
            raise ConfigurationError(
                f"Kafka at {host}:{port}: its certificate is not trusted ({exc.verify_message}); "
                "set TETHER_KAFKA_SSL_CAFILE to the CA that signed it"
            ) from None
        except ssl.SSLError as exc:
            raise ConfigurationError(
                f"TLS handshake with Kafka at {host}:{port} failed ({exc.reason}): is "
                "TETHER_KAFKA_SECURITY_PROTOCOL right for this listener?"
            ) from None
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


class _AuthFailures(logging.Handler):
    """Collects kafka-python's log lines that report a refused authentication."""

    MARKERS = ("SaslAuthenticationFailed", "Authentication failed", "authentication failed")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failure: str | None = None
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(marker in message for marker in self.MARKERS):
            self.failure = message
            self.seen.set()


def check_kafka_security(settings: TetherSettings, timeout: float = 15.0) -> None:
    """Fail fast, with a clear message, on an untrusted certificate or refused credentials."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return
    config = kafka_client_config(settings)  # raises on an impossible combination
    if protocol in ("SSL", "SASL_SSL") and not _check_tls(settings, timeout):
        return  # unreachable: the service retries like in any outage
    if not protocol.startswith("SASL_"):
        return
    watcher = _AuthFailures()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(watcher)
    deadline = time.monotonic() + timeout
    try:
        # Each attempt is a fresh client; kafka-python sometimes reports a refused authentication
        # only as a dropped connection, so a bootstrap that fails without the word is tried again.
        while time.monotonic() < deadline and watcher.failure is None:
            if _sasl_attempt(settings, config, watcher, max(1.0, deadline - time.monotonic())):
                return
    finally:
        kafka_log.removeHandler(watcher)
    if watcher.failure is not None:
        who = (
            f"token file {settings.kafka_sasl_oauth_token_file}"
            if settings.kafka_sasl_mechanism == "OAUTHBEARER"
            else f"user {settings.kafka_sasl_username!r}"
        )
        raise ConfigurationError(
            f"Kafka refused SASL {settings.kafka_sasl_mechanism} authentication for {who}: "
            "check TETHER_KAFKA_SASL_USERNAME and the password (tether_kafka_sasl_password)"
        )


def _sasl_attempt(
    settings: TetherSettings, config: dict[str, Any], watcher: _AuthFailures, timeout: float
) -> bool:
    """One bootstrap of a short-lived admin client: True once it connected."""
    from kafka import KafkaAdminClient  # the client whose log ``watcher`` reads

    watcher.seen.clear()
    outcome: dict[str, bool] = {}

    def connect() -> None:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
                client_id=f"{settings.kafka_client_id_prefix}-preflight",
                bootstrap_timeout_ms=int(min(timeout, 5.0) * 1000),
                **config,
            )
            admin.close()
            outcome["ok"] = True
        except Exception:  # the bootstrap timeout says nothing useful; the log does
            outcome["ok"] = False
        finally:
            watcher.seen.set()

    threading.Thread(target=connect, name="kafka-preflight", daemon=True).start()
    watcher.seen.wait(timeout + 5)
    return outcome.get("ok", False) and watcher.failure is None
