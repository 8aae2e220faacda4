"""Prometheus metrics every service shares, registered on an injected registry.

Labels are low-cardinality by rule: system, resource, operation, status class, stage, reason
code — never a record id, link id or e-mail. Each service builds one ``CollectorRegistry``,
passes it here and to its own service-specific metrics, and serves it on ``/metrics``.
``CoreMetrics`` also registers the process (CPU, memory, open files), platform (Python version)
and garbage-collector collectors of prometheus_client on that registry, and labels
``tether_service_info`` with the installed version.

Imports: prometheus_client and the core budget and breaker modules only.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.core.breaker import Breakers
from services.core.budget import ApiBudget

#: Latency buckets for API calls: from fast loopback answers up to a minute of 429 back-off.
API_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def installed_version() -> str:
    """The installed ``tether`` distribution's version; "unknown" run from a bare source tree."""
    try:
        return importlib.metadata.version("tether")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class CoreMetrics:
    """Metrics of the shared machinery: Kafka I/O, dead letters, API calls, loop timing, and
    the process itself (``process_*``, ``python_info``, ``python_gc_*``)."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        # The runtime collectors prometheus_client registers on its global default registry;
        # each service serves its own registry, so they are registered here (once per registry).
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)  # registers nothing where gc.get_stats() is missing
        self.consumed = Counter(
            "tether_messages_consumed", "Messages consumed", ["topic"], registry=registry
        )
        self.produced = Counter(
            "tether_messages_produced", "Messages produced", ["topic"], registry=registry
        )
        self.dead_letters = Counter(
            "tether_dead_letters",
            "Inputs turned into dead letters",
            ["stage", "reason"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "tether_batch_seconds",
            "Time to process one polled batch end to end",
            registry=registry,
        )
        self.api_requests = Counter(
            "tether_api_requests",
            "SaaS API requests",
            ["system", "operation", "status"],
            registry=registry,
        )
        self.api_seconds = Histogram(
            "tether_api_request_seconds",
            "SaaS API request latency",
            ["system", "operation"],
            buckets=API_LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "tether_consumer_lag_messages",
            "Messages between this consumer's position and the partition's end (the broker's "
            "log end offset where the service detects stalls, else the high watermark of its "
            "last fetch), per consumer group and owned partition",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.partition_stalled = Gauge(
            "tether_consumer_partition_stalled",
            "1 while an owned partition has lag and its position has not advanced for "
            "stall_after_seconds (services/core/progress.py), else 0",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.partition_seconds_since_advance = Gauge(
            "tether_consumer_partition_seconds_since_advance",
            "Seconds since an owned partition's position last advanced while it had lag "
            "(0 without lag)",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.info = Gauge(
            "tether_service_info",
            "Constant 1, labelled with the service name and the installed Tether version",
            ["service", "version"],
            registry=registry,
        )
        self.version = installed_version()
        self.info.labels(service=service, version=self.version).set(1)

    def observe_api(self, system: str, operation: str, status: int | str, seconds: float) -> None:
        """Observer for the connectors' ``on_request`` hook."""
        self.api_requests.labels(system, operation, str(status)).inc()
        self.api_seconds.labels(system, operation).observe(seconds)


class BudgetCollector(Collector):
    """Exports how much of each API budget a service used, and how long it waited for it."""

    def __init__(self, budgets: Iterable[ApiBudget]) -> None:
        self.budgets = list(budgets)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        used = CounterMetricFamily(
            "tether_api_budget_permits",
            "Permits taken from the client-side budget",
            labels=["budget"],
        )
        waited = CounterMetricFamily(
            "tether_api_budget_wait_seconds", "Time spent waiting for budget", labels=["budget"]
        )
        throttled = CounterMetricFamily(
            "tether_api_throttled", "429 answers received despite the budget", labels=["budget"]
        )
        limit = GaugeMetricFamily(
            "tether_api_budget_rate",
            "Configured budget in requests per second (0 = lifted)",
            labels=["budget"],
        )
        effective = GaugeMetricFamily(
            "tether_api_budget_effective_rate",
            "Requests per second the budget allows now: the configured rate, lower after 429s "
            "(0 = lifted)",
            labels=["budget"],
        )
        cuts = CounterMetricFamily(
            "tether_api_budget_cuts", "Times a 429 lowered the budget's rate", labels=["budget"]
        )
        shared = GaugeMetricFamily(
            "tether_api_budget_shared",
            "1 for a budget shared by every replica (TETHER_SHARED_BUDGETS), labelled with the "
            "non-reversible key of the credential it counts against",
            labels=["budget", "credential"],
        )
        for budget in self.budgets:
            used.add_metric([budget.name], budget.acquired)
            waited.add_metric([budget.name], budget.waited_seconds)
            throttled.add_metric([budget.name], budget.throttled_by_api)
            limit.add_metric([budget.name], budget.rate_per_second if budget.limited else 0.0)
            effective.add_metric(
                [budget.name], budget.effective_rate_per_second if budget.limited else 0.0
            )
            cuts.add_metric([budget.name], budget.cuts)
            if budget.credential is not None:
                shared.add_metric([budget.name, budget.credential], 1.0)
        yield used
        yield waited
        yield throttled
        yield limit
        yield effective
        yield cuts
        yield shared


class BreakerCollector(Collector):
    """Exports every per-tenant breaker of a process: open (1, half-open included) or closed (0),
    and how often it opened. ``label`` maps a tenant to its label value (bounded by the caller,
    e.g. ``TenantLabels(cap).label``); tenants sharing a value are summed: how many are open."""

    def __init__(self, breakers: Breakers, label: Callable[[str], str] = lambda t: t) -> None:
        self.breakers = breakers
        self.label = label

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        is_open = GaugeMetricFamily(
            "tether_tenant_breaker_open",
            "1 while a tenant's calls to a system are held by its circuit breaker",
            labels=["tenant", "system"],
        )
        opens = CounterMetricFamily(
            "tether_tenant_breaker_opens",
            "Times a tenant's circuit breaker for a system opened",
            labels=["tenant", "system"],
        )
        open_by: dict[tuple[str, str], float] = {}
        opens_by: dict[tuple[str, str], float] = {}
        for breaker in self.breakers:
            state = breaker.state
            key = (self.label(breaker.tenant), breaker.system)
            open_by[key] = open_by.get(key, 0.0) + (0.0 if state.phase == "closed" else 1.0)
            opens_by[key] = opens_by.get(key, 0.0) + state.opens
        for key, value in open_by.items():
            is_open.add_metric(list(key), value)
            opens.add_metric(list(key), opens_by[key])
        yield is_open
        yield opens
