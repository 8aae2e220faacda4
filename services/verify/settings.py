"""The verifier's settings: one frozen object built once in ``main`` from ``TETHER_*`` variables.

``VerifySettings`` combines the shared groups (identity, Kafka, HTTP port, PostgreSQL, PowerOffice
and Wix credentials and budgets) with the cycle's own: how often it runs, page sizes, whether it
emits repairs. Its default budget shares are small (10 % of each API): verification is a
background sweep; the extractor and the loader keep the rest (the manifests' test checks the
shares of every Deployment add up to at most one budget).

Imports: standard library, pydantic and ``services.core`` settings/budget only.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.core.budget import ApiBudget, process_share
from services.core.settings import (
    PostgresSettings,
    PowerOfficeSettings,
    TetherSettings,
    WixSettings,
)

DEFAULT_HTTP_PORT = 9103


class VerifySettings(TetherSettings, PostgresSettings, PowerOfficeSettings, WixSettings):
    model_config = SettingsConfigDict(
        env_prefix="TETHER_",
        frozen=True,
        extra="ignore",
        secrets_dir=None,
        case_sensitive=False,
    )

    http_port: int = Field(DEFAULT_HTTP_PORT, ge=0, le=65535)
    poweroffice_budget_share: float = Field(
        0.1, gt=0, le=1, description="The verifier's share of the PowerOffice budget."
    )
    wix_budget_share: float = Field(
        0.1, gt=0, le=1, description="The verifier's share of the Wix budget."
    )
    verify_interval_seconds: float = Field(
        3600.0, gt=0, description="--loop: time from the start of one cycle to the next."
    )
    verify_poweroffice_page_size: int = Field(1000, ge=1, le=20_000)
    verify_wix_page_size: int = Field(1000, ge=1, le=1000)
    verify_repair: bool = Field(True, description="Emit repair change events (off: report only).")
    verify_ack_timeout_seconds: float = Field(
        30.0, gt=0, description="How long Kafka may take to acknowledge the repair events."
    )

    def poweroffice_budget(self) -> ApiBudget:
        return ApiBudget.for_rate(
            f"poweroffice-{self.tenant}-verify",
            self.poweroffice_requests_per_second
            * process_share(self.poweroffice_budget_share, self.replicas),
            1.0,
        )

    def wix_budget(self) -> ApiBudget:
        return ApiBudget.for_rate(
            f"wix-{self.tenant}-verify",
            self.wix_requests_per_minute * process_share(self.wix_budget_share, self.replicas),
            60.0,
        )
