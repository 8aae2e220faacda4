"""The loader's Prometheus metrics and the API-call observer its clients report to.

Besides ``CoreMetrics`` (Kafka I/O, dead letters, API requests by system/operation/status and
their latency up to 60 s) and the ``BudgetCollector`` (permits used, time waited, 429s), the
loader exports outcomes by target and status, retries by reason, commands in flight, duplicate
commands skipped, command durations and the size of its completed-commands index (a
connector's target may export its own, e.g. whether a reference field is refused). Labels are
low-cardinality (system, resource, action, status, error class) — never an id; system label
values are the connectors' system names.

``ApiCalls`` is the ``on_request`` hook given to every client: it feeds
``CoreMetrics.observe_api``.

Imports: prometheus_client and the core metrics module.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.metrics import API_LATENCY_BUCKETS, CoreMetrics

COMMAND_BUCKETS = (*API_LATENCY_BUCKETS, 120, 300)
#: Change-to-target freshness: from a webhook's second to an hour-long outage.
FRESHNESS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Outcome statuses after which the target holds the change (written now, already there, or
#: found as the existing contact).
REFLECTED = frozenset({"CREATED", "APPLIED", "NOOP", "LINKED_EXISTING"})


class LoaderMetrics:
    def __init__(self, registry: CollectorRegistry, *, systems: tuple[str, ...] = ()) -> None:
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
        for system in systems:
            self.freshness.labels(system)  # every target's series exists before its first change
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


class ApiCalls:
    """``on_request(system, operation, status, seconds)`` for the connectors' clients."""

    def __init__(self, metrics: CoreMetrics | None = None) -> None:
        self._metrics = metrics

    def __call__(self, system: str, operation: str, status: int, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_api(system, operation, status, seconds)
