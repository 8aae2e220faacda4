"""The loader's Prometheus metrics and the API-call observer its clients report to.

Besides ``CoreMetrics`` (Kafka I/O, dead letters, API requests by system/operation/status and
their latency up to 60 s) and the ``BudgetCollector`` (permits used, time waited, 429s), the
loader exports outcomes by target and status, retries by reason, commands in flight, duplicate
commands skipped, command durations and the size of its completed-commands index, and whether
the Wix ``tether-link-id`` extended field is refused (``WixLinkFieldMetrics``). Labels are
low-cardinality (system, resource, action, status, error class) — never an id.

``ApiCalls`` is the ``on_request`` hook given to both clients: it feeds
``CoreMetrics.observe_api`` and lets the thread applying one command see the calls it made
(``capture``) — the PowerOffice client re-reads a record itself when a guarded patch is refused,
and the calls tell the loader that the write was a no-op.

Imports: prometheus_client and the core metrics module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.metrics import API_LATENCY_BUCKETS, CoreMetrics

COMMAND_BUCKETS = (*API_LATENCY_BUCKETS, 120, 300)
#: Change-to-target freshness: from a webhook's second to an hour-long outage.
FRESHNESS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Outcome statuses after which the target holds the change (written now, already there, or
#: found as the existing contact).
REFLECTED = frozenset({"CREATED", "APPLIED", "NOOP", "LINKED_EXISTING"})


class LoaderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "tether_loader_outcomes",
            "Outcomes produced",
            ["system", "resource", "action", "status"],
            registry=registry,
        )
        self.retries = Counter(
            "tether_loader_retries",
            "Command attempts retried after a transient error",
            ["system", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "tether_loader_duplicate_commands",
            "Commands skipped because their command_id already has an outcome",
            registry=registry,
        )
        self.in_flight = Gauge(
            "tether_loader_in_flight",
            "Commands consumed whose outcome is not produced yet",
            registry=registry,
        )
        self.command_seconds = Histogram(
            "tether_loader_command_seconds",
            "Time to apply one command, retries included",
            ["system", "action"],
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self.freshness = Histogram(
            "tether_loader_change_to_target_seconds",
            "From a live change at its source (the command's cause_changed_at) to the moment "
            "the target holds it; snapshot records and outcome-driven writes are not counted",
            ["system"],
            buckets=FRESHNESS_BUCKETS,
            registry=registry,
        )
        for system in ("poweroffice", "wix"):
            self.freshness.labels(system)  # both series exist before the first change
        self.completed_index = Gauge(
            "tether_loader_completed_commands",
            "Command ids known to have an outcome (the de-duplication index)",
            registry=registry,
        )
        self.commit_failures = Counter(
            "tether_loader_commit_failures",
            "Offset commits that failed (retried with the next commit)",
            registry=registry,
        )
        self.consumer_restarts = Counter(
            "tether_loader_consumer_restarts",
            "Group consumers replaced after holding no partition for too long",
            registry=registry,
        )
        self.abandoned = Counter(
            "tether_loader_abandoned_commands",
            "Commands left without an outcome at shutdown (re-delivered on restart)",
            registry=registry,
        )


class WixLinkFieldMetrics:
    """Whether keyless Wix contacts can carry the ``tether-link-id`` extended field
    (``targets.WixTarget``): a refusal is exported once per cached period, not per record."""

    REASONS = ("permission_denied", "not_found", "unavailable")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.unavailable = Gauge(
            "tether_loader_wix_link_field_unavailable",
            "1 while the Wix Extended Fields API refuses the tether-link-id field, by reason "
            "(permission_denied: the API key lacks the permission; not_found; unavailable: 5xx "
            "or no answer); keyless contacts are then created by the name-only fallback",
            ["reason"],
            registry=registry,
        )
        self.fallback_creates = Counter(
            "tether_loader_wix_fallback_creates",
            "Keyless Wix contacts handled without the tether-link-id field (created, or found "
            "again after a lost answer)",
            ["how"],
            registry=registry,
        )
        self.clear()

    def refused(self, reason: str) -> None:
        for known in self.REASONS:
            self.unavailable.labels(known).set(1 if known == reason else 0)

    def clear(self) -> None:
        for known in self.REASONS:
            self.unavailable.labels(known).set(0)

    def fallback(self, how: str) -> None:
        self.fallback_creates.labels(how).inc()


class ApiCalls:
    """``on_request(system, operation, status, seconds)`` for the connectors' clients."""

    def __init__(self, metrics: CoreMetrics | None = None) -> None:
        self._metrics = metrics
        self._local = threading.local()

    def __call__(self, system: str, operation: str, status: int, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_api(system, operation, status, seconds)
        calls: list[tuple[str, int]] | None = getattr(self._local, "calls", None)
        if calls is not None:
            calls.append((operation, status))

    @contextmanager
    def capture(self) -> Iterator[list[tuple[str, int]]]:
        """The ``(operation, status)`` of every request this thread makes inside the block."""
        previous = getattr(self._local, "calls", None)
        calls: list[tuple[str, int]] = []
        self._local.calls = calls
        try:
            yield calls
        finally:
            self._local.calls = previous
