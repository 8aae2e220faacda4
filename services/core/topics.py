"""Every Kafka topic Tether uses, named in exactly this one module, and their provisioning.

Nothing else in the code base contains a topic string literal: services ask this module
(``changes_topic("poweroffice", "employees")``), manifests get names from configuration that the
tests cross-check against ``all_topics()``. Topics are created by :func:`provision` with explicit
partitions, retention and cleanup policy — never by broker auto-creation (the local broker runs
with ``auto.create.topics.enable=false``).

Scheme (``<prefix>`` defaults to ``tether``):

- ``<prefix>.changes.<system>.<resource>``   ChangeEvent, key = record identity
- ``<prefix>.commands.<system>.<resource>``  Command, key = link id
- ``<prefix>.outcomes``                      Outcome, key = link id
- ``<prefix>.deadletters.<stage>``           DeadLetter, key = the original key
- ``<prefix>.cursors``                       Cursor, compacted, key = tenant/system/resource/stream
- ``<prefix>.operator-actions``              OperatorAction, key = link id, else record identity,
                                             else review id (``operator_actions.action_key``);
                                             kept ``action_retention_days`` (replayable audit)
- ``<prefix>.tenants``                       Tenant, compacted, key = tenant id: the registry;
                                             ``tenant_partitions`` partitions (the extractor
                                             group shares tenants' work by them)
- ``<prefix>.tenant-status``                 TenantStatus, compacted, key = tenant id
- ``<prefix>.webhooks``                      ForwardedPush, key = tenant id: a push received by an
                                             extractor replica that does not own the tenant,
                                             for the one that does (``tenant_partitions``
                                             partitions: partition N of this topic and of the
                                             tenants topic have one owner); kept one day

Keys on a compacted topic belong to a tenant — its bare id, or ``<tenant>/...``
(:func:`tenant_owns_key`) — so that erasing a tenant can tombstone exactly its keys
(``services.core.tenant_erasure``).

Imports: standard library only; :func:`provision` takes a kafka-python admin client as argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

#: system -> its resources, in topic order. Empty until the wiring installs the connectors'
#: descriptors (``services.core.registry.install``); filled in place.
RESOURCES: dict[str, tuple[str, ...]] = {}
STAGES = ("extractor", "mapper", "loader")

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic with the settings it must be created with."""

    name: str
    partitions: int
    message_type: str  # the Avro message type carried (codec.MESSAGE_TYPES)
    config: tuple[tuple[str, str], ...]

    @property
    def config_dict(self) -> dict[str, str]:
        return dict(self.config)


@dataclass(frozen=True)
class TopicLayout:
    """Topic names and settings for one deployment (prefix and partition counts are settings)."""

    prefix: str = "tether"
    partitions: int = 6
    replication_factor: int = 1
    retention_days: int = 14
    deadletter_retention_days: int = 30
    action_retention_days: int = 365
    #: Partitions of the tenants topic: the most extractor replicas that can share tenants' work.
    tenant_partitions: int = 12

    def changes(self, system: str, resource: str) -> str:
        _check(system, resource)
        return f"{self.prefix}.changes.{system}.{resource}"

    def commands(self, system: str, resource: str) -> str:
        _check(system, resource)
        return f"{self.prefix}.commands.{system}.{resource}"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}.outcomes"

    def deadletters(self, stage: str) -> str:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        return f"{self.prefix}.deadletters.{stage}"

    @property
    def cursors(self) -> str:
        return f"{self.prefix}.cursors"

    @property
    def operator_actions(self) -> str:
        """Operator actions (console/CLI -> mapper)."""
        return f"{self.prefix}.operator-actions"

    @property
    def tenants(self) -> str:
        """The tenant registry (compacted; key = tenant id)."""
        return f"{self.prefix}.tenants"

    @property
    def tenant_status(self) -> str:
        """What each tenant's work is doing (compacted; key = tenant id)."""
        return f"{self.prefix}.tenant-status"

    @property
    def webhooks(self) -> str:
        """Pushes forwarded to the replica that owns their tenant (key = tenant id)."""
        return f"{self.prefix}.webhooks"

    def all_changes(self) -> list[str]:
        return [self.changes(s, r) for s, rs in RESOURCES.items() for r in rs]

    def all_commands(self) -> list[str]:
        return [self.commands(s, r) for s, rs in RESOURCES.items() for r in rs]

    def specs(self) -> list[TopicSpec]:
        retention = (
            ("cleanup.policy", "delete"),
            ("retention.ms", str(self.retention_days * DAY_MS)),
        )
        specs = [
            TopicSpec(t, self.partitions, "ChangeEvent", retention) for t in self.all_changes()
        ]
        specs += [TopicSpec(t, self.partitions, "Command", retention) for t in self.all_commands()]
        specs.append(TopicSpec(self.outcomes, self.partitions, "Outcome", retention))
        dead = (
            ("cleanup.policy", "delete"),
            ("retention.ms", str(self.deadletter_retention_days * DAY_MS)),
        )
        specs += [TopicSpec(self.deadletters(s), 1, "DeadLetter", dead) for s in STAGES]
        actions = (
            ("cleanup.policy", "delete"),
            ("retention.ms", str(self.action_retention_days * DAY_MS)),
        )
        specs.append(TopicSpec(self.operator_actions, self.partitions, "OperatorAction", actions))
        compact = (
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "60000"),
            ("segment.ms", str(DAY_MS)),
        )
        specs.append(TopicSpec(self.cursors, 1, "Cursor", compact))
        specs.append(TopicSpec(self.tenants, self.tenant_partitions, "Tenant", compact))
        specs.append(TopicSpec(self.tenant_status, 1, "TenantStatus", compact))
        # Same partition count as the tenants topic: a tenant's pushes land on the partition
        # number its registration has, so the replica that owns one owns the other.
        forwarded = (("cleanup.policy", "delete"), ("retention.ms", str(DAY_MS)))
        specs.append(TopicSpec(self.webhooks, self.tenant_partitions, "ForwardedPush", forwarded))
        return specs

    def all_topics(self) -> list[str]:
        return [spec.name for spec in self.specs()]

    def compacted_topics(self) -> list[str]:
        """The compacted topics (one live value per key): where erasing a tenant means writing
        tombstones for its keys (``services.core.tenant_erasure``)."""
        return [
            spec.name
            for spec in self.specs()
            if "compact" in spec.config_dict.get("cleanup.policy", "").split(",")
        ]


def _check(system: str, resource: str) -> None:
    if resource not in RESOURCES.get(system, ()):
        raise ValueError(f"unknown system/resource {system}/{resource}")


class AdminClient(Protocol):
    def list_topics(self) -> list[str]: ...
    def create_topics(self, new_topics: list[Any], validate_only: bool = ...) -> Any: ...


def provision(admin: AdminClient, layout: TopicLayout) -> list[str]:
    """Create the topics of ``layout`` that do not exist yet; returns the names it created.

    Idempotent: existing topics are left as they are (never silently altered); several replicas
    may provision at once.
    """
    from kafka.admin import NewTopic  # local import: this module stays importable without kafka
    from kafka.errors import TopicAlreadyExistsError

    existing = set(admin.list_topics())
    missing = [spec for spec in layout.specs() if spec.name not in existing]
    created: list[str] = []
    for spec in missing:
        try:
            admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        layout.replication_factor,
                        topic_configs=spec.config_dict,
                    )
                ]
            )
            created.append(spec.name)
        except TopicAlreadyExistsError:
            pass  # another replica provisioned it between list and create
    return created


def record_key(tenant: str, system: str, resource: str, record_id: str) -> bytes:
    """Message key of a change: the record identity, so one record's changes stay in order."""
    return f"{tenant}/{system}/{resource}/{record_id}".encode()


def link_key(link_id: str) -> bytes:
    """Message key of commands and outcomes: the link id, so writes to one target are ordered."""
    return link_id.encode()


def tenant_key(tenant: str) -> bytes:
    """Message key on the tenants and tenant-status topics: the tenant id."""
    return tenant.encode()


def cursor_key(tenant: str, system: str, resource: str, stream: str) -> bytes:
    """Message key on the compacted cursors topic: one live value per cursor."""
    return f"{tenant}/{system}/{resource}/{stream}".encode()


def tenant_owns_key(tenant: str, key: bytes | None) -> bool:
    """Whether a key on a compacted topic is ``tenant``'s: the bare tenant id (the tenant
    registry and status topics) or a key under it (``<tenant>/...``: cursors). A mere string
    prefix is not enough: tenant ``acme`` owns neither ``acme-2`` nor ``acme-2/...``."""
    if key is None or not tenant:
        return False
    own = tenant.encode()
    return key == own or key.startswith(own + b"/")
