"""The mapper's own Prometheus metrics (the shared ones live in ``services.core.metrics``).

Labels are low-cardinality only: source (``change``/``outcome``), system, resource, result (a
``DecisionKind`` value, ``dead_letter`` or ``replayed``), action, link state, review reason,
property, and ``tenant`` on the per-tenant gauges (links, open review items): the configured
``TETHER_TENANT`` of this mapper, so one value per tenant deployed (docs/operations.md,
"Observability"). Never a record id, link id or value. The hub-first gate's metrics keep the
names they had before the hub was a role (dashboards and alerts use them).

Imports: prometheus_client only.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LINK_STATES = ("active", "creating", "unlinked", "error", "merged")
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class MapperMetrics:
    def __init__(self, registry: CollectorRegistry, tenant: str = "default") -> None:
        self.tenant = tenant
        self.events = Counter(
            "tether_mapper_events",
            "Inputs handled by the mapper, by result (decision kind, dead_letter, replayed)",
            ["source", "system", "result"],
            registry=registry,
        )
        self.commands = Counter(
            "tether_mapper_commands",
            "Commands written to the outbox",
            ["system", "resource", "action"],
            registry=registry,
        )
        self.conflicts = Counter(
            "tether_mapper_conflicts",
            "Property conflicts recorded (edited on several sides since the last sync)",
            ["property", "rule"],
            registry=registry,
        )
        self.deletes_held = Counter(
            "tether_mapper_deletes_held",
            "Delete commands held back by the mass-delete breaker",
            registry=registry,
        )
        self.holds = Counter(
            "tether_mapper_wix_first_holds",
            "Times member changes were held until older hub changes were handled",
            registry=registry,
        )
        self.held = Counter(
            "tether_mapper_wix_first_held_messages",
            "Member change reads held back by the hub-first gate (rewound and read again; "
            "a change held over several polls counts each time)",
            registry=registry,
        )
        self.holding = Gauge(
            "tether_mapper_wix_first_holding",
            "1 while member changes are held (rewound, read again) for older hub changes",
            registry=registry,
        )
        self.processing = Histogram(
            "tether_mapper_processing_seconds",
            "Time to decide and persist one input (inside the batch transaction)",
            ["source"],
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.links = Gauge(
            "tether_mapper_links",
            "Links of this mapper's tenant by state (refreshed periodically from PostgreSQL)",
            ["tenant", "state"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "tether_mapper_outbox_backlog",
            "Outbox rows not yet produced to Kafka",
            registry=registry,
        )
        self.review_open = Gauge(
            "tether_mapper_review_items_open",
            "Open review items of this mapper's tenant by reason",
            ["tenant", "reason"],
            registry=registry,
        )

    def set_link_states(self, counts: Mapping[str, int]) -> None:
        for state in sorted(set(LINK_STATES) | set(counts)):
            self.links.labels(self.tenant, state).set(counts.get(state, 0))

    def set_open_reviews(self, counts: Mapping[str, int], known: tuple[str, ...]) -> None:
        for reason in sorted(set(known) | set(counts)):
            self.review_open.labels(self.tenant, reason).set(counts.get(reason, 0))
