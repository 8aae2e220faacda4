"""Whether a tenant's command runs, waits or is refused (pure: imports no I/O library).

With the tenant registry on (``tenants_from_registry``), the loader asks ``admit`` about the
tenant each command carries, when a worker is about to take it:

========================================  =========  ==============================================
tenant                                    verdict    why
========================================  =========  ==============================================
``active``                                RUN        its clients apply it
``paused``                                HOLD       kept queued, in order per link, not failed:
                                                     applied after ``resume``
``removed``                               REFUSE     ``TENANT_REMOVED``: a FAILED outcome + dead
                                                     letter, nothing written to its APIs
absent, the deployment's own tenant       RUN        the environment's settings and credentials
(``TETHER_TENANT``)                                  (a deployment without registrations behaves
                                                     as before the registry)
absent, registry not read yet             HOLD       it may be there: wait for the first read
absent after a later refresh              REFUSE     ``TENANT_UNKNOWN``: FAILED + dead letter
absent, not confirmed by a refresh yet    HOLD       a registration acknowledged a moment ago may
                                                     not be read yet
========================================  =========  ==============================================

``tenant_health`` says what a finished command tells the tenant's breaker: a failure when its API
gave up (retries exhausted), refused its credentials or permissions, or its settings/credentials
do not resolve; a success when the target took or explained the write; nothing for a refused
write (REJECTED: the data's fault) or a refused tenant.

Why FAILED (with a dead letter) and not a dead letter alone: the mapper waits for one outcome per
command it sent; without one it would re-send the command forever. FAILED tells it the command
ended without writing, and the dead letter keeps the original bytes for an operator (replay after
re-adding the tenant, or discard with its erasure).

Imports: the core errors and ``services.tenants.model`` (pydantic only); imports no I/O library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.core.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    TetherError,
)
from services.loader.plan import Result
from services.tenants.model import Tenant

TENANT_REMOVED = "TENANT_REMOVED"
TENANT_UNKNOWN = "TENANT_UNKNOWN"


class Admission(StrEnum):
    RUN = "run"
    HOLD = "hold"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Verdict:
    admission: Admission
    reason: str = ""
    """For REFUSE: the outcome's ``error_code`` (``TENANT_REMOVED`` / ``TENANT_UNKNOWN``)."""


class TenantNotServedError(TetherError):
    """A command of a removed or unknown tenant: never applied (the message names the tenant
    id and the reason only)."""

    def __init__(self, tenant: str, reason: str) -> None:
        what = "is removed" if reason == TENANT_REMOVED else "is not in the tenant registry"
        super().__init__(f"tenant {tenant!r} {what}: command not applied")
        self.reason = reason

    @property
    def code(self) -> str:
        return self.reason


def admit(
    registration: Tenant | None, *, own_tenant: bool, loaded: bool, absent_confirmed: bool
) -> Verdict:
    """The verdict for one tenant (see the module's table).

    ``own_tenant``: the tenant is the deployment's ``TETHER_TENANT``; ``loaded``: the registry
    was read once; ``absent_confirmed``: a refresh that started after the tenant was first looked
    for did not find it either."""
    if registration is not None:
        if registration.state == "active":
            return Verdict(Admission.RUN)
        if registration.state == "paused":
            return Verdict(Admission.HOLD)
        return Verdict(Admission.REFUSE, TENANT_REMOVED)
    if own_tenant:
        return Verdict(Admission.RUN)
    if loaded and absent_confirmed:
        return Verdict(Admission.REFUSE, TENANT_UNKNOWN)
    return Verdict(Admission.HOLD)


def tenant_health(result: Result, error: BaseException | None) -> bool | None:
    """True: a success for the tenant's breaker; False: a failure; None: says nothing."""
    if not result.is_failure:
        return True
    if isinstance(error, TenantNotServedError) or not isinstance(error, TetherError):
        return None
    if error.retriable or isinstance(
        error, (AuthenticationError, PermissionDeniedError, ConfigurationError)
    ):
        return False
    return None
