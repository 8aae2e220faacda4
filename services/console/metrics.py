"""The console's Prometheus metrics (low cardinality: route templates, roles, action kinds —
never a link id, a record id, a token or a caller's name).

* ``tether_console_requests_total{route,method,status}`` and
  ``tether_console_request_seconds{route}`` — every API and page request, by route template
  (``/api/v1/links/{link_id}``, not the id);
* ``tether_console_auth_failures_total{reason}`` — ``missing``, ``invalid``, ``forbidden`` (a
  read-only caller asked for an action or personal data), ``csrf``, ``rate_limited``;
* ``tether_console_actions_total{kind,result}`` — operator actions: ``published`` (acknowledged
  by Kafka), ``refused`` (validation), ``failed`` (Kafka did not acknowledge);
* ``tether_console_redriven_total{stage}`` — dead letters re-driven from the console.

Every label child an alert or panel selects is created at start-up (value 0), so that
``rate``/``increase`` over it have a series before the first failure.

Imports: prometheus_client and ``services.core.operator_actions`` (the action kinds).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.core.operator_actions import ActionKind

AUTH_FAILURE_REASONS = ("missing", "invalid", "forbidden", "csrf", "rate_limited")
ACTION_RESULTS = ("published", "refused", "failed")


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tether_console_requests",
            "Console requests (API and pages) by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "tether_console_request_seconds",
            "Console request latency by route template",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.auth_failures = Counter(
            "tether_console_auth_failures",
            "Requests refused by authentication, role, CSRF or rate limits",
            ["reason"],
            registry=registry,
        )
        self.actions = Counter(
            "tether_console_actions",
            "Operator actions requested through the console API, by kind and result",
            ["kind", "result"],
            registry=registry,
        )
        self.redriven = Counter(
            "tether_console_redriven",
            "Dead letters re-driven into their stage from the console",
            ["stage"],
            registry=registry,
        )
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        for kind in ActionKind.__members__:  # the label actions.py uses: the member's name
            for result in ACTION_RESULTS:
                self.actions.labels(kind, result)
