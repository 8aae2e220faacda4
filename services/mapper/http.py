"""The mapper's public route: ``/explain`` on the public port (``public_port``, 9181).

* ``GET /explain?system=&resource=&id=[&tenant=]`` — the explain answer as JSON (200; 404 for a
  record the mapper has never seen; 400 for missing/unknown parameters);
* ``POST /explain`` with the same parameters as a JSON object.

The route has no authentication, so it answers ``explain.public_view``: statuses, ids, decisions,
reasons and property *names*, never values (names, e-mails, phones) or error messages. Operators
see the values in the console (authenticated, ``services.console``) or with ``tether explain``
(which needs the database credentials).

Both are routes of the service's public server (``services.core.public_http``: uvicorn, body cap,
request timeout), apart from ``/metrics`` and the probes on ``http_port``. Each request runs in a
worker thread and opens its own short-lived read-only connection: the loop's connection belongs
to the loop's thread.

Imports: standard library, psycopg, the core public HTTP server and the mapper's explain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from services.core.public_http import PublicServer
from services.core.topics import RESOURCES
from services.mapper.explain import explain_record, public_view

EXPLAIN_PATH = "/explain"
JSON = "application/json"

Answer = tuple[int, str, bytes]


def _reply(status: int, payload: Any) -> Answer:
    return status, JSON, json.dumps(payload, ensure_ascii=False, default=str).encode()


class ExplainEndpoint:
    """Answers explain requests from a fresh PostgreSQL connection each."""

    def __init__(self, dsn: Callable[[], str], default_tenant: str) -> None:
        self._dsn = dsn
        self.default_tenant = default_tenant

    def answer(self, params: Mapping[str, str]) -> Answer:
        system = params.get("system", "")
        resource = params.get("resource", "")
        record_id = params.get("id", "")
        tenant = params.get("tenant") or self.default_tenant
        if not record_id or resource not in RESOURCES.get(system, ()):
            return _reply(400, {"error": "need system, resource and id of a known resource"})
        try:
            with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
                # psycopg's ``read_only`` only applies to the transactions *it* opens, never
                # in autocommit mode: make the session itself read-only.
                conn.execute("SET default_transaction_read_only = on")
                body = explain_record(conn, tenant, system, resource, record_id)
        except psycopg.Error as exc:
            return _reply(503, {"error": f"PostgreSQL unavailable ({type(exc).__name__})"})
        # No authentication on this port: never personal data (the console serves it to operators).
        return _reply(404 if body["status"] == "unknown" else 200, public_view(body))

    def post(self, body: bytes, _headers: dict[str, str]) -> Answer:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return _reply(400, {"error": "body must be a JSON object"})
        if not isinstance(params, dict):
            return _reply(400, {"error": "body must be a JSON object"})
        return self.answer({str(k): str(v) for k, v in params.items() if v is not None})


def install(http: PublicServer | None, endpoint: ExplainEndpoint) -> None:
    """Serve ``/explain`` on the public server (before it is started)."""
    if http is None:
        raise ValueError("the mapper has no public port for /explain")
    http.add_get(EXPLAIN_PATH, endpoint.answer)
    http.add_route("POST", EXPLAIN_PATH, endpoint.post)
