"""What the deploy tests read: the rendered overlays, their workloads, and the code they run.

``SETTINGS`` maps what a container runs to the settings class that reads its environment, so
every ``TETHER_*`` variable a manifest sets can be checked against ``model_fields``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from services.console.settings import ConsoleSettings
from services.core.settings import TetherSettings
from services.extractor.settings import ExtractorSettings
from services.loader.settings import LoaderSettings
from services.mapper.settings import MapperSettings
from services.verify.settings import VerifySettings

from .kustomize import Doc, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("demo", "production")
SERVICES: dict[str, type[BaseSettings]] = {
    "extractor": ExtractorSettings,
    "mapper": MapperSettings,
    "loader": LoaderSettings,
    "verify": VerifySettings,
    "console": ConsoleSettings,
}
#: Variables read outside the settings classes' fields (TetherSettings.load reads this one).
NON_FIELD_VARIABLES = {"TETHER_SECRETS_DIR"}
ENV_PREFIX = "TETHER_"


@cache
def _rendered(name: str) -> tuple[Doc, ...]:
    path = K8S / "base" if name == "base" else K8S / "overlays" / name
    return tuple(render(path))


def rendered(name: str) -> list[Doc]:
    """The overlay's resources (a fresh deep copy is not needed: tests only read)."""
    return list(_rendered(name))


def pod_spec(doc: Doc) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return dict(spec["template"]["spec"])
    if doc["kind"] == "CronJob":
        return dict(spec["jobTemplate"]["spec"]["template"]["spec"])
    return None


def workloads(docs: list[Doc]) -> list[tuple[Doc, dict[str, Any]]]:
    return [(doc, spec) for doc in docs if (spec := pod_spec(doc)) is not None]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def is_tether(container: dict[str, Any]) -> bool:
    return str(container["image"]).split(":")[0].split("@")[0].endswith("tether")


def settings_class(container: dict[str, Any]) -> type[BaseSettings] | None:
    """The settings class reading this Tether container's environment (None: a simulator)."""
    args = list(container.get("args", []))
    command = " ".join(container.get("command", []))
    if args and args[0] in SERVICES:
        return SERVICES[args[0]]
    if args[:2] == ["topics", "provision"]:
        return TetherSettings
    if "MapperSettings" in command:
        return MapperSettings
    if args and args[0] == "simulate":
        return None
    raise AssertionError(f"unknown Tether command in {container['name']}: {args or command}")


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{kind}/{name} not in the rendered manifests")


def environment(docs: list[Doc], container: dict[str, Any]) -> dict[str, str | None]:
    """Every variable the container gets: ConfigMaps (envFrom) then env (None: from a ref)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, f"{container['name']}: only ConfigMap envFrom is expected"
        env.update(find(docs, "ConfigMap", ref["name"]).get("data", {}))
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value")
    return env


def env_fields(cls: type[BaseSettings]) -> dict[str, Any]:
    """``TETHER_<FIELD>`` -> the field's annotation."""
    return {ENV_PREFIX + name.upper(): f.annotation for name, f in cls.model_fields.items()}


def is_secret(annotation: Any) -> bool:
    return annotation is SecretStr


def secret_volume_names(spec: dict[str, Any]) -> dict[str, str]:
    """volume name -> Secret name (a projected volume of several Secrets: their names joined by
    ``+``, each defined separately)."""
    names = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for volume in spec.get("volumes", []):
        sources = volume.get("projected", {}).get("sources", [])
        secrets = [s["secret"]["name"] for s in sources if "secret" in s]
        if secrets:
            names[volume["name"]] = "+".join(secrets)
    return names
