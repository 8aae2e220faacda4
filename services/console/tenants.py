"""The tenant registry in the console: what its API (``/api/v1/tenants``) and its tenants page
read and change.

Reads come from a :class:`TenantDirectory` that a :class:`DirectoryFollower` keeps fresh (within
``console_tenants_refresh_seconds``). A change goes through :class:`TenantRegistry` with the same
rules as ``tether tenants`` (``services/tenants``: the model's rules, the setting overrides'
check, the credential reference's form), is acknowledged by the broker, and the directory is read
again before the answer: the caller, and the next page it opens, see the change.

The ``parse_*`` functions are the pure part: a request's JSON body to the arguments of a registry
operation, refusing unknown fields and values of the wrong type with a :class:`TenantError`
whose message names the field, never its value (a secret put in the wrong place must not come
back in an answer or a log).

Imports: standard library, kafka-python (types only), the tenant registry modules and the core
codec and settings.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import KafkaProducer

from services.core.codec import AvroCodec
from services.core.settings import TetherSettings
from services.tenants import credentials, overrides
from services.tenants.model import (
    COMMAND_STATES,
    Tenant,
    TenantError,
    check_tenant_id,
    describe,
    new_tenant,
)
from services.tenants.registry import DirectoryFollower, TenantDirectory, TenantRegistry

log = logging.getLogger("tether.console.tenants")

#: The commands every operator may give; the others are for the tenant administrators.
OPERATOR_COMMANDS = frozenset({"pause", "resume"})


def names(text: str) -> frozenset[str]:
    """A comma-separated list of caller names (``console_tenant_admins``)."""
    return frozenset(name.strip() for name in text.split(",") if name.strip())


ADD_FIELDS = frozenset({"tenant", "settings", "credentials_ref", "dataflow", "paused", "reason"})
CHANGE_FIELDS = frozenset({"settings", "reason"})
STATE_FIELDS = frozenset({"reason"})


# -- request bodies (pure) ---------------------------------------------------------------------


def _fields(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TenantError("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise TenantError(
            f"unknown fields: {', '.join(unknown)} (known: {', '.join(sorted(allowed))})"
        )
    return body


def _text(body: dict[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise TenantError(f"{name} must be a string")
    return value


def _settings(body: dict[str, Any], *, required: bool) -> dict[str, str]:
    value = body.get("settings", {})
    if not isinstance(value, dict) or (required and not value):
        raise TenantError("settings must be an object of setting names to values")
    parsed: dict[str, str] = {}
    for name, item in value.items():
        # JSON numbers and booleans are accepted as the text a TETHER_* variable would hold.
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, str | int | float):
            text = str(item)
        else:
            raise TenantError(f"settings.{name} must be a string, a number or a boolean")
        parsed[name.strip().lower()] = text
    return overrides.check(parsed)


def parse_registration(body: Any, *, by: str) -> Tenant:
    """A ``POST /api/v1/tenants`` body to the registration it proposes."""
    fields = _fields(body, ADD_FIELDS)
    paused = fields.get("paused", False)
    if not isinstance(paused, bool):
        raise TenantError("paused must be true or false")
    return new_tenant(
        check_tenant_id(_text(fields, "tenant")),
        settings=_settings(fields, required=False),
        credentials_ref=credentials.check_ref(_text(fields, "credentials_ref")),
        by=by,
        dataflow=_text(fields, "dataflow", "default"),
        paused=paused,
        reason=_text(fields, "reason"),
    )


def parse_settings_change(body: Any) -> tuple[dict[str, str], str]:
    """A ``PATCH /api/v1/tenants/{tenant}`` body to ``(overrides, reason)``."""
    fields = _fields(body, CHANGE_FIELDS)
    return _settings(fields, required=True), _text(fields, "reason")


def parse_reason(body: Any) -> str:
    """A pause/resume/remove body (``{"reason": ...}``; an empty body is ``{}``) to its reason."""
    return _text(_fields(body, STATE_FIELDS), "reason")


# -- the registry, followed and changed --------------------------------------------------------


class ConsoleTenants:
    """The console's view of the registry, and the operator changes to it (see the module
    docstring). Changes are serialised in this process; between processes (two consoles, the
    CLI) the later record wins, as ``services/tenants/registry.py`` describes."""

    def __init__(
        self,
        settings: TetherSettings,
        codec: AvroCodec,
        *,
        producer: KafkaProducer | None = None,
        refresh_seconds: float = 2.0,
        ack_timeout: float = 10.0,
        admins: frozenset[str] = frozenset(),
    ) -> None:
        self.admins = admins
        self.directory = TenantDirectory(settings, codec)
        self.follower = DirectoryFollower(self.directory, refresh_seconds)
        # One directory for reads and for the registry's read-before-write: after a change is
        # acknowledged, reading it again makes the change visible to every reader at once.
        self.registry = TenantRegistry(
            settings, codec, producer=producer, directory=self.directory, ack_timeout=ack_timeout
        )
        self._writing = threading.Lock()

    def administers(self, name: str) -> bool:
        """Whether an operator may register, re-configure and remove tenants (not only pause and
        resume them): everyone when no administrators are named."""
        return not self.admins or name in self.admins

    def start(self) -> ConsoleTenants:
        self.follower.start()
        return self

    @property
    def loaded(self) -> bool:
        return self.directory.loaded

    def rows(self) -> list[dict[str, Any]]:
        """Every registered tenant (removed ones until erased), by id."""
        statuses = self.directory.statuses()
        return [
            describe(tenant, statuses.get(name))
            for name, tenant in sorted(self.directory.tenants().items())
        ]

    def ids(self) -> list[str]:
        return sorted(self.directory.tenants())

    def one(self, tenant: str) -> dict[str, Any] | None:
        found = self.directory.get(check_tenant_id(tenant))
        return describe(found, self.directory.status(tenant)) if found is not None else None

    def add(self, body: Any, *, by: str) -> dict[str, Any]:
        proposed = parse_registration(body, by=by)
        with self._writing:
            return self._shown(self.registry.add(proposed), "add")

    def change_settings(self, tenant: str, body: Any, *, by: str) -> dict[str, Any]:
        changes, reason = parse_settings_change(body)
        with self._writing:
            return self._shown(
                self.registry.update_settings(
                    check_tenant_id(tenant), changes, by=by, reason=reason
                ),
                "settings",
            )

    def set_state(self, tenant: str, command: str, body: Any, *, by: str) -> dict[str, Any]:
        reason = parse_reason(body)
        with self._writing:
            return self._shown(
                self.registry.set_state(
                    check_tenant_id(tenant), COMMAND_STATES[command], by=by, reason=reason
                ),
                command,
            )

    def _shown(self, tenant: Tenant, change: str) -> dict[str, Any]:
        # Not the reason: free text (it may name people), kept in the registration only. A
        # repeated pause or resume is logged with the version it left unchanged.
        log.info(
            "tenant change",
            extra={
                "fields": {
                    "change": change,
                    "tenant": tenant.tenant,
                    "state": tenant.state,
                    "version": tenant.version,
                    "actor": tenant.updated_by,
                }
            },
        )
        # Acknowledged already (TenantRegistry.put): read it back so that reads include it.
        self.directory.refresh()
        return describe(tenant, self.directory.status(tenant.tenant))

    def close(self) -> None:
        self.follower.stop()
        self.registry.close()
