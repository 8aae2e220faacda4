"""Generated manifests are current, and what they name is what the code names.

- the committed KafkaTopic files equal what ``scripts/generate_k8s_topics.py`` generates from
  ``TopicLayout`` now; each file's layout parameters equal its overlay's ``tether-common``
  ConfigMap, and the topics in the rendered overlay are exactly ``TopicLayout.all_topics()``;
- the committed PrometheusRule equals ``deploy/prometheus/tether-rules.yml``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml

from services.core.topics import TopicLayout

from .manifests import ROOT, find, rendered

DASHBOARDS_CONFIG_MAP = "tether-grafana-dashboards"


def _script(name: str) -> ModuleType:
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_committed_kafka_topics_are_generated_from_the_topic_layout() -> None:
    generator = _script("generate_k8s_topics")
    assert generator.TARGETS
    for target in generator.TARGETS:
        committed = target.path.read_text()
        assert committed == generator.render(target.layout, target.cluster), (
            f"{target.path} is stale: run python scripts/generate_k8s_topics.py"
        )
    assert generator.main(["--check"]) == 0


def test_each_overlays_topics_match_its_configuration_and_the_layout() -> None:
    generator = _script("generate_k8s_topics")
    for target in generator.TARGETS:
        overlay = Path(target.path).parent.name
        docs = rendered(overlay)
        config = find(docs, "ConfigMap", "tether-common")["data"]
        layout = TopicLayout(
            prefix=config["TETHER_TOPIC_PREFIX"],
            partitions=int(config["TETHER_TOPIC_PARTITIONS"]),
            replication_factor=int(config["TETHER_TOPIC_REPLICATION_FACTOR"]),
        )
        assert layout == target.layout
        topics = {d["spec"]["topicName"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
        assert sorted(topics) == sorted(layout.all_topics())
        for spec in layout.specs():
            assert topics[spec.name]["partitions"] == spec.partitions
            assert topics[spec.name]["replicas"] == layout.replication_factor
            assert topics[spec.name]["config"] == spec.config_dict
        kafka_topics = [d for d in docs if d["kind"] == "KafkaTopic"]
        clusters = {d["metadata"]["labels"]["strimzi.io/cluster"] for d in kafka_topics}
        assert clusters == {target.cluster}
        namespaces = {d["metadata"]["namespace"] for d in kafka_topics}
        if any(d["kind"] == "Kafka" for d in docs):
            kafka = find(docs, "Kafka", target.cluster)  # the cluster the topics belong to
            assert namespaces == {kafka["metadata"]["namespace"]}
        else:
            # An external Strimzi cluster: the topics sit in its namespace, the one the
            # services connect to (Strimzi's bootstrap Service <cluster>-kafka-bootstrap).
            (namespace,) = namespaces
            host = config["TETHER_KAFKA_BOOTSTRAP_SERVERS"].split(",")[0].rsplit(":", 1)[0]
            assert host == f"{target.cluster}-kafka-bootstrap.{namespace}.svc", host


def test_every_topic_a_manifest_names_is_one_the_layout_names() -> None:
    for overlay in ("demo", "production"):
        docs = rendered(overlay)
        config = find(docs, "ConfigMap", "tether-common")["data"]
        prefix = config["TETHER_TOPIC_PREFIX"]
        known = set(TopicLayout(prefix=prefix).all_topics())
        pattern = re.compile(rf"(?<![\w.-]){re.escape(prefix)}\.[a-z_-]+(?:\.[a-z_-]+)*")
        # (The rules and dashboards are generated from files checked on their own.)
        texts = [
            yaml.safe_dump(d, width=10**6)
            for d in docs
            if d["kind"] != "PrometheusRule" and d["metadata"]["name"] != DASHBOARDS_CONFIG_MAP
        ]
        named = {m for text in texts for m in pattern.findall(text)}
        assert named, overlay
        # metadata.name of a KafkaTopic spells "_" as "-": those are not topic names.
        assert named - {n.replace("_", "-") for n in known} <= known, overlay


def test_the_prometheus_rule_is_generated_from_the_rule_file() -> None:
    generator = _script("generate_k8s_rules")
    assert generator.TARGET.read_text() == generator.render(), (
        "deploy/k8s/base/prometheusrule.yaml is stale: run python scripts/generate_k8s_rules.py"
    )
    rule = find(rendered("production"), "PrometheusRule", "tether")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 6
    # Every alert links its runbook: the rule file's relative link under the one base URL the
    # generator is configured with (RUNBOOK_BASE_URL; empty keeps the repository-relative path).
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(generator.RUNBOOK_BASE_URL + "docs/operations.md#"), alert["alert"]
    assert generator.runbook_url("docs/operations.md#x", "https://example.org/tether/") == (
        "https://example.org/tether/docs/operations.md#x"
    )
