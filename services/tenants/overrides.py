"""Which service settings a tenant's registration may override, and the check of an override.

A tenant's ``settings`` override fields of the per-tenant services' settings classes (the
extractor's and the loader's); the rule itself is ``model.check_overrides``. This module only
names those classes, so that every writer of the registry (``tether tenants``, the console's API)
checks overrides against the same fields.

Imports: the tenant model and the services' settings modules only (wiring: the registry's shared
modules and the services never import it; the console does, for its tenant routes).
"""

from __future__ import annotations

from pydantic import BaseModel

from services.tenants.model import check_overrides


def service_settings_classes() -> tuple[type[BaseModel], ...]:
    """The settings classes a tenant's overrides may name (those of the per-tenant services)."""
    from services.extractor.settings import ExtractorSettings
    from services.loader.settings import LoaderSettings

    return (ExtractorSettings, LoaderSettings)


def check(overrides: dict[str, str]) -> dict[str, str]:
    """``overrides`` if every name is a non-secret setting field of a per-tenant service."""
    return check_overrides(overrides, service_settings_classes())
