"""The extractor's own Prometheus metrics, on the service's injected registry.

Labels are low-cardinality only: system, resource, operation, origin, outcome, reason codes —
never a record id, an e-mail or an event id. API calls and errors by status come from
``CoreMetrics.observe_api`` (the clients' ``on_request`` hook); budgets from ``BudgetCollector``.

Imports: prometheus_client only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ExtractorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "tether_extractor_events",
            "Change events produced and acknowledged",
            ["system", "resource", "operation", "origin"],
            registry=registry,
        )
        self.skipped = Counter(
            "tether_extractor_skipped",
            "Observations not emitted because they were already emitted (overlap, other origin)",
            ["system", "resource", "origin"],
            registry=registry,
        )
        self.poll_seconds = Histogram(
            "tether_extractor_poll_seconds",
            "Duration of one poll cycle of a resource",
            ["system", "resource"],
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.poll_pages = Counter(
            "tether_extractor_poll_pages",
            "Pages read by the pollers",
            ["system", "resource"],
            registry=registry,
        )
        self.dead_letter_repeats = Counter(
            "tether_extractor_dead_letter_repeats_total",
            "Invalid records seen again after their dead letter was parked (not parked again)",
            ["system", "resource"],
            registry=registry,
        )
        self.poll_errors = Counter(
            "tether_extractor_poll_errors",
            "Poll cycles that failed (retried at the next interval)",
            ["system", "resource", "error"],
            registry=registry,
        )
        self.cursor_lag = Gauge(
            "tether_extractor_cursor_lag_seconds",
            "Now minus the poll cursor's position (grows while a resource has no changes)",
            ["system", "resource"],
            registry=registry,
        )
        self.last_poll = Gauge(
            "tether_extractor_last_successful_poll_timestamp_seconds",
            "Unix time of the last completed poll cycle",
            ["system", "resource"],
            registry=registry,
        )
        self.webhooks = Counter(
            "tether_extractor_webhook_deliveries",
            "Webhook deliveries by outcome (accepted, duplicate, rejected, unavailable)",
            ["outcome", "reason"],
            registry=registry,
        )
        self.webhook_seconds = Histogram(
            "tether_extractor_webhook_seconds",
            "Time from receiving a webhook to answering it",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.25, 2.5),
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "tether_extractor_reconcile_seconds",
            "Duration of one reconciliation of a resource",
            ["system", "resource"],
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.reconcile_runs = Counter(
            "tether_extractor_reconcile_runs",
            "Reconciliations by result (completed, failed)",
            ["system", "resource", "result"],
            registry=registry,
        )
        self.drift = Counter(
            "tether_extractor_reconcile_drift",
            "What reconciliation found that the feeds missed (changed, unseen, deleted, merged)",
            ["system", "resource", "kind"],
            registry=registry,
        )
        self.adopted = Counter(
            "tether_extractor_reconcile_adopted",
            "Records learned from a scan without an event (their events expired)",
            ["system", "resource"],
            registry=registry,
        )
        self.delete_candidates = Gauge(
            "tether_extractor_reconcile_delete_candidates",
            "Known records the last scan did not list",
            ["system", "resource"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            "tether_extractor_breaker_open",
            "1 when the last scan's deletes were refused by the circuit breaker",
            ["system", "resource"],
            registry=registry,
        )
        self.breaker_trips = Counter(
            "tether_extractor_breaker_trips",
            "Scans whose deletes the circuit breaker refused",
            ["system", "resource", "reason"],
            registry=registry,
        )
        # The name is older than the connector interface and stays: dashboards and alerts use it.
        self.waiting_for_snapshot = Gauge(
            "tether_extractor_waiting_for_wix_snapshot",
            "1 while extraction waits for the first full snapshot of the system read first",
            registry=registry,
        )
        self.known = Gauge(
            "tether_extractor_known_records",
            "Live records in the known set",
            ["system", "resource"],
            registry=registry,
        )
