"""The in-house renderer's newer pieces on their own (the agreement test with ``kubectl
kustomize`` covers them on the real overlays where kubectl is installed): JSON 6902 patches,
replacement field paths, replacements, local-config resources, unsupported input refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .kustomize import field_path, json_patch, render


def test_field_paths_quote_keys_with_dots_and_slashes() -> None:
    assert field_path("metadata.labels") == ["metadata", "labels"]
    path = "spec.ingress.0.from.0.namespaceSelector.matchLabels.[kubernetes.io/metadata.name]"
    assert field_path(path)[-3:] == [
        "namespaceSelector",
        "matchLabels",
        "kubernetes.io/metadata.name",
    ]
    assert field_path("[a.b].c") == ["a.b", "c"]


def test_json_patch_operations() -> None:
    doc = {"metadata": {"name": "a", "annotations": {"x/y": "1"}}, "items": [1, 2]}
    json_patch(doc, {"op": "replace", "path": "/metadata/name", "value": "b"})
    json_patch(doc, {"op": "add", "path": "/metadata/annotations/p~1q", "value": "2"})
    json_patch(doc, {"op": "remove", "path": "/metadata/annotations/x~1y"})
    json_patch(doc, {"op": "add", "path": "/items/-", "value": 3})
    json_patch(doc, {"op": "remove", "path": "/items/0"})
    assert doc == {"metadata": {"name": "b", "annotations": {"p/q": "2"}}, "items": [2, 3]}
    with pytest.raises(ValueError, match="nothing to replace"):
        json_patch(doc, {"op": "replace", "path": "/metadata/missing", "value": 1})
    with pytest.raises(ValueError, match="not supported"):
        json_patch(doc, {"op": "move", "from": "/items/0", "path": "/items/1"})


def _write(directory: Path, kustomization: dict[str, object], resources: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (directory / "resources.yaml").write_text(resources)
    return directory


RESOURCES = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: source
  annotations: {config.kubernetes.io/local-config: "true"}
  labels: {release: stack}
data: {namespace: monitoring}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: dashboards, labels: {a: b}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec: {}
"""


REPLACING: dict[str, object] = {
    "namespace": "app",
    "resources": ["resources.yaml"],
    "patches": [
        {
            "target": {"kind": "Job", "name": "migrate"},
            "patch": "- {op: replace, path: /metadata/name, value: migrate-1.0}",
        }
    ],
    "replacements": [
        {
            "source": {"kind": "ConfigMap", "name": "source", "fieldPath": "metadata.labels"},
            "targets": [
                {
                    "select": {"kind": "ConfigMap", "name": "dashboards"},
                    "fieldPaths": ["metadata.labels"],
                }
            ],
        },
        {
            "source": {"kind": "ConfigMap", "name": "source", "fieldPath": "data.namespace"},
            "targets": [
                {
                    "select": {"kind": "ConfigMap", "name": "dashboards"},
                    "fieldPaths": ["metadata.namespace"],
                },
                {
                    "select": {"kind": "Job"},
                    "fieldPaths": ["metadata.annotations.[example.com/where]"],
                    "options": {"create": True},
                },
            ],
        },
    ],
}


def test_replacements_run_after_the_namespace_and_local_config_is_dropped(tmp_path: Path) -> None:
    docs = render(_write(tmp_path, REPLACING, RESOURCES))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", "dashboards"),
        ("Job", "migrate-1.0"),
    ]
    dashboards, job = docs
    assert dashboards["metadata"] == {
        "name": "dashboards",
        "namespace": "monitoring",
        "labels": {"release": "stack"},
    }
    assert job["metadata"]["namespace"] == "app"
    assert job["metadata"]["annotations"] == {"example.com/where": "monitoring"}


def test_a_replacement_into_a_missing_field_without_create_is_an_error(tmp_path: Path) -> None:
    kustomization = {
        "resources": ["resources.yaml"],
        "replacements": [
            {
                "source": {"kind": "ConfigMap", "name": "source", "fieldPath": "data.namespace"},
                "targets": [{"select": {"kind": "Job"}, "fieldPaths": ["spec.missing.field"]}],
            }
        ],
    }
    with pytest.raises(ValueError, match="not found"):
        render(_write(tmp_path, kustomization, RESOURCES))
    kustomization["replacements"] = [
        {
            "source": {"kind": "ConfigMap", "name": "source", "fieldPath": "data.namespace"},
            "targets": [{"select": {"kind": "Secret"}, "fieldPaths": ["data.x"]}],
        }
    ]
    with pytest.raises(ValueError, match="selects nothing"):
        render(_write(tmp_path, kustomization, RESOURCES))


def test_unsupported_kustomization_fields_and_patches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not supported"):
        render(
            _write(
                tmp_path / "a",
                {"resources": ["resources.yaml"], "commonLabels": {"a": "b"}},
                RESOURCES,
            )
        )
    patch = {"target": {"kind": "Job", "labelSelector": "a=b"}, "patch": "[]"}
    with pytest.raises(ValueError, match="not supported"):
        render(
            _write(tmp_path / "b", {"resources": ["resources.yaml"], "patches": [patch]}, RESOURCES)
        )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kubectl_kustomize_renders_the_replacing_kustomization_alike(tmp_path: Path) -> None:
    directory = _write(tmp_path, REPLACING, RESOURCES)
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]
    assert sorted(render(directory), key=str) == sorted(theirs, key=str)
