"""Simulator only: Wix-format error bodies (reference §5).

``SimApiError`` is raised anywhere in the simulator and rendered by the app as
``{"message", "details": {"applicationError": {"code", "description", "data"}}}`` or
``{"message", "details": {"validationError": {"fieldViolations": [...]}}}``.
Production code must not import this module. Imports: standard library only.
"""

from __future__ import annotations

from typing import Any


class SimApiError(Exception):
    """An error answer of the simulated API."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        description: str | None = None,
        data: dict[str, Any] | None = None,
        violations: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.description = description
        self.data = data or {}
        self.violations = violations
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        if self.violations is not None:
            return {
                "message": self.message,
                "details": {"validationError": {"fieldViolations": self.violations}},
            }
        return {
            "message": self.message,
            "details": {
                "applicationError": {
                    "code": self.code or "UNKNOWN",
                    "description": self.description or self.message,
                    "data": self.data,
                }
            },
        }


def app_error(
    status: int,
    code: str,
    message: str,
    description: str | None = None,
    data: dict[str, Any] | None = None,
) -> SimApiError:
    return SimApiError(status, message, code=code, description=description, data=data)


def invalid(description: str, field: str, rule: str) -> SimApiError:
    """400 with a validationError naming one field (values never echoed)."""
    return SimApiError(
        400,
        f"INVALID_ARGUMENT: {field} {description}",
        violations=[
            {
                "field": field,
                "description": description,
                "violatedRule": rule,
                "ruleName": rule,
                "data": {},
            }
        ],
    )
