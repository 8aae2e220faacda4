"""A tenant's registration and status as values, and the rules over them (pure).

A **tenant** is one PowerOffice-client ⇄ Wix-site pair (more generally: one dataflow over one set
of connector credentials) served by a shared deployment. Its registration (:class:`Tenant`, the
``tether.Tenant`` record on the compacted tenants topic) says what operators want:

- ``state``: ``active`` (its work runs), ``paused`` (its work stops; nothing is lost: cursors stay,
  changes made meanwhile are read on resume), ``removed`` (its work stops for good; the erasure
  command may then delete its data). ``removed`` is final: a removed tenant id is not reused until
  it is erased;
- ``settings``: overrides of the services' setting fields for this tenant (``wix_site_id``,
  ``poweroffice_requests_per_second``, ``poweroffice_poll_interval_seconds`` ...). **Never a
  secret**: secret fields are refused here and come from ``credentials_ref`` instead;
- ``credentials_ref``: where its secrets are (``services/tenants/credentials.py``);
- ``dataflow`` and ``policies``: the dataflow the tenant runs (only the deployment's ``default`` is
  shipped today) and per-tenant policy overrides (none is defined yet: an unknown one is refused).

Its status (:class:`TenantStatus`, on the tenant-status topic) says what is: the ``phase`` the
owning extractor replica reports (``onboarding`` → ``initial_sync`` → ``live``; ``paused``,
``stopped``, ``failing``) and which replica owns it.

:func:`settings_for` builds a service's settings for one tenant: the deployment's settings with the
tenant id, its overrides and its secrets — validated by the settings class itself, so a bad value
is refused with the field's name, never applied half.

Imports: standard library and pydantic only (no Kafka, no file system).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DesiredState = Literal["active", "paused", "removed"]
Phase = Literal["onboarding", "initial_sync", "live", "paused", "stopped", "failing"]

#: The state each operator command sets (``tether tenants pause|resume|remove``, the console).
COMMAND_STATES: dict[str, DesiredState] = {
    "pause": "paused",
    "resume": "active",
    "remove": "removed",
}

TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: Policies a tenant may override (none yet: the dataflow file holds the deployment's).
KNOWN_POLICIES: frozenset[str] = frozenset()

S = TypeVar("S", bound=BaseModel)


class TenantError(ValueError):
    """A registration or a change of one that the rules refuse (the message says why)."""


class TenantNotFoundError(TenantError):
    """The change names a tenant that is not registered."""


class TenantExistsError(TenantError):
    """The registration names a tenant id in use (removed ones included, until erased)."""


def check_tenant_id(tenant: str) -> str:
    """A tenant id: lower-case letters, digits and inner dashes, at most 63 characters (it is a
    Kafka key prefix, a metric label value and a Kubernetes-friendly name; no ``/``, which
    separates the parts of cursor and record keys)."""
    if not TENANT_ID.match(tenant):
        raise TenantError(
            f"invalid tenant id {tenant!r}: use 1-63 lower-case letters, digits and inner dashes"
        )
    return tenant


class Tenant(BaseModel):
    """A tenant's registration (one ``tether.Tenant`` record)."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    state: DesiredState = "active"
    dataflow: str = "default"
    settings: dict[str, str] = Field(default_factory=dict)
    credentials_ref: str = ""
    policies: dict[str, str] = Field(default_factory=dict)
    version: int = 1
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_by: str = ""
    reason: str = ""

    @field_validator("tenant")
    @classmethod
    def _tenant_id(cls, value: str) -> str:
        return check_tenant_id(value)

    @field_validator("policies")
    @classmethod
    def _policies(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - KNOWN_POLICIES)
        if unknown:
            raise TenantError(f"unknown tenant policies: {', '.join(unknown)}")
        return value

    @property
    def runs(self) -> bool:
        """Whether the tenant's work should run."""
        return self.state == "active"

    def to_datum(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_datum(cls, datum: dict[str, Any]) -> Tenant:
        return cls.model_validate(datum)

    def changed(self, *, by: str, reason: str, **changes: Any) -> Tenant:
        """The next version of this registration with ``changes`` (validated again)."""
        data = {**self.model_dump(), **changes}
        data.update(version=self.version + 1, updated_at=datetime.now(UTC))
        data.update(updated_by=by, reason=reason)
        return Tenant.model_validate(data)


class TenantStatus(BaseModel):
    """What a tenant's work is doing (one ``tether.TenantStatus`` record)."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    phase: Phase
    owner: str = ""
    detail: str = ""
    registration_version: int = 0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_datum(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_datum(cls, datum: dict[str, Any]) -> TenantStatus:
        return cls.model_validate(datum)


def describe(tenant: Tenant, status: TenantStatus | None) -> dict[str, Any]:
    """A tenant as operators see it (``tether tenants`` and the console's API): its registration
    and its status (no secrets exist in a registration; the credentials reference is shown)."""
    return {
        "tenant": tenant.tenant,
        "state": tenant.state,
        "phase": status.phase if status else None,
        "owner": status.owner if status else None,
        "status_detail": status.detail if status else None,
        "dataflow": tenant.dataflow,
        "settings": tenant.settings,
        "credentials_ref": tenant.credentials_ref,
        "policies": tenant.policies,
        "version": tenant.version,
        "updated_at": tenant.updated_at.isoformat(),
        "updated_by": tenant.updated_by,
        "reason": tenant.reason,
    }


# -- operator actions on a registration --------------------------------------------------------


def new_tenant(
    tenant: str,
    *,
    settings: dict[str, str],
    credentials_ref: str,
    by: str,
    dataflow: str = "default",
    paused: bool = False,
    reason: str = "",
) -> Tenant:
    return Tenant(
        tenant=tenant,
        state="paused" if paused else "active",
        dataflow=dataflow,
        settings=settings,
        credentials_ref=credentials_ref,
        updated_by=by,
        reason=reason,
    )


def add(existing: Tenant | None, proposed: Tenant) -> Tenant:
    """Register ``proposed``; an id in use (even removed, until erased) is refused."""
    if existing is not None:
        raise TenantExistsError(
            f"tenant {proposed.tenant!r} exists ({existing.state}); "
            + ("erase it first" if existing.state == "removed" else "change it instead")
        )
    return proposed


def set_state(
    existing: Tenant | None, tenant: str, state: DesiredState, *, by: str, reason: str
) -> Tenant:
    """``pause`` / ``resume`` (``active``) / ``remove`` a registered tenant.

    Setting the state it already has is a no-op (the same registration is returned, nothing
    needs writing): the commands are safe to repeat. ``removed`` is final."""
    if existing is None:
        raise TenantNotFoundError(f"no tenant {tenant!r}")
    if existing.state == state:
        return existing
    if existing.state == "removed":
        raise TenantError(f"tenant {tenant!r} is removed; it can only be erased")
    return existing.changed(state=state, by=by, reason=reason)


# -- per-tenant settings ----------------------------------------------------------------------


def secret_fields(settings_class: type[BaseModel]) -> frozenset[str]:
    """The fields of a settings class that hold secrets (``SecretStr``)."""
    return frozenset(
        name for name, info in settings_class.model_fields.items() if info.annotation is SecretStr
    )


def check_overrides(
    overrides: dict[str, str], settings_classes: tuple[type[BaseModel], ...]
) -> dict[str, str]:
    """Refuse an override no settings class has, a secret, or the tenant id itself."""
    known: set[str] = set()
    secrets: set[str] = set()
    for cls in settings_classes:
        known |= set(cls.model_fields)
        secrets |= secret_fields(cls)
    for name in overrides:
        if name == "tenant":
            raise TenantError("the tenant id is the registration's, not a setting override")
        if name in secrets:
            raise TenantError(
                f"{name} is a secret: put it in the tenant's credentials (credentials_ref), "
                "never in the registry"
            )
        if name not in known:
            raise TenantError(f"unknown setting {name!r}")
    return overrides


def settings_for(base: S, tenant: Tenant, secrets: dict[str, SecretStr]) -> S:
    """``base`` (a service's frozen settings) for ``tenant``: its id, its overrides, its secrets.

    Validated by the settings class (types, bounds); a refused value raises :class:`TenantError`
    naming the field, never the value (it may be close to a secret)."""
    cls = type(base)
    check_overrides(tenant.settings, (cls,))
    own_secrets = secret_fields(cls)
    data: dict[str, Any] = base.model_dump()
    data.update(tenant.settings)
    # A credentials directory serves every service: each takes the secrets its settings have.
    data.update({name: value for name, value in secrets.items() if name in own_secrets})
    data["tenant"] = tenant.tenant
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise TenantError(
            f"tenant {tenant.tenant!r}: invalid settings: {', '.join(fields)}"
        ) from None
