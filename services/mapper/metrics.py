"""The mapper's own Prometheus metrics (the shared ones live in ``services.core.metrics``).

Labels are low-cardinality only: source (``change``/``outcome``), system, resource, result (a
``DecisionKind`` value, ``dead_letter`` or ``replayed``), action, link state, review reason,
property, and ``tenant`` on the per-tenant gauges (links, open review items): every tenant in
the mapper's tables, bounded by ``TenantLabels`` — the first ``TETHER_METRICS_TENANT_CAP``
tenants by id (this mapper's ``TETHER_TENANT`` always among them) have their own value, the
rest are summed into ``_other`` (docs/operations.md, "Observability"). Never a record id, link
id or value. The hub-first gate's metrics keep the names they had before the hub was a role
(dashboards and alerts use them).

Imports: prometheus_client and core's tenant labels only.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.tenant_labels import TenantLabels

LINK_STATES = ("active", "creating", "unlinked", "error", "merged")
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class MapperMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        tenant: str = "default",
        tenant_labels: TenantLabels | None = None,
    ) -> None:
        self.tenant = tenant
        self.tenant_labels = tenant_labels if tenant_labels is not None else TenantLabels()
        self.tenant_labels.label(tenant)  # the mapper's own tenant first: it is never _other
        # (tenant label, state or reason) series exported by the last refresh of each gauge
        self._exported: dict[str, set[tuple[str, str]]] = {"links": set(), "reviews": set()}
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
            "Links by tenant and state (refreshed periodically from PostgreSQL; tenants beyond "
            "the cap summed into tenant=_other)",
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
            "Open review items by tenant and reason (tenants beyond the cap in tenant=_other)",
            ["tenant", "reason"],
            registry=registry,
        )

    def set_link_states(self, counts: Mapping[tuple[str, str], int]) -> None:
        """``counts``: (tenant, state) -> links, every tenant (one grouped query)."""
        self._refresh(self.links, "links", counts, LINK_STATES)

    def set_open_reviews(
        self, counts: Mapping[tuple[str, str], int], known: tuple[str, ...]
    ) -> None:
        """``counts``: (tenant, reason) -> open review items, every tenant."""
        self._refresh(self.review_open, "reviews", counts, known)

    def _refresh(
        self,
        gauge: Gauge,
        name: str,
        counts: Mapping[tuple[str, str], int],
        known: tuple[str, ...],
    ) -> None:
        """Set one series per (tenant label, value): every known value (0 when absent) for
        this mapper's tenant and every tenant with rows; drop the series of tenants gone."""
        totals = self.tenant_labels.sum_by_label(counts)
        tenants = {self.tenant_labels.label(self.tenant)} | {label for label, _ in totals}
        values = set(known) | {value for _, value in totals}
        series = {(label, value) for label in tenants for value in values}
        for label, value in sorted(self._exported[name] - series):
            gauge.remove(label, value)
        for label, value in sorted(series):
            gauge.labels(label, value).set(totals.get((label, value), 0))
        self._exported[name] = series
