"""The error tree every Tether component raises.

Adapters translate library errors at the boundary (``raise ... from exc``) into this tree; loops
retry only errors whose ``retriable`` flag is true and turn permanent ones into dead letters.

    TetherError (retriable=False)
    ├── ConfigurationError            settings missing or inconsistent
    ├── DecodeError                   bytes that are not a valid event (corrupt, unknown schema)
    ├── ContractError                 a payload that decodes but violates the contract (e.g. no Id)
    ├── ApiError                      an HTTP API answered with an error
    │   ├── AuthenticationError       401 / token endpoint refused the credentials
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404
    │   ├── ConflictError             409 (revision mismatch, duplicate, in use)
    │   ├── ValidationError           400 / 422 the request itself is wrong
    │   ├── RateLimitedError          429 (retriable, carries retry_after)
    │   └── ServerError               5xx (retriable)
    ├── TransportError                timeouts, refused/dropped connections (retriable)
    └── TenantIsolatedError           a tenant's breaker is open: call later (retriable)

This module imports nothing but the standard library. Messages must never contain secrets,
tokens, e-mail addresses or phone numbers: callers pass identifiers and status codes only.
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """Base of every error Tether raises on purpose."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable

    @property
    def code(self) -> str:
        """A stable, low-cardinality name for metrics and dead letters."""
        return type(self).__name__


class ConfigurationError(TetherError):
    """Settings are missing or inconsistent; the process cannot start."""


class DecodeError(TetherError):
    """Bytes could not be decoded as a Tether event (corrupt frame, unknown schema fingerprint)."""


class ContractError(TetherError):
    """A payload decoded but violates the data contract (wrong types, missing identity)."""


class ApiError(TetherError):
    """A SaaS API answered with an error status.

    ``system`` is ``"poweroffice"`` or ``"wix"``; ``status`` the HTTP status; ``error_code`` the
    API's own machine-readable code where it gives one (e.g. ``CONTACT_ALREADY_CHANGED``);
    ``data`` the structured error data (ids only — never personal data in the message).
    """

    def __init__(
        self,
        message: str,
        *,
        system: str,
        status: int | None = None,
        error_code: str | None = None,
        data: dict[str, Any] | None = None,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.system = system
        self.status = status
        self.error_code = error_code
        self.data = data or {}

    def __str__(self) -> str:
        parts = [self.args[0] if self.args else type(self).__name__]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.error_code:
            parts.append(f"code={self.error_code}")
        return f"[{self.system}] " + " ".join(parts)


class AuthenticationError(ApiError):
    """The API refused the credentials (401, or 400 from a token endpoint)."""


class PermissionDeniedError(ApiError):
    """The credentials are valid but lack a permission (403)."""


class NotFoundError(ApiError):
    """The record does not exist (404)."""


class ConflictError(ApiError):
    """The write conflicts with the current state (409): stale revision, duplicate, in use."""


class ValidationError(ApiError):
    """The API rejected the request as invalid (400/422); retrying the same request cannot help."""


class RateLimitedError(ApiError):
    """The API throttled the call (429). ``retry_after`` is in seconds when the API said."""

    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """The API failed (5xx); the same request may succeed later."""

    retriable = True


class TransportError(TetherError):
    """The request did not complete: timeout, refused or dropped connection."""

    retriable = True


class TenantIsolatedError(TetherError):
    """A tenant's circuit breaker for a system is open (services/core/breaker.py): the call was
    not made. ``retry_in`` is how long until the breaker lets a probe through."""

    retriable = True

    def __init__(self, tenant: str, system: str, retry_in: float) -> None:
        super().__init__(f"tenant {tenant}: {system} calls held by its breaker")
        self.tenant = tenant
        self.system = system
        self.retry_in = retry_in
