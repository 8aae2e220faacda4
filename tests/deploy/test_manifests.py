"""deploy/k8s: rendered without a kustomize binary, validated offline, cross-checked with the code.

- every resource of both overlays validates strictly against the Kubernetes OpenAPI schemas
  (``kubernetes-validate``) of a current and an older supported version; custom resources
  (Strimzi, Prometheus Operator) against structural schemas (``crds.py``);
- the renderer agrees with ``kubectl kustomize`` where kubectl is installed;
- every workload is locked down (non-root, read-only root, no privilege escalation, no
  capabilities, RuntimeDefault seccomp, requests and limits, no service links, no API token);
- every TETHER_* variable a container gets is a field of the settings class of what it runs, no
  secret field comes from a ConfigMap, every Secret key is a ``tether_<secret field>`` file in the
  secrets directory the container is told about;
- ports and probes are the service's: its settings' default port, the runtime's paths (served);
- selectors select, named ports exist;
- API budgets: every Deployment with API budgets tells its pods its replica count
  (``TETHER_REPLICAS`` = ``spec.replicas``), and scaled the documented way to any count, its pods
  together use exactly its share and all shares fit in one budget;
- ``kubectl kustomize``'s own output validates strictly too (where kubectl is installed).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import urllib.request
from collections import Counter
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from prometheus_client import CollectorRegistry

from services.core.budget import process_share
from services.core.runtime import HttpServer
from services.core.settings import DEFAULT_SECRETS_DIR, TetherSettings

from .crds import SCHEMAS
from .kustomize import Doc, ident
from .manifests import (
    ENV_PREFIX,
    K8S,
    NON_FIELD_VARIABLES,
    OVERLAYS,
    SERVICES,
    containers,
    env_fields,
    environment,
    find,
    is_secret,
    is_tether,
    rendered,
    secret_volume_names,
    settings_class,
    workloads,
)

#: The newest Kubernetes the validator knows, and an older one still in wide use.
KUBERNETES_VERSIONS = (latest_version(), "1.31.0")


def _kubectl_kustomize(overlay: str) -> list[Doc]:
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_validates_strictly(overlay: str) -> None:
    _validate_strictly(rendered(overlay))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_output_validates_strictly(overlay: str) -> None:
    """What `kubectl apply -k` / Argo CD would send: ``kubectl kustomize``'s own output."""
    _validate_strictly(_kubectl_kustomize(overlay))


def _validate_strictly(docs: list[Doc]) -> None:
    checked: Counter[str] = Counter()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in SCHEMAS:
            jsonschema.validate(doc, SCHEMAS[key])
            checked["custom"] += 1
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked["kubernetes"] += 1
    assert checked["kubernetes"] >= 10 and checked["custom"] >= 15  # KafkaTopics too


def test_crd_schemas_catch_a_misplaced_field() -> None:
    topic = next(d for d in rendered("demo") if d["kind"] == "KafkaTopic")
    broken = json.loads(json.dumps(topic))
    broken["spec"]["replication"] = broken["spec"].pop("replicas")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMAS[(topic["apiVersion"], topic["kind"])])


def _normalised(docs: list[Doc]) -> dict[tuple[str, str, str], Any]:
    """Resources by identity, lists of named items sorted (kustomize reorders merged lists)."""

    def norm(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: norm(v) for k, v in node.items()}
        if isinstance(node, list):
            items = [norm(v) for v in node]
            if items and all(isinstance(i, dict) and "name" in i for i in items):
                return sorted(items, key=lambda i: str(i["name"]))
            return items
        return node

    return {ident(doc): norm(doc) for doc in docs}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_renderer_agrees_with_kubectl_kustomize(overlay: str) -> None:
    assert _normalised(rendered(overlay)) == _normalised(_kubectl_kustomize(overlay))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_locked_down(overlay: str) -> None:
    for doc, spec in workloads(rendered(overlay)):
        where = f"{overlay}: {doc['kind']}/{doc['metadata']['name']}"
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["enableServiceLinks"] is False, where  # no TETHER_*_PORT from Services
        for container in containers(spec):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            if is_tether(container):
                assert str(container["image"]).count(":") == 1, f"{where}: image has no tag"
                assert pod.get("runAsUser", 10001) == 10001, where  # the image's user


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_tether_variable_is_a_settings_field_of_what_the_container_runs(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    seen_classes = set()
    for doc, spec in workloads(docs):
        for container in containers(spec):
            if not is_tether(container):
                continue
            cls = settings_class(container)
            env = environment(docs, container)
            tether_vars = {k for k in env if k.startswith(ENV_PREFIX)}
            where = f"{overlay}: {doc['metadata']['name']}/{container['name']}"
            if cls is None:  # a simulator: configured by its arguments only
                assert not tether_vars, where
                continue
            seen_classes.add(cls)
            fields = env_fields(cls)
            unknown = tether_vars - set(fields) - NON_FIELD_VARIABLES
            assert not unknown, f"{where}: not settings fields of {cls.__name__}: {unknown}"
            secrets_in_plain = {
                k for k in tether_vars - NON_FIELD_VARIABLES if is_secret(fields[k])
            }
            assert not secrets_in_plain, f"{where}: secrets set as variables: {secrets_in_plain}"
            # The values parse: the settings class accepts them (secrets aside).
            values = {
                k[len(ENV_PREFIX) :].lower(): v
                for k, v in env.items()
                if k in fields and v is not None
            }
            cls(**values)
    # `topics provision` (TetherSettings) runs where Tether creates topics: not in production,
    # whose topics are Strimzi KafkaTopics.
    provisioning = {TetherSettings} if overlay == "demo" else set()
    assert seen_classes == {*SERVICES.values(), *provisioning}


TENANT_SECRET = "tether-tenant-credentials"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_files_named_after_secret_fields_in_the_secrets_directory(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    defined = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    mounted = 0
    for _doc, spec in workloads(docs):
        volumes = secret_volume_names(spec)
        for container in containers(spec):
            cls = settings_class(container) if is_tether(container) else None
            if cls is None:
                continue
            env = environment(docs, container)
            secrets_dir = env.get("TETHER_SECRETS_DIR", DEFAULT_SECRETS_DIR)
            tenant_dir = env.get(
                "TETHER_TENANT_SECRETS_DIR",
                str(TetherSettings.model_fields["tenant_secrets_dir"].default),
            )
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    continue
                if volumes[mount["name"]] == TENANT_SECRET:
                    # keys <name>.<secret field> (docs/tenants.md); optional, created by operators
                    assert mount["mountPath"] == tenant_dir and mount.get("readOnly") is True
                    secret = defined.get(TENANT_SECRET, {})
                    for key in {**secret.get("stringData", {}), **secret.get("data", {})}:
                        field = key.partition(".")[2].upper()
                        assert is_secret(env_fields(cls)[f"TETHER_{field}"]), key
                    continue
                mounted += 1
                assert mount["mountPath"] == secrets_dir == DEFAULT_SECRETS_DIR
                assert mount.get("readOnly") is True
                for name in volumes[mount["name"]].split("+"):  # projected: several Secrets
                    secret = defined.get(name)
                    if secret is None:
                        assert overlay == "production", f"{name} is not defined"
                        continue  # created out of band in production (docs/operations.md)
                    fields = env_fields(cls)
                    for key in {**secret.get("stringData", {}), **secret.get("data", {})}:
                        variable = key.upper()
                        assert key == key.lower() and variable in fields, (cls.__name__, key)
                        assert is_secret(fields[variable]), f"{key} is not a SecretStr field"
    assert mounted >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_are_the_services_own(overlay: str) -> None:
    docs = rendered(overlay)
    served = set()
    grace_needed = TetherSettings.model_fields["shutdown_timeout_seconds"].default
    for doc, spec in workloads(docs):
        for container in containers(spec):
            cls = settings_class(container) if is_tether(container) else None
            if cls not in SERVICES.values() or doc["kind"] != "Deployment":
                continue
            assert cls is not None
            env = environment(docs, container)
            port = int(env.get("TETHER_HTTP_PORT") or cls.model_fields["http_port"].default)
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            expected = {"http": port}
            if "public_port" in cls.model_fields:  # webhook, /explain, the console
                public = env.get("TETHER_PUBLIC_PORT") or cls.model_fields["public_port"].default
                expected["public"] = int(public)
            assert ports == expected, (container["name"], ports, expected)
            probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe")}
            probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
            for name, probe in probes.items():
                assert probe["port"] == "http"
                expected = "/readyz" if name == "readinessProbe" else "/healthz"
                assert probe["path"] == expected
                served.add(probe["path"])
            drain = float(env.get("TETHER_SHUTDOWN_TIMEOUT_SECONDS") or grace_needed)
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
            sleep = float(pre_stop["command"][1]) if pre_stop else 0.0
            assert spec["terminationGracePeriodSeconds"] >= drain + sleep + 5
    # The runtime really serves those paths (an HttpServer with nothing registered).
    server = HttpServer("127.0.0.1", 0, CollectorRegistry()).start()
    try:
        for path in sorted(served):
            url = f"http://127.0.0.1:{server.port}{path}"
            with urllib.request.urlopen(url, timeout=5) as answer:
                assert answer.status == 200
    finally:
        server.stop()
    assert served == {"/healthz", "/readyz"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_select_pods_and_named_ports_exist(overlay: str) -> None:
    docs = rendered(overlay)
    pods = [(doc["spec"]["template"]["metadata"]["labels"], spec) for doc, spec in workloads(docs)]
    for doc in docs:
        kind, spec = doc["kind"], doc.get("spec", {})
        if kind == "Deployment":
            assert _selects(spec["selector"], spec["template"]["metadata"]["labels"])
        elif kind == "Service":
            matched = [
                s for labels, s in pods if _selects({"matchLabels": spec["selector"]}, labels)
            ]
            assert matched, doc["metadata"]["name"]
            names = {p["name"] for s in matched for c in containers(s) for p in c.get("ports", [])}
            assert {p["targetPort"] for p in spec["ports"]} <= names
        elif kind in ("PodDisruptionBudget", "NetworkPolicy", "PodMonitor"):
            selector = spec["podSelector" if kind == "NetworkPolicy" else "selector"]
            matched = [s for labels, s in pods if _selects(selector, labels)]
            assert matched, f"{kind}/{doc['metadata']['name']} selects no pod"
            if kind == "PodMonitor":
                for endpoint in spec["podMetricsEndpoints"]:
                    for s in matched:
                        named = {p["name"] for c in containers(s) for p in c.get("ports", [])}
                        assert endpoint["port"] in named


def test_the_extractor_is_a_singleton_and_the_services_name_their_components() -> None:
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        extractor = find(docs, "Deployment", "tether-extractor")
        assert extractor["spec"]["replicas"] == 1
        assert extractor["spec"]["strategy"]["type"] == "Recreate"
        for name in SERVICES:
            deployment = find(docs, "Deployment", f"tether-{name}")
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/component"] == name


def _scaled(docs: list[Doc], deployment: str, replicas: int) -> list[Doc]:
    """``docs`` with ``deployment`` scaled to ``replicas`` as docs/operations.md "Scale" says:
    ``spec.replicas`` and, where the container sets it, ``TETHER_REPLICAS`` next to it."""
    scaled = copy.deepcopy(docs)
    doc = find(scaled, "Deployment", deployment)
    doc["spec"]["replicas"] = replicas
    for container in doc["spec"]["template"]["spec"]["containers"]:
        for entry in container.get("env", []):
            if entry["name"] == "TETHER_REPLICAS":
                entry["value"] = str(replicas)
    return scaled


API_LIMITS = {  # requests per second of one whole API budget, from a settings object
    "poweroffice": lambda s: s.poweroffice_requests_per_second,
    "wix": lambda s: s.wix_requests_per_minute / 60.0,
}


def _api_settings(docs: list[Doc]) -> list[tuple[Doc, Any]]:
    """Each Deployment whose process has API budgets, with the settings it builds."""
    found = []
    for doc, spec in workloads(docs):
        if doc["kind"] != "Deployment":
            continue
        for container in containers(spec):
            cls = settings_class(container) if is_tether(container) else None
            if cls is None or "TETHER_POWEROFFICE_BUDGET_SHARE" not in env_fields(cls):
                continue
            env = environment(docs, container)
            values = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if v is not None}
            found.append((doc, cls(**{k: v for k, v in values.items() if k in cls.model_fields})))
    return found


def _process_rates(settings: Any) -> dict[str, float]:
    """Requests/second one process may send to each API, as the code builds its budgets: the
    loader's and the verifier's settings build them; the extractor's service builds them from
    ``process_share`` the same way (services/extractor/service.py)."""
    if hasattr(settings, "poweroffice_budget"):
        return {
            "poweroffice": settings.poweroffice_budget().rate_per_second,
            "wix": settings.wix_budget().rate_per_second,
        }
    return {
        api: limit(settings)
        * process_share(getattr(settings, f"{api}_budget_share"), settings.replicas)
        for api, limit in API_LIMITS.items()
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_api_deployment_tells_its_pods_its_replica_count(overlay: str) -> None:
    """TETHER_REPLICAS is set next to spec.replicas, equal to it, where budgets are split."""
    api_deployments = _api_settings(rendered(overlay))
    assert {d["metadata"]["name"] for d, _ in api_deployments} == {
        "tether-extractor",
        "tether-loader",
        "tether-verify",
    }
    for doc, settings in api_deployments:
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        variables = {e["name"] for e in container.get("env", [])}
        assert "TETHER_REPLICAS" in variables, doc["metadata"]["name"]
        assert settings.replicas == doc["spec"]["replicas"], doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_rollout_runs_more_api_pods_than_their_replica_count(overlay: str) -> None:
    """Each pod's budget is share / TETHER_REPLICAS: a surge pod would be over the share."""
    for doc, _settings in _api_settings(rendered(overlay)):
        strategy = doc["spec"]["strategy"]
        if strategy["type"] == "RollingUpdate":
            assert str(strategy["rollingUpdate"]["maxSurge"]) in ("0", "0%"), doc["metadata"]
        else:
            assert strategy["type"] == "Recreate", doc["metadata"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("deployment", ("tether-loader", "tether-extractor"))
@pytest.mark.parametrize("replicas", (1, 2, 3, 5, 8, 13))
def test_api_budgets_of_all_pods_fit_in_one_budget_at_any_scale(
    overlay: str, deployment: str, replicas: int
) -> None:
    """Scaled the documented way, every Deployment's pods together use exactly its share, and
    all shares together fit in one API budget."""
    api_deployments = _api_settings(_scaled(rendered(overlay), deployment, replicas))
    totals = dict.fromkeys(API_LIMITS, 0.0)
    for doc, settings in api_deployments:
        rates = _process_rates(settings)
        for api, limit in API_LIMITS.items():
            used = doc["spec"]["replicas"] * rates[api]
            share = getattr(settings, f"{api}_budget_share")
            assert used == pytest.approx(share * limit(settings)), (doc["metadata"]["name"], api)
            totals[api] += used / limit(settings)
    assert all(0 < total <= 1.0 + 1e-9 for total in totals.values()), totals


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_reaches_the_public_ports_only_and_prometheus_the_operations_ports(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    admitted: dict[str, set[str]] = {}  # component -> named ports some ingress rule admits
    for doc in docs:
        if doc["kind"] != "NetworkPolicy" or "Ingress" not in doc["spec"]["policyTypes"]:
            continue
        spec = doc["spec"]
        components = [
            labels["app.kubernetes.io/component"]
            for labels, _ in [
                (d["spec"]["template"]["metadata"]["labels"], d)
                for d in docs
                if d["kind"] == "Deployment"
            ]
            if _selects(spec["podSelector"], labels)
        ]
        for rule in spec.get("ingress", []):
            ports = {str(p["port"]) for p in rule.get("ports", [])}
            assert ports, f"{doc['metadata']['name']}: a rule without ports admits every port"
            sources = rule.get("from", [])
            if "http" in ports:  # the operations port: the monitoring namespace only
                assert sources and all("namespaceSelector" in s for s in sources)
                assert ports == {"http"}
            for component in components:
                admitted.setdefault(component, set()).update(ports)
    assert admitted["extractor"] == {"public", "http"}
    assert admitted["mapper"] == {"public", "http"}
    assert admitted["console"] == {"public", "http"}
    assert admitted["loader"] == admitted["verify"] == {"http"}
    # The rule open to everyone (the ingress) names the extractor's public port alone.
    open_rules = [
        (d["metadata"]["name"], {str(p["port"]) for p in r["ports"]})
        for d in docs
        if d["kind"] == "NetworkPolicy"
        for r in d["spec"].get("ingress", [])
        if not r.get("from")
    ]
    assert open_rules == [("tether-ingress-extractor", {"public"})]
    extractor = find(docs, "Service", "tether-extractor")
    assert [p["targetPort"] for p in extractor["spec"]["ports"]] == ["public"]
    monitor = find(docs, "PodMonitor", "tether")
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["http"]


def test_the_console_is_reached_through_the_ingress_controller_only_and_over_tls() -> None:
    """The console's public port admits the ingress controller's pods alone; the production
    overlay's Ingress terminates TLS for every host it routes, to that port; sessions are Secure
    there; the console reaches PostgreSQL (its read model) like the mapper."""
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        (rule,) = find(docs, "NetworkPolicy", "tether-ingress-console")["spec"]["ingress"]
        assert [str(p["port"]) for p in rule["ports"]] == ["public"]
        (source,) = rule["from"]  # one peer: namespace AND pod labels of the controller
        assert source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        assert source["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        (expression,) = find(docs, "NetworkPolicy", "tether-egress-postgres")["spec"][
            "podSelector"
        ]["matchExpressions"]
        assert "console" in expression["values"]
        service = find(docs, "Service", "tether-console")
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["public"]
    docs = rendered("production")
    platform = yaml.safe_load((K8S / "overlays" / "production" / "platform.yaml").read_text())
    platform = platform["data"]  # local-config: not rendered, copied by `replacements`
    (rule,) = find(docs, "NetworkPolicy", "tether-ingress-console")["spec"]["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": platform["ingressNamespace"]
    }
    ingress = find(docs, "Ingress", "tether-console")["spec"]
    tls_hosts = {host for entry in ingress["tls"] for host in entry["hosts"]}
    assert all(entry["secretName"] for entry in ingress["tls"])
    for route in ingress["rules"]:
        assert route["host"] in tls_hosts
        for path in route["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend == {"name": "tether-console", "port": {"name": "public"}}
    (container,) = find(docs, "Deployment", "tether-console")["spec"]["template"]["spec"][
        "containers"
    ]
    assert environment(docs, container)["TETHER_CONSOLE_COOKIE_SECURE"] == "true"
