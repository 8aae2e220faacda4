"""Client of the simulator's ``/_admin`` API, for tests, the bench and the demo (never production).

The admin API is not part of Wix: it seeds and inspects contacts, edits them "as a person in the
Wix dashboard would" (firing webhooks), injects faults and reads counters. Keeping this helper out
of ``client.py`` keeps the production client free of simulator shortcuts.

Imports: standard library and httpx only (talks HTTP, so it also drives a simulator running as its
own process).
"""

from __future__ import annotations

from typing import Any

import httpx


class WixAdmin:
    """Thin wrapper over the simulator's admin endpoints (JSON in, JSON out)."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/_admin", timeout=timeout_seconds
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WixAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def seed(
        self, contacts: list[dict[str, Any]], *, webhooks: bool = False
    ) -> list[dict[str, Any]]:
        """Import wire-format contacts (ids/dates/revisions kept when given)."""
        seeded: list[dict[str, Any]] = self._json(
            "POST", "/contacts", {"contacts": contacts, "webhooks": webhooks}
        )["contacts"]
        return seeded

    def contacts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/contacts")["contacts"]
        return found

    def contact(self, contact_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", f"/contacts/{contact_id}")["contact"]
        return found

    def edit(
        self, contact_id: str, info: dict[str, Any], *, silent: bool = False
    ) -> dict[str, Any]:
        """A dashboard edit: no revision needed, bumps revision/updatedDate, fires a webhook.
        ``silent``: a change behind the API's back instead (no bump, no webhook)."""
        body: dict[str, Any] = {"info": info, "silent": True} if silent else {"info": info}
        edited: dict[str, Any] = self._json("PATCH", f"/contacts/{contact_id}", body)["contact"]
        return edited

    def delete(self, contact_id: str) -> None:
        self._json("DELETE", f"/contacts/{contact_id}")

    def reset(self) -> None:
        self._json("POST", "/reset")

    def add_fault(self, **rule: Any) -> None:
        """Add a ``simkit.FaultRule`` (fields as keywords: ``kind="status", status=503``…)."""
        self._json("POST", "/faults", rule)

    def clear_faults(self) -> None:
        self._json("DELETE", "/faults")

    def webhook_settings(self, **settings: Any) -> dict[str, Any]:
        """Read (no arguments) or change the webhook delivery settings."""
        if settings:
            return self._json("PUT", "/webhooks", settings)
        return self._json("GET", "/webhooks")

    def deliveries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/webhooks/deliveries")["deliveries"]
        return found

    def counters(self) -> dict[str, Any]:
        return self._json("GET", "/counters")

    def rate_limit(
        self, limit: int | None = None, window_seconds: float | None = None
    ) -> dict[str, Any]:
        body = {
            k: v for k, v in (("limit", limit), ("windowSeconds", window_seconds)) if v is not None
        }
        return self._json("PUT", "/rate-limit", body) if body else self._json("GET", "/rate-limit")

    def public_key_pem(self) -> str:
        response = self._http.get("/public-key")
        response.raise_for_status()
        return response.text
