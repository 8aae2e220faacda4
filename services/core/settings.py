"""Typed, frozen settings built once at the edge of each process.

Every setting comes from an environment variable ``TETHER_<NAME>`` or, for secrets, from a file
named ``tether_<name>`` in the secrets directory (``TETHER_SECRETS_DIR``, default
``/var/run/secrets/tether`` — Kubernetes mounts Secrets there as files). Secrets are
``SecretStr``: they print as ``**********`` in logs, reprs and exceptions.

Nothing else in the code base reads ``os.environ`` for configuration: services build their
settings class once in ``main`` and pass it (or parts of it) down.

The groups below are mixins; each service's settings class combines the ones it needs. The
manifests' cross-check test (``tests/deploy``) asserts every variable a manifest sets is a field
of one of these classes.

Imports: standard library, pydantic and pydantic-settings only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRETS_DIR = "/var/run/secrets/tether"


class TetherSettings(BaseSettings):
    """Settings every service has: identity, Kafka, topics, HTTP port, logging."""

    model_config = SettingsConfigDict(
        env_prefix="TETHER_",
        frozen=True,
        extra="ignore",
        secrets_dir=None,
        case_sensitive=False,
    )

    tenant: str = Field("default", description="Tenant id carried by every event, link, cursor.")
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_client_id_prefix: str = "tether"
    # Kafka security (services/core/kafka_security.py; docs/operations.md "Kafka security").
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER"] = (
        "SCRAM-SHA-512"
    )
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_sasl_oauth_token_file: Path | None = Field(
        None, description="OAUTHBEARER: a file holding the token, re-read at each authentication."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle the broker's certificate is verified against."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client key (mutual TLS).")
    kafka_ssl_key_password: SecretStr = SecretStr("")
    kafka_ssl_check_hostname: bool = True
    topic_prefix: str = "tether"
    topic_partitions: int = Field(6, ge=1)
    topic_replication_factor: int = Field(1, ge=1)
    tenant_secrets_dir: Path = Field(
        Path("/var/run/secrets/tether-tenants"),
        description="Where tenants' secret:<name> credential references resolve: files "
        "<name>.<setting field> (the mounted Secret tether-tenant-credentials) or <name>/ "
        "directories (services/tenants/credentials.py).",
    )
    tenant_partitions: int = Field(
        12,
        ge=1,
        description="Partitions of the tenants topic: the most extractor replicas that share "
        "tenants' work (fixed once the topic exists).",
    )
    http_host: str = "0.0.0.0"
    http_port: int = Field(9100, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_personal_data: bool = Field(
        False, description="Log e-mails and phone numbers in clear (off: they are masked)."
    )
    otel_exporter_otlp_endpoint: str = Field(
        "",
        description="OTLP/HTTP collector URL (e.g. http://otel-collector:4318) the services "
        "export traces to; empty: tracing off (services/core/tracing.py).",
    )
    wire_format: Literal["single-object", "confluent"] = Field(
        "single-object",
        description="Avro framing on the topics: single-object (schemas ship with the code) or "
        "confluent (magic byte + schema id, schemas in a Confluent-compatible registry).",
    )
    schema_registry_url: str = Field("", description="Registry URL for wire_format=confluent.")
    schema_registry_username: str = ""
    schema_registry_password: SecretStr = SecretStr("")
    shutdown_timeout_seconds: float = Field(20.0, gt=0)
    replicas: int = Field(
        1,
        ge=1,
        description="How many processes of this Deployment run (set next to spec.replicas): "
        "API budget shares are the Deployment's, each process takes 1/replicas of them.",
    )
    poll_timeout_ms: int = Field(500, ge=10)
    max_poll_records: int = Field(500, ge=1)
    stall_after_seconds: float = Field(
        120.0,
        ge=0,
        description="A consumed partition with lag whose position has not advanced for this "
        "long is stalled: metric, WARNING log, /readyz false (services/core/progress.py).",
    )

    metrics_tenant_cap: int = Field(
        100,
        ge=1,
        description="Per-tenant metrics: the first this many tenants get their own tenant label "
        "value, the others share '_other' (services/core/tenant_labels.py).",
    )

    @classmethod
    def load(cls, **overrides: Any) -> Any:
        """Build the settings from the environment and the secrets directory (if it exists)."""
        secrets_dir = os.environ.get("TETHER_SECRETS_DIR", DEFAULT_SECRETS_DIR)
        kwargs: dict[str, Any] = dict(overrides)
        if Path(secrets_dir).is_dir():
            kwargs["_secrets_dir"] = secrets_dir
        return cls(**kwargs)


class PublicHttpSettings(BaseSettings):
    """The public HTTP port (services with public routes: the extractor's Wix webhook, the
    mapper's ``/explain``) and its limits (services/core/public_http.py). ``/metrics``,
    ``/healthz`` and ``/readyz`` stay on ``http_port``, which the ingress never reaches."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    public_port: int = Field(
        9180, ge=0, le=65535, description="Port of the public routes (each service its own)."
    )
    public_max_body_bytes: int = Field(
        65_536, ge=1024, description="Largest request body a public route accepts (else 413)."
    )
    public_request_timeout_seconds: float = Field(
        10.0, gt=0, description="Reading the body plus answering must finish within this (503)."
    )
    public_keep_alive_seconds: float = Field(
        5.0, gt=0, description="An idle keep-alive connection is closed after this."
    )
    public_max_concurrency: int = Field(
        64, ge=1, description="More concurrent connections than this are answered 503."
    )
    public_max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest request line + headers (else 400)."
    )


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    postgres_dsn: SecretStr = SecretStr("postgresql://tether@127.0.0.1:15432/tether")


class SharedBudgetSettings(PostgresSettings):
    """Whether API budgets are shared by every replica through PostgreSQL
    (services/core/shared_budget.py; docs/operations.md "Scale")."""

    shared_budgets: bool = Field(
        False,
        description="Take API budgets from PostgreSQL (TETHER_POSTGRES_DSN), shared by every "
        "replica and tenant using one credential, with one 429 hold and rate for all; off: each "
        "process takes share / replicas and learns from its own 429s.",
    )
    shared_budget_pool: str = Field(
        "",
        description="With shared budgets: a pool name the extractor and the loader both set "
        "(with their *_budget_share at 1.0) to take one credential's budget from one bucket, so "
        "either may use what the other leaves (an initial sync's creates get the whole limit); "
        "empty: each component its own bucket and share.",
    )

    def budget_holder(self, component: str) -> str:
        """The bucket a component takes from: its own, or the pool it shares."""
        return self.shared_budget_pool or component


class PowerOfficeSettings(BaseSettings):
    """PowerOffice Go v2 credentials and budget (10 requests/s per subscription key)."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    poweroffice_base_url: str = "https://goapi.poweroffice.net/v2"
    poweroffice_token_url: str | None = Field(
        None,
        description="Token endpoint; unset: derived from the base URL (<root>/v2 -> "
        "<root>/OAuth/Token, e.g. the demo's .../Demo/OAuth/Token).",
    )
    poweroffice_app_key: SecretStr = SecretStr("")
    poweroffice_client_key: SecretStr = SecretStr("")
    poweroffice_subscription_key: SecretStr = SecretStr("")
    poweroffice_requests_per_second: float = Field(
        10.0, ge=0, description="The subscription key's budget; 0 lifts it (simulator only)."
    )
    poweroffice_budget_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="This Deployment's share of the PowerOffice budget, split by its replicas.",
    )


class WixSettings(BaseSettings):
    """Wix Contacts v4 credentials and budget (200 requests/min per app instance)."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    wix_base_url: str = "https://www.wixapis.com"
    wix_api_key: SecretStr = SecretStr("")
    wix_site_id: str = ""
    wix_app_id: str = ""
    wix_app_secret: SecretStr = SecretStr("")
    wix_instance_id: str = ""
    wix_requests_per_minute: float = Field(
        200.0, ge=0, description="The instance's budget; 0 lifts it (simulator only)."
    )
    wix_budget_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="This Deployment's share of the Wix budget, split by its replicas.",
    )
    wix_link_field_name: str = Field(
        "tether-link-id", description="Display name of the Wix extended field carrying link ids."
    )
