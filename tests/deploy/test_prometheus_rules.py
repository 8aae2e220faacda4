"""Prometheus rules, their unit tests, the compose scrape config and the Grafana dashboard,
checked offline: promtool, and every metric name against what the services really export."""

from __future__ import annotations

import re
import subprocess

import pytest

from .metrics import (
    COMPOSE_CONFIG,
    RULE_TESTS,
    RULES,
    dashboard,
    exported,
    panel_queries,
    recorded,
    referenced,
    rules,
    variable_selectors,
)


def _promtool(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_promtool_checks_the_rules_and_the_compose_config(promtool: str) -> None:
    assert "SUCCESS" in _promtool(promtool, "check", "rules", str(RULES))
    assert "SUCCESS" in _promtool(promtool, "check", "config", str(COMPOSE_CONFIG))


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    out = _promtool(promtool, "test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in out


def _heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub (and most Markdown renderers) give the ``###`` headings of a page:
    lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("### "):
            text = re.sub(r"[^\w\- ]", "", line[4:].strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_heading_anchors_are_the_rendered_ones() -> None:
    assert _heading_anchors("## Alerts\n### TetherServiceDown\n### `Two` words, here\n") == {
        "tetherservicedown",
        "two-words-here",
    }


def test_every_alert_has_a_unit_test_and_a_runbook_url_to_its_operations_entry() -> None:
    tests = RULE_TESTS.read_text()
    anchors = _heading_anchors((RULES.parents[2] / "docs" / "operations.md").read_text())
    alerts = [rule for rule in rules() if "alert" in rule]
    assert len(alerts) >= 6
    for alert in alerts:
        assert f"alertname: {alert['alert']}" in tests, alert["alert"]
        url = alert["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md", (alert["alert"], url)
        assert anchor in anchors, (alert["alert"], anchor)
        # The unit test expects the annotation too (promtool compares annotations exactly).
        assert f"runbook_url: {url}" in tests, alert["alert"]


def test_rules_and_dashboard_use_only_exported_metrics_and_recorded_series() -> None:
    names = exported()
    records = recorded()
    expressions = [("rule " + r.get("record", r.get("alert", "")), r["expr"]) for r in rules()]
    expressions += panel_queries()
    used: set[str] = set()
    for where, expr in expressions:
        metrics, recorded_names = referenced(expr)
        assert metrics <= names, (where, metrics - names)
        assert recorded_names <= records, (where, recorded_names - records)
        used |= metrics
    # The dashboard covers every stage's own metrics.
    for prefix in (
        "tether_extractor_",
        "tether_mapper_",
        "tether_loader_",
        "tether_api_",
        "tether_console_",
    ):
        assert any(name.startswith(prefix) for name in used), prefix


@pytest.mark.parametrize(
    "topic",
    [
        "throughput",
        "freshness",
        "lag",
        "budget",
        "429",
        "dead letters",
        "echo",
        "links by state",
        "review",
        "drift",
        "breaker",
        "divergent links",
        "console api requests",
        "operator actions",
    ],
)
def test_the_dashboard_answers_the_operators_questions(topic: str) -> None:
    titles = " | ".join(
        f"{p['title']} {p.get('description', '')}".lower() for p in dashboard()["panels"]
    )
    assert topic in titles


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"]
    assert board["templating"]["list"][0]["type"] == "datasource"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


#: The metrics with a ``tenant`` label (docs/operations.md "Observability").
TENANT_LABELLED = {
    "tether_mapper_links",
    "tether_mapper_review_items_open",
    "tether_links_divergent",
    "tether_verify_links",
}


def test_the_tenant_variable_filters_every_panel_on_a_metric_with_a_tenant_label() -> None:
    assert exported() >= TENANT_LABELLED
    [tenant] = [v for v in dashboard()["templating"]["list"] if v["name"] == "tenant"]
    assert tenant["includeAll"] and tenant["multi"] and tenant["allValue"] == ".*"
    assert tenant["datasource"]["uid"] == "${datasource}"
    selector_metrics, _ = referenced(variable_selectors()["tenant"])
    assert selector_metrics and selector_metrics <= TENANT_LABELLED
    filtered = 0
    for title, expr in panel_queries():
        for metric in referenced(expr)[0] & TENANT_LABELLED:
            assert re.search(rf'{metric}{{[^}}]*tenant=~"\$tenant"', expr), (title, expr)
            filtered += 1
    assert filtered >= 3
