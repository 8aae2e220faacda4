"""The console's settings: one frozen object built once in ``main`` from ``TETHER_*`` variables.

``ConsoleSettings`` combines the shared groups (identity, Kafka, operations port, PostgreSQL,
public port and its limits) with the console's own ``TETHER_CONSOLE_*`` settings:

* who may call: ``console_tokens`` / ``console_tokens_file`` — one ``name:role:secret`` per line
  (role ``read`` or ``operator``; the secret may be given as ``sha256:<hex>`` of the token, so
  the file need not hold tokens in clear); OIDC-ready: ``console_jwks_url`` (+ issuer, audience,
  role claim) lets a JWT from an identity provider in as well;
* ``console_session_secret`` signs the web console's session cookie and CSRF tokens (random per
  process when unset: sessions then end when the process restarts);
* ``console_rate_per_minute`` — requests per identity (and per client address before login);
* ``console_tenants_refresh_seconds`` — how fresh the tenant registry it follows is;
  ``console_tenant_admins`` — who among the operators may register and remove tenants.

Secrets are ``SecretStr`` and may come from files in ``TETHER_SECRETS_DIR``
(``tether_console_tokens``, ``tether_console_session_secret``).

Imports: standard library, pydantic and ``services.core.settings`` only.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.core.settings import PostgresSettings, PublicHttpSettings, TetherSettings

DEFAULT_HTTP_PORT = 9104
DEFAULT_PUBLIC_PORT = 9184


class ConsoleSettings(TetherSettings, PostgresSettings, PublicHttpSettings):
    model_config = SettingsConfigDict(
        env_prefix="TETHER_",
        frozen=True,
        extra="ignore",
        secrets_dir=None,
        case_sensitive=False,
    )

    http_port: int = Field(DEFAULT_HTTP_PORT, ge=0, le=65535)
    public_port: int = Field(
        DEFAULT_PUBLIC_PORT,
        ge=0,
        le=65535,
        description="The console's port: the API (/api/v1) and the web pages.",
    )
    console_tokens: SecretStr = Field(
        SecretStr(""),
        description="'name:role:secret' entries separated by newlines or commas (see the module "
        "docstring).",
    )
    console_tokens_file: Path | None = Field(
        None,
        description="A file of 'name:role:secret' lines (role read|operator; secret the token "
        "or sha256:<hex of the token>), read at start-up, in addition to console_tokens.",
    )
    console_jwks_url: str = Field(
        "", description="OIDC: the identity provider's JWKS URL; empty: JWTs are not accepted."
    )
    console_jwt_issuer: str = Field("", description="OIDC: the required 'iss' claim.")
    console_jwt_audience: str = Field("", description="OIDC: the required 'aud' claim.")
    console_jwt_role_claim: str = Field(
        "tether_role", description="OIDC: the claim holding the role (read or operator)."
    )
    console_jwt_name_claim: str = Field(
        "sub", description="OIDC: the claim naming the caller (logged with each action)."
    )
    console_session_secret: SecretStr = SecretStr("")
    console_session_hours: float = Field(8.0, gt=0, description="Web session lifetime.")
    console_cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (on behind TLS/the ingress)."
    )
    console_rate_per_minute: int = Field(
        600, ge=1, description="Requests per minute per identity (per address before login)."
    )
    console_page_size: int = Field(50, ge=1, le=500, description="Default rows per list page.")
    console_kafka_cache_seconds: float = Field(
        15.0,
        ge=0,
        description="How long dead-letter counts, consumer lag and poll times read from Kafka "
        "are reused.",
    )
    console_url: str = Field(
        "http://127.0.0.1:9184",
        description="CLI (tether review|links|deadletters): the console's base URL.",
    )
    console_token: SecretStr = Field(
        SecretStr(""), description="CLI: the bearer token the commands send to the console."
    )
    console_overview_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long the overview's counts (PostgreSQL) are reused: they count every "
        "link, a dashboard need not do that on every view.",
    )
    console_action_ack_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long Kafka may take to acknowledge an operator action or a change "
        "to the tenant registry.",
    )
    console_tenant_admins: str = Field(
        "",
        description="Comma-separated caller names (token entry names, JWT subjects) that may "
        "register, re-configure and remove tenants; empty: every operator. Pausing and resuming "
        "stay open to every operator.",
    )
    console_tenants_refresh_seconds: float = Field(
        2.0,
        gt=0,
        description="How often the console reads the tenant registry's new records (its tenant "
        "list and selector are at most this old; its own changes show at once).",
    )
