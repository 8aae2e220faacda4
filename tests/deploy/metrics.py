"""The metric names the services export and the ones the rules and the dashboard use.

``exported()`` builds every metrics class of the services on a fresh registry and lists the
sample names Prometheus will see (counters get ``_total``, histograms ``_bucket``/``_sum``/
``_count``). ``referenced()`` finds the ``tether_*`` names and recording-rule names in PromQL.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from services.console.metrics import ConsoleMetrics
from services.core.budget import ApiBudget
from services.core.metrics import BudgetCollector, CoreMetrics
from services.extractor.metrics import ExtractorMetrics
from services.loader.metrics import LoaderMetrics
from services.mapper.metrics import MapperMetrics
from services.verify.metrics import VerifyMetrics

from .manifests import ROOT

RULES = ROOT / "deploy" / "prometheus" / "tether-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tether-rules.test.yml"
COMPOSE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tether.json"

_METRIC = re.compile(r"\btether_[a-z0-9_]+\b")
_RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+), *(?P<label>\w+)\)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    registry = CollectorRegistry()
    CoreMetrics(registry, "probe")
    ExtractorMetrics(registry)
    MapperMetrics(registry)
    LoaderMetrics(registry)
    VerifyMetrics(registry)
    ConsoleMetrics(registry)
    registry.register(BudgetCollector([ApiBudget("probe", 1)]))
    names = set()
    for family in registry.collect():
        for suffix in SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def variable_selectors() -> dict[str, str]:
    """Query variable name -> the series selector its ``label_values(selector, label)`` reads."""
    found = {}
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            matched = _LABEL_VALUES.fullmatch(variable["definition"])
            assert matched, variable["definition"]
            found[variable["name"]] = matched["selector"]
    return found


def referenced(expr: str) -> tuple[set[str], set[str]]:
    """(tether_* metric names, recording-rule names) an expression uses."""
    recorded_names = set(_RECORDED.findall(expr))
    return set(_METRIC.findall(_RECORDED.sub(" ", expr))), recorded_names
