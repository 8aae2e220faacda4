"""A small HTTP client for the simulator's ``/_admin`` API (tests, demo, benchmarks only).

Talks to a ``PowerOfficeSimulator`` running in another process (``tether simulate poweroffice``)
or in a ``ServerThread``. Production code never imports this module: the real API has no
``/_admin``.

Imports: standard library, httpx, simkit (``FaultRule``) only.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import httpx

from services.connectors.simkit import FaultRule


class PowerOfficeSimulatorAdmin:
    """``root_url`` is the simulator's origin, e.g. ``http://127.0.0.1:8081`` (no ``/v2``)."""

    def __init__(self, root_url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=root_url.rstrip("/") + "/_admin", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PowerOfficeSimulatorAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _do(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        return bool(self._do("GET", "/health").get("ok"))

    def reset(self) -> None:
        self._do("POST", "/reset")

    def seed(
        self, resource: str, records: list[dict[str, Any]], *, validate: bool = True
    ) -> list[dict[str, Any]]:
        """Insert wire-format DTOs (PascalCase; read-only fields such as ``Id`` allowed)."""
        result = self._do(
            "POST", f"/{resource}/seed", json={"records": records, "validate": validate}
        )
        return list(result)

    def records(self, resource: str) -> list[dict[str, Any]]:
        """All records incl. deleted: ``[{"record": dto, "deleted": bool, "in_use": bool}]``."""
        return list(self._do("GET", f"/{resource}"))

    def record(self, resource: str, record_id: int) -> dict[str, Any]:
        return dict(self._do("GET", f"/{resource}/{record_id}"))

    def edit(
        self, resource: str, record_id: int, changes: dict[str, Any], *, silent: bool = False
    ) -> dict[str, Any]:
        """Change properties as a person in the product UI would (bumps LastChanged), or with
        ``silent`` behind the API's back (no stamp moves: only verification can find it)."""
        params = {"silent": "true"} if silent else None
        return dict(self._do("POST", f"/{resource}/{record_id}/edit", json=changes, params=params))

    def delete(self, resource: str, record_id: int, *, purge: bool = False) -> None:
        """Delete as in the product (tombstone kept for admin reads), or ``purge`` entirely."""
        self._do("DELETE", f"/{resource}/{record_id}", params={"purge": str(purge).lower()})

    def set_in_use(self, resource: str, record_id: int, in_use: bool = True) -> None:
        """Mark a record as referenced elsewhere, so the API's DELETE answers 409."""
        self._do("POST", f"/{resource}/{record_id}/in-use", json={"in_use": in_use})

    def add_fault(self, rule: FaultRule | dict[str, Any]) -> None:
        data = asdict(rule) if isinstance(rule, FaultRule) else dict(rule)
        if isinstance(data.get("body"), bytes):
            data["body"] = data["body"].decode()
        self._do("POST", "/faults", json=data)

    def clear_faults(self) -> None:
        self._do("DELETE", "/faults")

    def faults(self) -> dict[str, Any]:
        return dict(self._do("GET", "/faults"))

    def counters(self) -> dict[str, Any]:
        """``{"requests": [{method, resource, status, count}], "total", "rate_limited", ...}``."""
        return dict(self._do("GET", "/counters"))

    def reset_counters(self) -> None:
        self._do("DELETE", "/counters")

    def advance_clock(self, seconds: float) -> str:
        return str(self._do("POST", "/clock", json={"advance_seconds": seconds})["now"])

    def expire_tokens(self) -> None:
        self._do("POST", "/tokens/expire")

    def set_read_lag(self, seconds: float) -> dict[str, Any]:
        """Serve reads from a replica ``seconds`` behind the writes (0: read-your-writes)."""
        return dict(self._do("POST", "/realism", json={"read_lag_seconds": seconds}))

    def realism(self) -> dict[str, Any]:
        return dict(self._do("GET", "/realism"))
