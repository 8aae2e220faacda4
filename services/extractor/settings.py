"""The extractor's settings: one frozen object built once in ``main`` from ``TETHER_*`` variables.

``ExtractorSettings`` combines the shared groups (identity, Kafka, HTTP port, PowerOffice and Wix
credentials and budgets) with what only the extractor has: poll intervals and page sizes, the
overlap window, reconciliation interval and circuit breaker, and the Wix webhook public key. The
key is a secret (``TETHER_WIX_WEBHOOK_PUBLIC_KEY`` or the file ``tether_wix_webhook_public_key`` in
the secrets directory) or a PEM file path (``TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE``); without one
the webhook route is not served and polling alone keeps Wix in sync — which is refused at start-up
when webhooks are expected (``wix_webhooks_enabled``, by default: an installed app) and logged at
WARNING otherwise. The webhook route is on its own port (``public_port``, 9180), apart from the
operations port (``http_port``, 9100: metrics and probes).

Imports: standard library, pydantic and ``services.core.settings``/``errors``/``budget`` only.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

# budget_shape is the one rule shared with the loader (services/core/budget.py).
from services.core.budget import budget_shape as budget_shape
from services.core.errors import ConfigurationError
from services.core.settings import (
    PowerOfficeSettings,
    PublicHttpSettings,
    SharedBudgetSettings,
    TetherSettings,
    WixSettings,
)


class ExtractorSettings(
    TetherSettings, PowerOfficeSettings, WixSettings, PublicHttpSettings, SharedBudgetSettings
):
    model_config = SettingsConfigDict(
        env_prefix="TETHER_",
        frozen=True,
        extra="ignore",
        secrets_dir=None,
        case_sensitive=False,
    )

    http_port: int = Field(9100, ge=0, le=65535)
    public_port: int = Field(
        9180, ge=0, le=65535, description="The Wix webhook receiver's port (the ingress's)."
    )

    poweroffice_enabled: bool = Field(True, description="Extract PowerOffice Go records.")
    wix_enabled: bool = Field(True, description="Extract Wix contacts.")
    wix_snapshot_first: bool = Field(
        True,
        description="Extract no PowerOffice record before one full Wix snapshot is on Kafka "
        "(the mapper matches records against the contacts it has seen).",
    )
    poweroffice_poll_interval_seconds: float = Field(30.0, gt=0)
    wix_poll_interval_seconds: float = Field(
        60.0, gt=0, description="With webhooks, polling is the safety net; without, the feed."
    )
    poweroffice_page_size: int = Field(1000, ge=1, le=20_000)
    wix_page_size: int = Field(1000, ge=1, le=1000)
    poll_overlap_seconds: float = Field(
        5.0,
        ge=0,
        description="Each poll re-reads this far behind its cursor (clock skew, late commits, "
        "equal timestamps); what it re-reads is de-duplicated.",
    )
    parent_kind_ttl_seconds: float = Field(
        3600.0,
        gt=0,
        description="How long a contact person's parent found not to be a known customer "
        "keeps its looked-up role (customer/supplier) before it is asked again.",
    )
    parent_settle_seconds: float = Field(
        30.0,
        ge=0,
        description="A 404 for a contact person's parent customer is believed (-> supplier) only "
        "once the contact person is this old: PowerOffice reads may lag a fresh customer.",
    )
    cursor_seen_limit: int = Field(
        20_000, ge=100, description="Most identities a cursor keeps for overlap de-duplication."
    )

    reconcile_interval_seconds: float = Field(3600.0, gt=0)
    reconcile_breaker_max_deletes: int = Field(
        100, ge=0, description="A scan that would delete more records than this deletes none."
    )
    reconcile_breaker_max_delete_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A scan that would delete more than this share of the known records (and "
        "more than one) deletes none.",
    )
    reconcile_page_size: int = Field(10_000, ge=1, le=20_000)

    wix_webhooks_enabled: bool | None = Field(
        None,
        description="Are Wix webhooks expected? true: a missing public key stops the start-up; "
        "false: polling only; unset: expected when the app is installed (app id + instance id).",
    )
    wix_webhook_public_key: SecretStr = SecretStr("")
    wix_webhook_public_key_file: Path | None = None
    webhook_ack_timeout_seconds: float = Field(
        1.0, gt=0, lt=1.25, description="Kafka must ack a webhook's events within this, else 503."
    )
    webhook_dedup_size: int = Field(50_000, ge=1)
    webhook_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest webhook request body accepted (Wix sends small JWTs); larger -> 413 "
        "without reading it.",
    )

    provision_topics: bool = Field(True, description="Create missing topics at start-up.")

    tenants_from_registry: bool = Field(
        False,
        description="Serve the tenants of the registry (the tenants topic), shared with the other "
        "replicas through Kafka's group protocol; false: the one TETHER_TENANT of the settings.",
    )
    tenant_workers: int = Field(
        4,
        ge=1,
        le=256,
        description="Worker threads that run the tenants' poll and reconcile cycles (one cycle "
        "of a tenant at a time): a slow tenant holds one worker, never the others.",
    )
    tenant_session_timeout_seconds: float = Field(
        10.0,
        ge=1,
        le=300,
        description="A replica silent for this long loses its tenants to the others (Kafka's "
        "session timeout of the extractor group; the broker bounds it).",
    )

    def webhooks_expected(self) -> bool:
        """Whether the Wix webhook route must be served (see ``wix_webhooks_enabled``)."""
        if not self.wix_enabled:
            return False
        if self.wix_webhooks_enabled is not None:
            return self.wix_webhooks_enabled
        return bool(self.wix_app_id and self.wix_instance_id)

    def webhook_public_key_pem(self) -> str | None:
        """The webhook verification key (inline secret first, then the file), or None."""
        inline = self.wix_webhook_public_key.get_secret_value().strip()
        if inline:
            return inline
        if self.wix_webhook_public_key_file is not None:
            try:
                text = self.wix_webhook_public_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the wix webhook public key file ({type(exc).__name__})"
                ) from exc
            return text or None
        return None
