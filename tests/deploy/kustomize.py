"""A small kustomize renderer for the subset deploy/k8s uses, so the tests need no binary.

Supported kustomization fields: ``resources`` (files and kustomization directories),
``namespace``, ``images`` (``name`` -> ``newName``/``newTag``/``digest``) and ``patches`` given by
``path`` (strategic-merge patches whose target is the patch's own kind and name). Anything else
in a kustomization is an error here, which keeps the overlays simple. Strategic merge follows
Kubernetes' patch merge keys for the lists the manifests patch (containers by ``name``, env by
``name``, volumes by ``name``, volumeMounts by ``mountPath``, container ports by
``containerPort``, Service ports by ``port``); other lists are replaced; ``$patch: delete``
removes a list item and a ``null`` value removes a key.

When ``kubectl`` (with its built-in kustomize) is on the machine, a test compares this renderer's
output with ``kubectl kustomize``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
}
LIST_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


def load_yaml_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Doc]:
    """The resources ``directory``'s kustomization.yaml builds, in resource order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not supported here: {unknown}")
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else load_yaml_docs(path)
    _check_unique(docs, directory)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise ValueError(f"{directory}: only path patches are supported: {patch_entry}")
        for patch in load_yaml_docs(directory / patch_entry["path"]):
            target = _find(docs, patch)
            docs[docs.index(target)] = strategic_merge(target, patch)
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    namespace = kustomization.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    return docs


def ident(doc: Doc) -> tuple[str, str, str]:
    meta = doc.get("metadata", {})
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


def _check_unique(docs: list[Doc], directory: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        key = ident(doc)
        if key in seen:
            raise ValueError(f"{directory}: duplicate resource {key}")
        seen.add(key)


def _find(docs: list[Doc], patch: Doc) -> Doc:
    for doc in docs:
        if doc["kind"] == patch["kind"] and doc["metadata"]["name"] == patch["metadata"]["name"]:
            return doc
    raise ValueError(f"patch target not found: {patch['kind']}/{patch['metadata']['name']}")


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Merge ``patch`` into a copy of ``base`` (strategic-merge semantics, subset)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        key = _merge_key(field, base + patch)
        if key is None:
            return copy.deepcopy(patch)
        merged_list = copy.deepcopy(base)
        for item in patch:
            index = next((i for i, b in enumerate(merged_list) if b.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    del merged_list[index]
            elif index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = strategic_merge(merged_list[index], item, field)
        return merged_list
    return copy.deepcopy(patch)


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    if field == "ports":
        return "containerPort" if all("containerPort" in i for i in items) else "port"
    return LIST_KEYS.get(field)


def _set_image(doc: Doc, image: dict[str, str]) -> None:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec")
    if not pod:
        return
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        name, _, tag = container["image"].partition(":")
        if name != image["name"]:
            continue
        new_name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{new_name}@{image['digest']}"
        else:
            new_tag = image.get("newTag", tag)
            container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
