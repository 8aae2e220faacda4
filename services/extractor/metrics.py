"""The extractor's own Prometheus metrics, on the service's injected registry.

Labels are low-cardinality only: system, resource, operation, origin, outcome, reason codes —
never a record id, an e-mail or an event id. An extractor that serves the tenants of the registry
(``fleet.py``) labels every per-tenant series with ``tenant`` too (``by_tenant=True``; the value
comes from the fleet's bounded tenant labels); one tenant's code sees its series through
:meth:`ExtractorMetrics.for_tenant`, which puts the tenant's label value first, so the code that
counts is the same in both modes. API calls and errors by status come from
``CoreMetrics.observe_api`` (the clients' ``on_request`` hook); budgets from ``BudgetCollector``.

Imports: prometheus_client only.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Family(Generic[M]):
    """A metric family as one tenant's code sees it: ``labels(...)`` adds the bound label values
    (the tenant's, when the service labels by tenant) in front of the given ones."""

    def __init__(self, metric: M, bound: tuple[str, ...] = ()) -> None:
        self.metric = metric
        self.bound = bound

    def labels(self, *values: str) -> M:
        full = (*self.bound, *values)
        return self.metric.labels(*full) if full else self.metric

    def remove(self, *values: str) -> None:
        """Forget one series (a tenant that left this replica)."""
        with contextlib.suppress(KeyError):  # never set
            self.metric.remove(*self.bound, *values)

    def bind(self, label: str) -> Family[M]:
        return Family(self.metric, (*self.bound, label))


class ExtractorMetrics:
    def __init__(self, registry: CollectorRegistry, *, by_tenant: bool = False) -> None:
        t = ["tenant"] if by_tenant else []
        self.events: Family[Counter] = Family(
            Counter(
                "tether_extractor_events",
                "Change events produced and acknowledged",
                [*t, "system", "resource", "operation", "origin"],
                registry=registry,
            )
        )
        self.skipped: Family[Counter] = Family(
            Counter(
                "tether_extractor_skipped",
                "Observations not emitted because they were already emitted "
                "(overlap, other origin)",
                [*t, "system", "resource", "origin"],
                registry=registry,
            )
        )
        self.poll_seconds: Family[Histogram] = Family(
            Histogram(
                "tether_extractor_poll_seconds",
                "Duration of one poll cycle of a resource",
                [*t, "system", "resource"],
                buckets=POLL_BUCKETS,
                registry=registry,
            )
        )
        self.poll_pages: Family[Counter] = Family(
            Counter(
                "tether_extractor_poll_pages",
                "Pages read by the pollers",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.dead_letter_repeats: Family[Counter] = Family(
            Counter(
                "tether_extractor_dead_letter_repeats_total",
                "Invalid records seen again after their dead letter was parked (not parked again)",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.poll_errors: Family[Counter] = Family(
            Counter(
                "tether_extractor_poll_errors",
                "Poll cycles that failed (retried at the next interval)",
                [*t, "system", "resource", "error"],
                registry=registry,
            )
        )
        self.cursor_lag: Family[Gauge] = Family(
            Gauge(
                "tether_extractor_cursor_lag_seconds",
                "Now minus the poll cursor's position (grows while a resource has no changes)",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.last_poll: Family[Gauge] = Family(
            Gauge(
                "tether_extractor_last_successful_poll_timestamp_seconds",
                "Unix time of the last completed poll cycle",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.webhooks: Family[Counter] = Family(
            Counter(
                "tether_extractor_webhook_deliveries",
                "Webhook deliveries by outcome (accepted, duplicate, rejected, unavailable)",
                ["outcome", "reason"],
                registry=registry,
            )
        )
        self.webhook_seconds: Family[Histogram] = Family(
            Histogram(
                "tether_extractor_webhook_seconds",
                "Time from receiving a webhook to answering it",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.25, 2.5),
                registry=registry,
            )
        )
        self.reconcile_seconds: Family[Histogram] = Family(
            Histogram(
                "tether_extractor_reconcile_seconds",
                "Duration of one reconciliation of a resource",
                [*t, "system", "resource"],
                buckets=POLL_BUCKETS,
                registry=registry,
            )
        )
        self.reconcile_runs: Family[Counter] = Family(
            Counter(
                "tether_extractor_reconcile_runs",
                "Reconciliations by result (completed, failed)",
                [*t, "system", "resource", "result"],
                registry=registry,
            )
        )
        self.drift: Family[Counter] = Family(
            Counter(
                "tether_extractor_reconcile_drift",
                "What reconciliation found that the feeds missed "
                "(changed, unseen, deleted, merged)",
                [*t, "system", "resource", "kind"],
                registry=registry,
            )
        )
        self.adopted: Family[Counter] = Family(
            Counter(
                "tether_extractor_reconcile_adopted",
                "Records learned from a scan without an event (their events expired)",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.delete_candidates: Family[Gauge] = Family(
            Gauge(
                "tether_extractor_reconcile_delete_candidates",
                "Known records the last scan did not list",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.breaker_open: Family[Gauge] = Family(
            Gauge(
                "tether_extractor_breaker_open",
                "1 when the last scan's deletes were refused by the circuit breaker",
                [*t, "system", "resource"],
                registry=registry,
            )
        )
        self.breaker_trips: Family[Counter] = Family(
            Counter(
                "tether_extractor_breaker_trips",
                "Scans whose deletes the circuit breaker refused",
                [*t, "system", "resource", "reason"],
                registry=registry,
            )
        )
        # The name is older than the connector interface and stays: dashboards and alerts use it.
        self.waiting_for_snapshot: Family[Gauge] = Family(
            Gauge(
                "tether_extractor_waiting_for_wix_snapshot",
                "1 while extraction waits for the first full snapshot of the system read first",
                t,
                registry=registry,
            )
        )
        self.known: Family[Gauge] = Family(
            Gauge(
                "tether_extractor_known_records",
                "Live records in the known set",
                [*t, "system", "resource"],
                registry=registry,
            )
        )

    def for_tenant(self, label: str) -> ExtractorMetrics:
        """The same families with ``label`` (a tenant's label value) bound first."""
        bound = copy.copy(self)
        for name, family in vars(self).items():
            # Process-wide families (the webhook route's) take no tenant label.
            setattr(bound, name, family.bind(label) if name not in PROCESS_WIDE else family)
        return bound


PROCESS_WIDE = frozenset({"webhooks", "webhook_seconds"})
"""Families of the whole process: a delivery is counted before its tenant is known."""
