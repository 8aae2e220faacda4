"""The extractor's settings: one frozen object built once in ``main`` from ``TETHER_*`` variables.

``ExtractorSettings`` combines the shared groups (identity, Kafka, HTTP port, PowerOffice and Wix
credentials and budgets) with what only the extractor has: poll intervals and page sizes, the
overlap window, reconciliation interval and circuit breaker, and the Wix webhook public key. The
key is a secret (``TETHER_WIX_WEBHOOK_PUBLIC_KEY`` or the file ``tether_wix_webhook_public_key`` in
the secrets directory) or a PEM file path (``TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE``); without one
the webhook route is not served and polling alone keeps Wix in sync.

Imports: standard library, pydantic and ``services.core.settings``/``errors`` only.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.core.errors import ConfigurationError
from services.core.settings import PowerOfficeSettings, TetherSettings, WixSettings


class ExtractorSettings(TetherSettings, PowerOfficeSettings, WixSettings):
    model_config = SettingsConfigDict(
        env_prefix="TETHER_",
        frozen=True,
        extra="ignore",
        secrets_dir=None,
        case_sensitive=False,
    )

    http_port: int = Field(9100, ge=0, le=65535)

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

    wix_webhook_public_key: SecretStr = SecretStr("")
    wix_webhook_public_key_file: Path | None = None
    webhook_ack_timeout_seconds: float = Field(
        1.0, gt=0, lt=1.25, description="Kafka must ack a webhook's events within this, else 503."
    )
    webhook_dedup_size: int = Field(50_000, ge=1)

    provision_topics: bool = Field(True, description="Create missing topics at start-up.")

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


def budget_shape(rate_per_window: float, window_seconds: float) -> tuple[int, float]:
    """``(requests, per_seconds)`` for an ``ApiBudget`` allowing ``rate_per_window`` per window.

    ``ApiBudget`` counts whole permits; a fractional rate keeps its average by stretching the
    window (2.5 per second -> 2 per 0.8 s; 0.5 per second -> 1 per 2 s). ``(0, 1.0)`` = lifted.
    """
    if rate_per_window <= 0:
        return 0, 1.0
    whole = math.floor(rate_per_window)
    if whole >= 1:
        return whole, window_seconds * whole / rate_per_window
    return 1, window_seconds / rate_per_window
