"""The rules of a fleet replica's tenants, as pure functions (``fleet.py`` applies them).

- :func:`plan_units`: given the registrations on the partitions this replica owns and the
  tenant units it runs, which units to start, stop and rebuild (a changed registration of a
  running tenant: its settings or credentials may differ, so its unit is built again);
- :func:`phase_of`: the phase the owner reports for a tenant (``TenantStatus``);
- :func:`replica_id`: this replica's name in those reports;
- :func:`tenant_for`: the tenant a push is for (the registration whose setting it names).

Pure: imports no I/O library (standard library and the tenant model only; no clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.tenants.model import Phase, Tenant


@dataclass(frozen=True)
class UnitPlan:
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    rebuild: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.start or self.stop or self.rebuild)


def plan_units(wanted: Mapping[str, Tenant], running: Mapping[str, int]) -> UnitPlan:
    """``wanted``: the latest registration of every tenant on an owned partition; ``running``:
    per tenant unit, the registration version it was built from."""
    runs = {tenant: reg for tenant, reg in wanted.items() if reg.runs}
    return UnitPlan(
        start=tuple(sorted(set(runs) - set(running))),
        stop=tuple(sorted(set(running) - set(runs))),
        rebuild=tuple(sorted(t for t in set(runs) & set(running) if runs[t].version != running[t])),
    )


def phase_of(
    registration: Tenant, *, ready: bool, covered: bool, failing: Mapping[str, str]
) -> tuple[Phase, str]:
    """The phase and its detail (a failing tenant's error classes, never a message).

    ``ready``: its unit started (cursors and known set loaded); ``covered``: every stream of the
    tenant has read everything once; ``failing``: per task, the error class of its last cycle,
    while it keeps failing."""
    if registration.state == "paused":
        return "paused", ""
    if registration.state == "removed":
        return "stopped", ""
    if failing:
        return "failing", ",".join(sorted(set(failing.values())))
    if not ready:
        return "onboarding", ""
    if not covered:
        return "initial_sync", ""
    return "live", ""


def replica_id(environ: Mapping[str, str], host: str, pid: int) -> str:
    """The pod name (``HOSTNAME`` on Kubernetes), else ``host-pid``."""
    return environ.get("HOSTNAME") or f"{host}-{pid}"


def tenant_for(tenants: Mapping[str, Tenant], setting: str, key: str) -> Tenant | None:
    """The registered tenant whose ``setting`` is ``key`` (a push's tenant key), else None.

    A removed tenant is no one's; should two registrations name the same key (a mistake the
    registry does not prevent), an active one wins, then the lowest id."""
    named = sorted(
        (t for t in tenants.values() if t.settings.get(setting) == key and t.state != "removed"),
        key=lambda t: (not t.runs, t.tenant),
    )
    return named[0] if named else None
