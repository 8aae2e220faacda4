"""A small kustomize renderer for the subset deploy/k8s uses, so the tests need no binary.

Supported kustomization fields: ``resources`` (files and kustomization directories),
``namespace``, ``images`` (``name`` -> ``newName``/``newTag``/``digest``),
``patches`` given by ``path`` (strategic-merge patches whose target is the patch's own kind and
name) or by ``target`` (``kind``/``name``) and an inline JSON 6902 ``patch`` (``add``,
``replace``, ``remove``), and inline ``replacements`` (a ``source`` field copied to ``targets``'
``fieldPaths``, ``options.create``; paths are dotted, ``[a.b/c]`` quotes a key with dots, a
number indexes a list). Resources annotated ``config.kubernetes.io/local-config: "true"`` (the
sources of replacements) are dropped from the output, as kustomize does. The order is
kustomize's: resources, patches, images, namespace, replacements. Anything else in a
kustomization is an error here, which keeps the overlays simple. Strategic merge follows
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

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "patches",
    "replacements",
}
LOCAL_CONFIG = "config.kubernetes.io/local-config"
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
    docs = _resources(directory, kustomization)
    _patch(docs, directory, kustomization.get("patches", []))
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    namespace = kustomization.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    for replacement in kustomization.get("replacements", []):
        _replace(docs, replacement)
    return [d for d in docs if d["metadata"].get("annotations", {}).get(LOCAL_CONFIG) != "true"]


def _resources(directory: Path, kustomization: Doc) -> list[Doc]:
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else load_yaml_docs(path)
    _check_unique(docs, directory)
    return docs


def _patch(docs: list[Doc], directory: Path, entries: list[Doc]) -> None:
    for entry in entries:
        if set(entry) == {"path"}:
            for patch in load_yaml_docs(directory / entry["path"]):
                target = _find(docs, patch)
                docs[docs.index(target)] = strategic_merge(target, patch)
        elif set(entry) == {"target", "patch"} and set(entry["target"]) <= {"kind", "name"}:
            operations = yaml.safe_load(entry["patch"])
            for doc in docs:
                if _selected(doc, entry["target"]):
                    for operation in operations:
                        json_patch(doc, operation)
        else:
            raise ValueError(f"{directory}: patch not supported here: {entry}")


def _selected(doc: Doc, select: dict[str, str]) -> bool:
    return all(
        (doc["kind"] if key == "kind" else doc["metadata"][key]) == value
        for key, value in select.items()
    )


def json_patch(doc: Doc, operation: dict[str, Any]) -> None:
    """Apply one JSON 6902 ``add``/``replace``/``remove`` operation to ``doc`` in place."""
    *parents, last = [
        p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]
    ]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise ValueError(f"JSON patch operation not supported here: {op}")
    elif op in ("add", "replace"):
        if op == "replace" and last not in node:
            raise ValueError(f"JSON patch: nothing to replace at {operation['path']}")
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise ValueError(f"JSON patch operation not supported here: {op}")


def field_path(path: str) -> list[str]:
    """``a.[b.c/d].0`` -> ``["a", "b.c/d", "0"]``."""
    parts: list[str] = []
    rest = path
    while rest:
        if rest.startswith("["):
            key, _, rest = rest[1:].partition("]")
            rest = rest.removeprefix(".")
        else:
            key, _, rest = rest.partition(".")
        parts.append(key)
    return parts


def _replace(docs: list[Doc], replacement: dict[str, Any]) -> None:
    source = replacement["source"]
    if set(source) - {"kind", "name", "fieldPath"}:
        raise ValueError(f"replacement source not supported here: {source}")
    (origin,) = [d for d in docs if _selected(d, {k: source[k] for k in ("kind", "name")})]
    value: Any = origin
    for part in field_path(source["fieldPath"]):
        value = value[int(part)] if isinstance(value, list) else value[part]
    for target in replacement["targets"]:
        if set(target) - {"select", "fieldPaths", "options"}:
            raise ValueError(f"replacement target not supported here: {target}")
        create = target.get("options", {}).get("create", False)
        selected = [d for d in docs if _selected(d, target["select"])]
        if not selected:
            raise ValueError(f"replacement selects nothing: {target['select']}")
        for doc in selected:
            for path in target["fieldPaths"]:
                *parents, last = field_path(path)
                node: Any = doc
                for part in parents:
                    if isinstance(node, list):
                        node = node[int(part)]
                    elif part in node or create:
                        node = node.setdefault(part, {})
                    else:
                        raise ValueError(f"{path} not found in {ident(doc)}")
                if not (create or isinstance(node, list) or last in node):
                    raise ValueError(f"{path} not found in {ident(doc)}")
                if isinstance(node, list):
                    node[int(last)] = copy.deepcopy(value)
                else:
                    node[last] = copy.deepcopy(value)


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
