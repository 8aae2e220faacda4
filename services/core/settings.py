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
    topic_prefix: str = "tether"
    topic_partitions: int = Field(6, ge=1)
    topic_replication_factor: int = Field(1, ge=1)
    http_host: str = "0.0.0.0"
    http_port: int = Field(9100, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_personal_data: bool = Field(
        False, description="Log e-mails and phone numbers in clear (off: they are masked)."
    )
    shutdown_timeout_seconds: float = Field(20.0, gt=0)
    poll_timeout_ms: int = Field(500, ge=10)
    max_poll_records: int = Field(500, ge=1)

    @classmethod
    def load(cls, **overrides: Any) -> Any:
        """Build the settings from the environment and the secrets directory (if it exists)."""
        secrets_dir = os.environ.get("TETHER_SECRETS_DIR", DEFAULT_SECRETS_DIR)
        kwargs: dict[str, Any] = dict(overrides)
        if Path(secrets_dir).is_dir():
            kwargs["_secrets_dir"] = secrets_dir
        return cls(**kwargs)


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    postgres_dsn: SecretStr = SecretStr("postgresql://tether@127.0.0.1:15432/tether")
    postgres_pool_size: int = Field(4, ge=1)


class PowerOfficeSettings(BaseSettings):
    """PowerOffice Go v2 credentials and budget (10 requests/s per subscription key)."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", frozen=True, extra="ignore")

    poweroffice_base_url: str = "https://goapi.poweroffice.net/v2"
    poweroffice_token_url: str = "https://goapi.poweroffice.net/OAuth/Token"
    poweroffice_app_key: SecretStr = SecretStr("")
    poweroffice_client_key: SecretStr = SecretStr("")
    poweroffice_subscription_key: SecretStr = SecretStr("")
    poweroffice_requests_per_second: float = Field(
        10.0, ge=0, description="The subscription key's budget; 0 lifts it (simulator only)."
    )
    poweroffice_budget_share: float = Field(
        0.5, gt=0, le=1, description="This service's share of the PowerOffice budget."
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
        0.5, gt=0, le=1, description="This service's share of the Wix budget."
    )
