"""The loader's Prometheus metrics and the API-call observer its clients report to.

Besides ``CoreMetrics`` (Kafka I/O, dead letters, API requests by system/operation/status and
their latency up to 60 s) and the ``BudgetCollector`` (permits used, time waited, 429s), the
loader exports outcomes by target and status, retries by reason, commands in flight, duplicate
commands skipped, command durations and the size of its completed-commands index (a
connector's target may export its own, e.g. whether a reference field is refused). Labels are
low-cardinality (system, resource, action, status, error class) — never an id; system label
values are the connectors' system names.

``ApiCalls`` is the ``on_request`` hook given to every client: it feeds
``CoreMetrics.observe_api``. The per-command series are reached through ``LabelChildren``
(``outcomes_of``, ``tenant_outcomes_of``, ``command_seconds_of``, ``freshness_of``): each label
child is looked up once, not once per command.

Per tenant (their own series, so the ones above keep their labels): outcomes by tenant, system
and status; commands queued / held / running by tenant (``TenantCollector``); with the registry
on, each tenant's budgets (permits, wait, 429s). The ``tenant`` label value always comes from
one function, ``tenant_label`` (bounded by the caller: the deployment passes core's
``TenantLabels(cap).label``, which folds the tenants past its cap into one value); series of
tenants sharing a label value are summed.

Imports: prometheus_client and the core budget and metrics modules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.core.budget import ApiBudget
from services.core.metrics import API_LATENCY_BUCKETS, CoreMetrics

TenantLabel = Callable[[str], str]

COMMAND_BUCKETS = (*API_LATENCY_BUCKETS, 120, 300)
#: Change-to-target freshness: from a webhook's second to an hour-long outage.
FRESHNESS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Outcome statuses after which the target holds the change (written now, already there, or
#: found as the existing contact).
REFLECTED = frozenset({"CREATED", "APPLIED", "NOOP", "LINKED_EXISTING"})


def _same_tenant(tenant: str) -> str:
    return tenant


_Metric = TypeVar("_Metric", Counter, Histogram)


class LabelChildren(Generic[_Metric]):
    """``metric.labels(*values)`` with each child looked up once: ``labels()`` checks the values,
    converts them and takes the metric's lock — more than the increment it serves, once per
    command. The label sets are the metric's own, so the cache is as bounded as its series."""

    def __init__(self, metric: _Metric) -> None:
        self._metric: _Metric = metric
        self._children: dict[tuple[str, ...], _Metric] = {}

    def __call__(self, *values: str) -> _Metric:
        child = self._children.get(values)
        if child is None:  # two threads may both look it up: labels() returns the same child
            child = self._children[values] = self._metric.labels(*values)
        return child


class LoaderMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        systems: tuple[str, ...] = (),
        tenant_label: TenantLabel = _same_tenant,
    ) -> None:
        self.tenant_label = tenant_label
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
        self.command_seconds_of = LabelChildren(self.command_seconds)
        self.freshness_of = LabelChildren(self.freshness)
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
        self.tenant_outcomes = Counter(
            "tether_loader_tenant_outcomes",
            "Outcomes produced, by tenant",
            ["tenant", "system", "status"],
            registry=registry,
        )
        self.outcomes_of = LabelChildren(self.outcomes)
        self.tenant_outcomes_of = LabelChildren(self.tenant_outcomes)
        self.passed_over = Counter(
            "tether_loader_tenant_passed_over",
            "Commands passed over because their tenant had its share of the read buffer taken "
            "(read again later)",
            ["tenant"],
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


class TenantCollector(Collector):
    """Per-tenant load and budgets, read when scraped.

    ``load()`` yields ``(tenant, state, commands)`` with state ``queued`` (waiting for a worker),
    ``held`` (queued, but the tenant is paused or its breaker open) or ``running``;
    ``budgets()`` yields ``(tenant, budget)``."""

    def __init__(
        self,
        label: TenantLabel,
        load: Callable[[], Iterable[tuple[str, str, int]]],
        budgets: Callable[[], Iterable[tuple[str, ApiBudget]]] = lambda: (),
    ) -> None:
        self._label = label
        self._load = load
        self._budgets = budgets

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        commands = GaugeMetricFamily(
            "tether_loader_tenant_commands",
            "Commands consumed and not finished, by tenant and state (queued, held, running)",
            labels=["tenant", "state"],
        )
        counts: dict[tuple[str, str], float] = defaultdict(float)
        for tenant, state, count in self._load():
            counts[(self._label(tenant), state)] += count
        for labels, value in sorted(counts.items()):
            commands.add_metric(list(labels), value)
        yield commands
        permits = CounterMetricFamily(
            "tether_loader_tenant_api_budget_permits",
            "Permits taken from a tenant's client-side budget",
            labels=["tenant", "budget"],
        )
        waited = CounterMetricFamily(
            "tether_loader_tenant_api_budget_wait_seconds",
            "Time a tenant's commands waited for its budget",
            labels=["tenant", "budget"],
        )
        throttled = CounterMetricFamily(
            "tether_loader_tenant_api_throttled",
            "429 answers a tenant's clients received despite its budget",
            labels=["tenant", "budget"],
        )
        sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for tenant, budget in self._budgets():
            row = sums[(self._label(tenant), budget.name)]
            row[0] += budget.acquired
            row[1] += budget.waited_seconds
            row[2] += budget.throttled_by_api
        for labels, (used, wait, limited) in sorted(sums.items()):
            permits.add_metric(list(labels), used)
            waited.add_metric(list(labels), wait)
            throttled.add_metric(list(labels), limited)
        yield permits
        yield waited
        yield throttled
