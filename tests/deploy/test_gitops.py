"""deploy/k8s under GitOps (Argo CD, Flux) and plain ``kubectl apply -k``:

- each overlay has its Namespace, and everything is in it except what ``platform.yaml`` sends to
  the platform's namespaces (the dashboard ConfigMap to monitoring, KafkaTopics to Kafka's);
- the migrate Job survives image upgrades: an Argo CD Sync hook (deleted before re-creation) in a
  wave between the configuration/infrastructure and the services, Flux's ``force``, and for plain
  ``kubectl apply`` a name carrying the release's image tag;
- the PodMonitor's and PrometheusRule's labels and the monitoring namespace come from the one
  ``platform.yaml`` of the overlay (a local-config resource, not applied);
- the Grafana dashboard ConfigMap is generated from deploy/grafana/dashboards, labelled for the
  sidecar, small enough for client-side ``kubectl apply``;
- production's topics are Strimzi KafkaTopics and nothing of Tether creates topics there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.extractor.settings import ExtractorSettings
from services.mapper.settings import MapperSettings

from .kustomize import Doc, load_yaml_docs, render
from .manifests import K8S, OVERLAYS, ROOT, containers, environment, find, rendered, workloads
from .test_generated import _script

ARGO_HOOK = "argocd.argoproj.io/hook"
ARGO_WAVE = "argocd.argoproj.io/sync-wave"
#: kubectl's client-side apply keeps the whole object in an annotation; annotations are limited
#: to 256 KiB in total.
LAST_APPLIED_LIMIT = 256 * 1024


def _kustomization(overlay: str) -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text()))


def _platform(overlay: str) -> Doc:
    (platform,) = load_yaml_docs(K8S / "overlays" / overlay / "platform.yaml")
    assert platform["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    return platform


def _wave(doc: Doc) -> int:
    return int(doc["metadata"].get("annotations", {}).get(ARGO_WAVE, "0"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_has_its_namespace_and_keeps_to_it(overlay: str) -> None:
    docs = rendered(overlay)
    namespace = _kustomization(overlay)["namespace"]
    (ns,) = [d for d in docs if d["kind"] == "Namespace"]
    assert ns["metadata"]["name"] == namespace
    assert "pod-security.kubernetes.io/enforce" in ns["metadata"]["labels"]
    platform = _platform(overlay)["data"]
    elsewhere = {
        ("ConfigMap", "tether-grafana-dashboards"): platform["monitoringNamespace"],
        **{
            ("KafkaTopic", d["metadata"]["name"]): platform.get("kafkaNamespace", namespace)
            for d in docs
            if d["kind"] == "KafkaTopic"
        },
    }
    for doc in docs:
        if doc["kind"] == "Namespace":
            continue
        key = (doc["kind"], doc["metadata"]["name"])
        assert doc["metadata"]["namespace"] == elsewhere.get(key, namespace), key
    assert not [d for d in docs if d["metadata"]["name"] == "tether-platform"]  # local-config


def test_production_enforces_the_restricted_pod_security_standard() -> None:
    ns = next(d for d in rendered("production") if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migrate_job_is_recreated_for_every_release(overlay: str) -> None:
    docs = rendered(overlay)
    (job,) = [d for d in docs if d["kind"] == "Job"]
    annotations = job["metadata"]["annotations"]
    # Argo CD: a hook, deleted before its next creation, so a new template never meets the old.
    assert annotations[ARGO_HOOK] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    # Flux: recreate it when an immutable field changes.
    assert annotations["kustomize.toolkit.fluxcd.io/force"] == "enabled"
    # Plain `kubectl apply -k`: a new name per release — the image tag the Job runs.
    images = {c["image"] for c in containers(job["spec"]["template"]["spec"])}
    (image,) = images
    tag = image.rsplit(":", 1)[1]
    assert job["metadata"]["name"] == f"tether-migrate-{tag}"
    assert job["spec"]["ttlSecondsAfterFinished"] <= 7 * 86400  # old ones go away
    # Argo CD order: configuration and infrastructure (wave 0) -> the Job -> the services.
    for doc, _spec in workloads(docs):
        if doc is job:
            continue
        is_tether = doc["metadata"]["labels"].get("app.kubernetes.io/name") == "tether"
        assert (_wave(doc) > _wave(job)) == is_tether, doc["metadata"]["name"]
    for doc in docs:
        if doc["kind"] in ("ConfigMap", "Secret", "KafkaTopic", "Kafka", "Namespace"):
            assert _wave(doc) < _wave(job), doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_labels_and_namespace_come_from_the_platform_file(overlay: str) -> None:
    docs = rendered(overlay)
    platform = _platform(overlay)
    for kind in ("PodMonitor", "PrometheusRule"):
        assert find(docs, kind, "tether")["metadata"]["labels"] == platform["metadata"]["labels"]
    monitoring = platform["data"]["monitoringNamespace"]
    policy = find(docs, "NetworkPolicy", "tether-ingress-metrics")
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert sources == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring}}}
    ]
    dashboards = find(docs, "ConfigMap", "tether-grafana-dashboards")
    assert dashboards["metadata"]["namespace"] == monitoring


def test_the_platform_file_is_the_only_place_the_monitoring_settings_live() -> None:
    """Changing platform.yaml alone moves everything (rendered from a copy of the tree)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "k8s"
        shutil.copytree(K8S, tree)
        path = tree / "overlays" / "production" / "platform.yaml"
        text = path.read_text().replace("release: kube-prometheus-stack", "prometheus: ops")
        path.write_text(text.replace("monitoringNamespace: monitoring", "monitoringNamespace: obs"))
        docs = render(tree / "overlays" / "production")
    for kind in ("PodMonitor", "PrometheusRule"):
        labels = find(docs, kind, "tether")["metadata"]["labels"]
        assert labels == {"app.kubernetes.io/part-of": "tether", "prometheus": "ops"}
    assert find(docs, "ConfigMap", "tether-grafana-dashboards")["metadata"]["namespace"] == "obs"
    policy = find(docs, "NetworkPolicy", "tether-ingress-metrics")
    selector = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": "obs"}


def test_the_dashboard_config_map_is_generated_from_the_dashboards() -> None:
    generator = _script("generate_k8s_dashboards")
    assert generator.TARGET.read_text() == generator.render(), (
        "deploy/k8s/base/grafana-dashboards.yaml is stale: "
        "run python scripts/generate_k8s_dashboards.py"
    )
    assert generator.main(["--check"]) == 0
    config_map = find(rendered("production"), "ConfigMap", "tether-grafana-dashboards")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert sorted(config_map["data"]) == [f.name for f in files]
    for path in files:
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
    assert len(json.dumps(config_map)) < LAST_APPLIED_LIMIT // 2


def test_production_topics_are_kafka_topics_and_nothing_else_creates_topics() -> None:
    docs = rendered("production")
    assert len([d for d in docs if d["kind"] == "KafkaTopic"]) >= 10
    for doc, spec in workloads(docs):
        for container in containers(spec):
            assert container.get("args", [])[:2] != ["topics", "provision"], doc["metadata"]
    env = {
        name: environment(docs, c)
        for d, s in workloads(docs)
        for c in containers(s)
        if (name := c["name"]) in ("extractor", "mapper")
    }
    extractor = ExtractorSettings(provision_topics=env["extractor"]["TETHER_PROVISION_TOPICS"])
    assert extractor.provision_topics is False
    mapper = MapperSettings(mapper_provision_topics=env["mapper"]["TETHER_MAPPER_PROVISION_TOPICS"])
    assert mapper.mapper_provision_topics is False


def test_the_demo_cluster_does_not_create_topics_on_use() -> None:
    kafka = find(rendered("demo"), "Kafka", "tether")
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
