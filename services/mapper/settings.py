"""The mapper's settings: the shared groups plus policy, consumer group and operational knobs.

Every field is read from ``TETHER_<NAME>`` (or a secret file) once, in ``main``; nothing else in
the mapper reads the environment. The sync policy (``services.mapper.domain.Policy``) comes from
``TETHER_MAPPER_POLICY`` (JSON text) or ``TETHER_MAPPER_POLICY_FILE`` (a JSON file); unknown keys
are rejected at start-up so a typo never silently falls back to a default. The dataflow
(resources, properties, match rules and a policy) comes from ``TETHER_MAPPER_DATAFLOW_FILE``
(default: the shipped ``dataflows/default.json``); a policy set by either variable above replaces
the dataflow file's.

``mapper_crash_point`` is a fault-injection switch for the crash tests only (off by default): at
the named point of the loop the process ends with ``os._exit(137)`` (what ``kill -9`` looks like),
once. Points: ``after_db_commit`` (link state and outbox committed, nothing produced),
``after_produce`` (outbox rows produced and flushed, not yet marked produced, offsets not
committed), ``after_mark`` (rows marked produced, Kafka offsets not committed).

Imports: pydantic, the core settings, the mapper's domain and ``dataflow_file`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.core.errors import ConfigurationError
from services.core.settings import PostgresSettings, PublicHttpSettings, TetherSettings
from services.mapper.dataflow_file import DEFAULT_DATAFLOW_FILE, load_compiled
from services.mapper.domain import Policy
from services.mapper.domain.dataflow import CompiledDataflow, policy_problems
from services.mapper.wiring import install

CrashPoint = Literal["after_db_commit", "after_produce", "after_mark"]

DEFAULT_HTTP_PORT = 9101
DEFAULT_PUBLIC_PORT = 9181


class MapperSettings(TetherSettings, PostgresSettings, PublicHttpSettings):
    """Settings of the mapper service (``tether mapper``)."""

    http_port: int = Field(DEFAULT_HTTP_PORT, ge=0, le=65535)
    public_port: int = Field(
        DEFAULT_PUBLIC_PORT, ge=0, le=65535, description="The /explain endpoint's port."
    )
    mapper_group_id: str | None = Field(
        None, description="Kafka consumer group; default '<topic_prefix>-mapper'."
    )
    mapper_group_instance_id: str | None = Field(
        None,
        description="Static group membership (KIP-345), e.g. the StatefulSet pod name: a "
        "restarted replica gets its partitions back at once instead of after the session "
        "timeout. Leave unset for Deployments.",
    )
    mapper_policy: str | None = Field(
        None, description="Sync policy as JSON text (services.mapper.domain.Policy)."
    )
    mapper_policy_file: Path | None = Field(None, description="Sync policy as a JSON file.")
    mapper_dataflow_file: Path = Field(
        DEFAULT_DATAFLOW_FILE,
        description="Dataflow file (JSON: resources, properties, match rules, policy); see "
        "docs/connectors.md and `tether dataflow check`.",
    )
    mapper_provision_topics: bool = Field(
        True, description="Create missing topics at start-up (idempotent)."
    )
    mapper_max_deletes_per_hour: int = Field(
        25,
        ge=0,
        description="Mass-delete breaker: delete commands allowed per rolling hour (only with "
        "the propagate_deletes policy); further deletes are held for review.",
    )
    mapper_summary_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="How often the mapper logs an INFO summary of its decisions (counts only).",
    )
    mapper_maintenance_interval_seconds: float = Field(
        15.0, gt=0, description="How often gauges are refreshed and old rows trimmed."
    )
    mapper_history_per_record: int = Field(
        20, ge=1, description="History rows (decisions, outcomes, errors) kept per link/record."
    )
    mapper_outbox_retention_days: int = Field(
        7, ge=1, description="Produced outbox rows are deleted after this many days."
    )
    mapper_wix_first: bool = Field(
        True,
        description="Handle a member change only after the hub changes extracted before it "
        "(matching before creating; see services/mapper/gate.py). The name is from when the hub "
        "was always Wix; it stays, deployments set it.",
    )
    mapper_relay_batch: int = Field(1000, ge=1, description="Outbox rows produced per round.")
    mapper_max_partition_fetch_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Most bytes one fetch takes from one partition (the consumer's "
        "max_partition_fetch_bytes; Kafka's default, 1 MiB, is ~1,300 change events). Small "
        "enough that a polled batch spans many partitions: every batch then carries PowerOffice "
        "changes (commands for the loader), outcomes and Wix changes, instead of one partition "
        "at a time with the stages downstream idle in between (docs/mapper.md). A record batch "
        "larger than this still arrives (KIP-74: when its partition is the fetch's first "
        "non-empty one, and kafka-python rotates partitions).",
    )
    mapper_crash_point: CrashPoint | None = Field(
        None, description="Fault injection for the crash tests: os._exit(137) at this point."
    )

    @property
    def hub_first(self) -> bool:
        """Whether the hub-first gate runs (``TETHER_MAPPER_WIX_FIRST``)."""
        return self.mapper_wix_first

    @property
    def group_id(self) -> str:
        return self.mapper_group_id or f"{self.topic_prefix}-mapper"

    def dataflow(self) -> CompiledDataflow:
        """The dataflow file, validated and compiled (``ConfigurationError`` naming the file
        and the path of every problem)."""
        return load_compiled(self.mapper_dataflow_file)

    def install_dataflow(self) -> Policy:
        """Load the dataflow file, make its hub, flows and properties the ones the mapper's
        domain reads (``wiring.install``) and return the effective policy. Every process that
        runs the mapper's decisions (the mapper, ``tether replay``'s preview, ``tether preview``)
        calls it once at start-up, before any change is handled."""
        dataflow = self.dataflow()
        policy = self.policy(default=dataflow.policy)
        problems = policy_problems(policy, dataflow.systems)
        if problems:
            raise ConfigurationError(f"invalid mapper policy: {'; '.join(problems)}")
        install(dataflow)
        return policy

    def policy(self, default: Policy | None = None) -> Policy:
        """The configured policy (``default`` — the dataflow file's — when none is configured,
        else the spec's defaults)."""
        if self.mapper_policy and self.mapper_policy_file:
            raise ConfigurationError("set TETHER_MAPPER_POLICY or TETHER_MAPPER_POLICY_FILE")
        try:
            if self.mapper_policy:
                return Policy.from_json(self.mapper_policy)
            if self.mapper_policy_file:
                return Policy.from_json(self.mapper_policy_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"invalid mapper policy: {exc}") from exc
        return default if default is not None else Policy()
