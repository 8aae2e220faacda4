"""A real Prometheus scrapes the three running services, the verifier and the console during a
small sync; every dashboard query and every recording/alert rule expression returns data.

The stack is the lead's ``services.demo.stack.Stack`` (simulators + services as processes, own
topics and database) with the APIs' real budgets (so budget use has a denominator), webhooks on
and a 5 s first reconciliation (so the breaker and drift series exist). One garbage message on a
change topic makes the mapper park a dead letter. Prometheus is Debian's binary on loopback with
a 1 s scrape and evaluation interval and the real rule file (group intervals set to 1 s). The
console gets an operator's requests, a wrong token and a read-only caller's refused action.

Alert expressions return data only while firing, so their operands are checked
(``promql.operands``: comparison removed, ``absent(X)`` -> ``X``) — and that none fires. The
probe paths of the manifests are checked on the running services too.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from kafka import KafkaProducer

from services.connectors.seed import generate
from services.core.topics import TopicLayout, record_key
from services.demo.main import make_edits, wait_for_sync
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack

from .manifests import containers, rendered, workloads
from .metrics import RULES, panel_queries, rules, variable_selectors
from .promql import operands

pytestmark = pytest.mark.integration

RECORDS = 40
PARTITIONS = 3  # what Stack configures
GRAFANA_VARIABLES = {
    "$__rate_interval": "30s",
    "$__interval": "5s",
    "${datasource}": "",
    "$tenant": ".*",  # the tenant variable's "All"
}
DEADLINE_SECONDS = 75.0
#: The console's callers (``Stack.start_console``): name -> role, then name -> token.
CALLERS = {"operator": "operator", "viewer": "read"}
TOKENS: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack(infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    the_stack = Stack(
        infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        infra_env["TETHER_POSTGRES_DSN"],
        tmp_path_factory.mktemp("prometheus-e2e"),
        lift_limits=False,
        extra_env={
            "TETHER_RECONCILE_INTERVAL_SECONDS": "5",
            "TETHER_POWEROFFICE_POLL_INTERVAL_SECONDS": "2",
            "TETHER_WIX_POLL_INTERVAL_SECONDS": "2",
        },
    )
    the_stack.create_database()
    try:
        the_stack.start_simulators()
        data = generate(RECORDS, seed=5)
        seeded = seed_simulators(data, the_stack.poweroffice_url, the_stack.wix_url)
        the_stack.provision_topics()
        the_stack.start_services()
        the_stack.start_verify()
        TOKENS.update(the_stack.start_console(CALLERS))
        counts = seeded.counts()
        total = counts["employees"] + counts["customers"] + counts["contact_persons"]
        layout = TopicLayout(prefix=the_stack.topic_prefix, partitions=PARTITIONS)
        wait_for_sync(the_stack, layout, total, timeout=120)
        # Live edits on both sides after the snapshot: change-to-target freshness gets data.
        edits = make_edits(the_stack, 4, random.Random(3), timeout=60)
        assert edits["edits_not_propagated"] == [], edits
        yield the_stack
    finally:
        the_stack.stop()
        the_stack.drop_database()


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    groups = yaml.safe_load(RULES.read_text())
    for group in groups["groups"]:
        group["interval"] = "1s"
    (workdir / "rules.yml").write_text(yaml.safe_dump(groups))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {
                "job_name": name,
                "static_configs": [{"targets": [f"127.0.0.1:{stack.ports[name]}"]}],
            }
            for name in (*SERVICES, "verify", "console")
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def _grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def park_a_dead_letter(stack: Stack) -> None:
    layout = TopicLayout(prefix=stack.topic_prefix, partitions=PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    try:
        key = record_key("default", "wix", "contacts", "garbage")
        producer.send(layout.changes("wix", "contacts"), key=key, value=b"not avro").get(30)
    finally:
        producer.close()


def use_the_console(stack: Stack) -> None:
    """Requests the console's panels and alerts are about: an operator's pages and API calls, a
    wrong token (refused: invalid), and a read-only caller's action (refused: forbidden)."""
    url = stack.console_url
    operator = {"authorization": f"Bearer {TOKENS['operator']}"}
    for path in ("/api/v1/overview", "/api/v1/links", "/api/v1/review-items"):
        assert httpx.get(f"{url}{path}", headers=operator, timeout=30).status_code == 200
    wrong = {"authorization": "Bearer not-the-token-of-anyone-here"}
    assert httpx.get(f"{url}/api/v1/overview", headers=wrong, timeout=10).status_code == 401
    viewer = {"authorization": f"Bearer {TOKENS['viewer']}"}
    action = {"kind": "UNLINK", "link_id": "x", "reason": "test", "idempotency_key": "k1"}
    refused = httpx.post(f"{url}/api/v1/actions", headers=viewer, json=action, timeout=10)
    assert refused.status_code == 403


def test_every_dashboard_query_and_rule_expression_returns_data(
    stack: Stack, prometheus: str
) -> None:
    park_a_dead_letter(stack)
    use_the_console(stack)
    expressions: dict[str, str] = {}
    for title, expr in panel_queries():
        expressions[f"panel {title!r}: {expr}"] = _grafana(expr)
    for name, selector in variable_selectors().items():
        expressions[f"variable {name}: {selector}"] = selector
    for rule in rules():
        if "record" in rule:
            expressions[f"recorded {rule['record']}"] = rule["record"]
            expressions[f"record {rule['record']}: {rule['expr']}"] = rule["expr"]
        else:
            for operand in operands(rule["expr"]):
                expressions[f"alert {rule['alert']}: {operand}"] = operand
    assert len(expressions) >= 60
    missing = dict(expressions)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while missing and time.monotonic() < deadline:
        for where, expr in list(missing.items()):
            if _query(prometheus, expr):
                del missing[where]
        time.sleep(1)
    assert not missing, sorted(missing)
    # The edits were measured end to end (snapshot records are not: they are not live changes).
    measured = _query(prometheus, "sum(tether_loader_change_to_target_seconds_count)")
    assert float(measured[0]["value"][1]) >= 4, measured
    # The dead letter was seen, and nothing is alerting on a healthy pipeline but it.
    assert _query(prometheus, 'tether_dead_letters_total{stage="mapper"}')
    firing = [
        r["metric"]["alertname"]
        for r in _query(prometheus, 'ALERTS{alertstate="firing"}')
        if r["metric"]["alertname"] != "TetherDeadLettersRising"
    ]
    assert firing == []


def test_the_manifests_probe_paths_are_served_by_the_running_services(stack: Stack) -> None:
    checked = 0
    for doc, spec in workloads(rendered("production")):
        if doc["kind"] != "Deployment":
            continue
        name = doc["metadata"]["name"].removeprefix("tether-")
        for container in containers(spec):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                path = container[probe]["httpGet"]["path"]
                answer = httpx.get(f"{stack.service_url(name)}{path}", timeout=5)
                assert answer.status_code == 200, (name, path, answer.text)
                checked += 1
            metrics = httpx.get(f"{stack.service_url(name)}/metrics", timeout=5)
            assert metrics.status_code == 200 and "tether_service_info" in metrics.text
    assert checked == 15  # extractor, mapper, loader, verify, console
