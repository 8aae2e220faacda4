"""A local stand-in for the PowerOffice Go v2 API (tests, demo, benchmarks) — never production.

``PowerOfficeSimulator`` builds a Starlette app that answers like the real gateway and API as
described in ``shared/reference/poweroffice-go-v2.md`` (decisions on the reference's UNCONFIRMED
points: ``docs/poweroffice-decisions.md``):

- ``POST /OAuth/Token`` (also ``/Demo/OAuth/Token``): client-credentials grant with
  ``Authorization: Basic base64(appKey:clientKey)`` and ``Ocp-Apim-Subscription-Key``; 20-minute
  opaque bearer tokens, no refresh token; 400 ``invalid_client`` on wrong keys.
- ``/v2`` (also ``/Demo/v2``; paths case-insensitive): ``Employees``, ``Customers`` and
  ``ContactPersons`` with list/get/post/patch/delete, filters, ``PageNumber``/``PageSize``/
  ``Fields``/``OrderBy``, 204 on an empty page, ProblemDetails errors (``simstore.py`` holds the
  records and the rules).
- 10 requests/second per subscription key (``simkit.WindowRateLimiter``) -> 429 with the gateway's
  body and a ``Retry-After`` header; ``SimulatorLimits.lifted()`` removes the limit.
- ``/_admin/...`` (no auth, not part of the real API): seed, inspect (incl. deleted), UI-style
  edits (``?silent=true``: behind the API's back, no stamp moves), deletes, reset, fault rules,
  request counters, clock, token expiry and the realism options. ``admin.py`` is a small client
  for it.
- Realism options (``SimulatorLimits``, all off by default): ``read_lag_seconds`` (reads served
  by a replica that lags the writes; also ``POST /_admin/realism`` at run time),
  ``page_size_clamp`` (fewer records per page than ``PageSize`` asked for), a short
  ``token_lifetime_seconds``, ``patch_test_failure_status`` (400, as the v2 OpenAPI documents
  for PATCH, or 409).

The app is wrapped in ``simkit.FaultInjector`` and a request counter. The clock is injectable
(``ManualClock``) so tests can expire tokens. ``main(argv)`` runs it as its own process. Many Go
clients in one process: ``simtenants.PowerOfficeSimulators`` holds one of these per tenant and
routes by credentials.

Imports: standard library, starlette, simkit, ``simstore``/``models``; never the production client.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import json
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final, get_args
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.connectors.poweroffice.models import RESOURCES, Resource
from services.connectors.poweroffice.simstore import (
    Page,
    PowerOfficeStore,
    ProblemDetailsError,
    cast_problem,
)
from services.connectors.simkit import (
    ASGIApp,
    FaultInjector,
    FaultKind,
    FaultRule,
    Message,
    Receive,
    Scope,
    Send,
    ServerThread,
    WindowRateLimiter,
    run_forever,
)

DEFAULT_APPLICATION_KEY: Final = "sim-application-key"
DEFAULT_CLIENT_KEY: Final = "sim-client-key"
DEFAULT_SUBSCRIPTION_KEY: Final = "sim-subscription-key"

MISSING_SUBSCRIPTION_KEY: Final = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
INVALID_SUBSCRIPTION_KEY: Final = (
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an "
    "active subscription."
)

_RESOURCE_BY_SEGMENT: Final[dict[str, Resource]] = {
    "employees": "employees",
    "customers": "customers",
    "contactpersons": "contactpersons",
}
_JSON_TYPES: Final = ("application/json", "text/json", "application/json-patch+json")
_PATCH_TYPE: Final = "application/json-patch+json"


@dataclass(frozen=True)
class Credentials:
    """The keys the simulated gateway accepts (defaults are for local use only)."""

    application_key: str = DEFAULT_APPLICATION_KEY
    client_key: str = DEFAULT_CLIENT_KEY
    subscription_key: str = DEFAULT_SUBSCRIPTION_KEY


@dataclass(frozen=True)
class SimulatorLimits:
    """Real limits by default; ``lifted()`` for benchmarks."""

    requests_per_second: int = 10
    window_seconds: float = 1.0
    token_lifetime_seconds: int = 1200
    default_page_size: int = 5000
    max_page_size: int = 20_000
    send_retry_after: bool = True
    #: A 429 uses a slot of the window too (gateways that count every arrival); off by default.
    #: ``requests_per_second`` is the real limit: set it below a client's budget to model a key
    #: whose limit other apps share.
    count_throttled: bool = False
    #: A failed JSON Patch ``test``: 400 ProblemDetails (the only refusal the v2 OpenAPI lists
    #: for PATCH) or 409.
    patch_test_failure_status: int = 400
    #: Reads (GET by id and lists) lag the writes by this many seconds; 0 = read-your-writes.
    read_lag_seconds: float = 0.0
    #: List pages hold at most this many records whatever ``PageSize`` asks (None: no clamp).
    page_size_clamp: int | None = None

    @classmethod
    def lifted(cls, **overrides: Any) -> SimulatorLimits:
        return cls(requests_per_second=0, **overrides)


class ManualClock:
    """A settable UTC clock for tests: ``clock()`` returns the current value."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value


def _utcnow() -> datetime:
    return datetime.now(UTC)


def gateway_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An Azure API Management style error body (gateway-level, not ProblemDetails)."""
    return JSONResponse({"statusCode": status, "message": message}, status, headers=headers)


def _problem(exc: ProblemDetailsError, instance: str) -> Response:
    body = {
        "type": f"https://httpstatuses.io/{exc.status}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": instance,
    }
    return JSONResponse(body, exc.status, media_type="application/problem+json")


def _resource_label(path: str) -> str:
    parts = [p for p in path.lower().split("/") if p]
    if parts and parts[0] == "demo":
        parts = parts[1:]
    if parts[:2] == ["oauth", "token"]:
        return "token"
    if len(parts) >= 2 and parts[0] == "v2" and parts[1] in _RESOURCE_BY_SEGMENT:
        return parts[1]
    return "other"


class _Counting:
    """Outermost middleware: counts API requests by (method, resource, status)."""

    def __init__(
        self,
        app: ASGIApp,
        counters: collections.Counter[tuple[str, str, int]],
        lock: threading.Lock,
    ) -> None:
        self.app = app
        self.counters = counters
        self.lock = lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_admin"):
            await self.app(scope, receive, send)
            return
        status = 0
        counted = False
        key_resource = _resource_label(scope["path"])

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                with self.lock:
                    self.counters[(scope["method"], key_resource, status)] += 1

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # Count before the client sees anything: a 204 is complete for the client at
                # its headers, before the app's (empty) body message is even sent.
                count()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            count()


def fault_rule_from_json(data: Mapping[str, Any]) -> FaultRule:
    """Build a ``FaultRule`` from JSON (``body`` as a string); unknown keys are an error."""
    known = {f.name for f in fields(FaultRule)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
    if data.get("kind") not in get_args(FaultKind):
        raise ValueError(f"kind must be one of {get_args(FaultKind)}")
    kwargs = dict(data)
    if isinstance(kwargs.get("body"), str):
        kwargs["body"] = kwargs["body"].encode()
    return FaultRule(**kwargs)


def fault_rule_to_json(rule: FaultRule) -> dict[str, Any]:
    out = {f.name: getattr(rule, f.name) for f in fields(FaultRule)}
    out["body"] = rule.body.decode(errors="replace")
    return out


class PowerOfficeSimulator:
    """The simulated PowerOffice Go v2 API: ``.app`` (ASGI), ``.store``, admin helpers.

    Use in-process with ``simkit.ServerThread`` (``with sim.serve() as server: ...``) or as its
    own process with ``main``. ``base_url(server)``/``token_url(server)`` give the client URLs.
    """

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        limits: SimulatorLimits | None = None,
        clock: Callable[[], datetime] | None = None,
        fault_seed: int = 7,
        rate_limiter: WindowRateLimiter | None = None,
        on_token: Callable[[str, float], None] | None = None,
    ) -> None:
        """``rate_limiter``: one shared with other clients on the same subscription key (the
        gateway counts per key, whichever client sends); ``on_token(token, lifetime_seconds)``
        is told of every token issued (the multi-tenant front routes bearer calls with it)."""
        self.credentials = credentials or Credentials()
        self.limits = limits or SimulatorLimits()
        self._clock = clock or _utcnow
        self._offset = timedelta(0)
        self.store = PowerOfficeStore(
            clock=self.now,
            patch_test_failure_status=self.limits.patch_test_failure_status,
            read_lag_seconds=self.limits.read_lag_seconds,
            page_size_clamp=self.limits.page_size_clamp,
        )
        self.rate_limiter = rate_limiter or WindowRateLimiter(
            self.limits.requests_per_second,
            self.limits.window_seconds,
            count_rejected=self.limits.count_throttled,
        )
        self._on_token = on_token
        self._tokens: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self.tokens_issued = 0
        self.counters: collections.Counter[tuple[str, str, int]] = collections.Counter()
        routes = [
            Route("/_admin/health", self._admin_health, methods=["GET"]),
            Route("/_admin/reset", self._admin_reset, methods=["POST"]),
            Route("/_admin/faults", self._admin_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_admin/counters", self._admin_counters, methods=["GET", "DELETE"]),
            Route("/_admin/clock", self._admin_clock, methods=["GET", "POST"]),
            Route("/_admin/tokens/expire", self._admin_expire_tokens, methods=["POST"]),
            Route("/_admin/realism", self._admin_realism, methods=["GET", "POST"]),
            Route("/_admin/{resource}/seed", self._admin_seed, methods=["POST"]),
            Route("/_admin/{resource}", self._admin_list, methods=["GET"]),
            Route(
                "/_admin/{resource}/{record_id:int}",
                self._admin_record,
                methods=["GET", "DELETE"],
            ),
            Route("/_admin/{resource}/{record_id:int}/edit", self._admin_edit, methods=["POST"]),
            Route(
                "/_admin/{resource}/{record_id:int}/in-use", self._admin_in_use, methods=["POST"]
            ),
            Route(
                "/{path:path}",
                self._api,
                methods=["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"],
            ),
        ]
        self.faults = FaultInjector(Starlette(routes=routes), seed=fault_seed)
        self.app: ASGIApp = _Counting(self.faults, self.counters, self._lock)

    # -- helpers for tests, the demo and benchmarks -------------------------------------------

    def now(self) -> datetime:
        """The simulator's clock (the injected clock plus any admin advance)."""
        return self._clock() + self._offset

    def advance_clock(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServerThread:
        """A ``ServerThread`` for this app (not started; use it as a context manager)."""
        return ServerThread(self.app, host=host, port=port)

    @staticmethod
    def base_url(server: ServerThread, *, demo: bool = False) -> str:
        return server.url + ("/Demo/v2" if demo else "/v2")

    @staticmethod
    def token_url(server: ServerThread, *, demo: bool = False) -> str:
        return server.url + ("/Demo/OAuth/Token" if demo else "/OAuth/Token")

    def seed(self, resource: Resource, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.store.seed(resource, records)

    def edit(self, resource: Resource, record_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        return self.store.edit(resource, record_id, changes)

    def add_fault(self, rule: FaultRule) -> None:
        self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def set_read_lag(self, seconds: float) -> None:
        """Serve reads from a replica ``seconds`` behind the writes (0: read-your-writes)."""
        self.store.set_read_lag(seconds)

    def realism(self) -> dict[str, Any]:
        return {
            "read_lag_seconds": self.store.read_lag_seconds,
            "page_size_clamp": self.store.page_size_clamp,
            "patch_test_failure_status": self.store.patch_test_failure_status,
            "token_lifetime_seconds": self.limits.token_lifetime_seconds,
        }

    def reset(self) -> None:
        self.store.reset()
        self.set_read_lag(self.limits.read_lag_seconds)
        self.expire_tokens()
        self.clear_faults()
        self.reset_counters()

    def reset_counters(self) -> None:
        with self._lock:
            self.counters.clear()
            self.rate_limiter.rejected = 0
            self.tokens_issued = 0

    def count(
        self, *, method: str | None = None, resource: str | None = None, status: int | None = None
    ) -> int:
        """Requests seen (after fault injection) matching the given method/resource/status."""
        with self._lock:
            items = list(self.counters.items())
        return sum(
            n
            for (m, r, s), n in items
            if (method is None or m == method)
            and (resource is None or r == resource)
            and (status is None or s == status)
        )

    def counters_json(self) -> dict[str, Any]:
        with self._lock:
            items = sorted(self.counters.items())
        return {
            "requests": [
                {"method": m, "resource": r, "status": s, "count": n} for (m, r, s), n in items
            ],
            "total": sum(n for _, n in items),
            "rate_limited": self.rate_limiter.rejected,
            "tokens_issued": self.tokens_issued,
            "faults_injected": dict(self.faults.injected),
        }

    # -- gateway ------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        path = request.url.path
        parts = [p for p in path.lower().split("/") if p]
        if parts and parts[0] == "demo":
            parts = parts[1:]
        is_token = parts == ["oauth", "token"]
        if not is_token and (len(parts) < 2 or parts[0] != "v2"):
            return gateway_error(404, "Resource not found")
        query = self._query(request)
        key = request.headers.get("ocp-apim-subscription-key") or query.get("subscription-key")
        if not key:
            return gateway_error(401, MISSING_SUBSCRIPTION_KEY)
        if not secrets.compare_digest(key, self.credentials.subscription_key):
            return gateway_error(401, INVALID_SUBSCRIPTION_KEY)
        if not self.rate_limiter.allow(key):
            wait = self.rate_limiter.retry_after(key)
            headers = {"Retry-After": str(wait)} if self.limits.send_retry_after else None
            body = {
                "statusCode": "429",
                "message": f"Rate limit is exceeded. Try again in {wait} seconds.",
            }
            return JSONResponse(body, 429, headers=headers)
        if is_token:
            if request.method != "POST":
                return gateway_error(404, "Resource not found")
            return await self._token(request)
        if not self._authorized(request):
            return gateway_error(
                401,
                "Unauthorized. Access token is missing or invalid.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        try:
            return await self._dispatch(request, parts[1:], query)
        except ProblemDetailsError as exc:
            return _problem(exc, path)

    @staticmethod
    def _query(request: Request) -> dict[str, str]:
        """Query keys lower-cased (ASP.NET binds case-insensitively); ``resourceParameter[X]``
        and ``resourceParameter.X`` are accepted as ``X``."""
        out: dict[str, str] = {}
        for key, value in parse_qsl(request.url.query, keep_blank_values=True):
            lowered = key.lower()
            for prefix in ("resourceparameter[", "resourceparameter."):
                if lowered.startswith(prefix):
                    lowered = lowered[len(prefix) :].rstrip("]")
            out[lowered] = value
        return out

    async def _token(self, request: Request) -> Response:
        raw = (await request.body()).decode(errors="replace")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Only the client_credentials grant type is supported.",
                },
                400,
            )
        auth = request.headers.get("authorization", "")
        app_key = client_key = ""
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
                app_key, _, client_key = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        if not (
            secrets.compare_digest(app_key, self.credentials.application_key)
            and secrets.compare_digest(client_key, self.credentials.client_key)
        ):
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "Client integration not found. Please ensure the "
                    "provided keys are matching the desired environment.",
                },
                400,
            )
        token = secrets.token_urlsafe(32)
        lifetime = self.limits.token_lifetime_seconds
        now = self.now()
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + timedelta(seconds=lifetime)
            self.tokens_issued += 1
        if self._on_token is not None:
            self._on_token(token, lifetime)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": lifetime},
            headers={"Cache-Control": "no-store"},
        )

    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() != "bearer ":
            return False
        token = auth[7:].strip()
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and expires > self.now()

    # -- API ----------------------------------------------------------------------------------

    async def _dispatch(
        self, request: Request, parts: list[str], query: dict[str, str]
    ) -> Response:
        resource = _RESOURCE_BY_SEGMENT.get(parts[0])
        ids: list[int] = []
        for part in parts[1:]:
            if not part.isdigit():
                return gateway_error(404, "Resource not found")
            ids.append(int(part))
        method = request.method
        if resource is None or len(ids) > 2:
            return gateway_error(404, "Resource not found")
        if any(k.startswith("$") for k in query):
            raise cast_problem(
                "OData query options ($top, $skip, $filter, ...) are not supported; "
                "use PageNumber, PageSize and the filter parameters."
            )
        person = resource == "contactpersons"
        collection = len(ids) == (1 if person and method == "POST" else 0)
        item = len(ids) == (2 if person else 1)
        if method == "GET" and len(ids) == 0:
            return self._list(resource, query)
        if method == "POST" and collection:
            await self._require_json(request, _JSON_TYPES)
            body = await self._json(request)
            created = self.store.create(resource, body, contact_id=ids[0] if person else None)
            return JSONResponse(created, 201)
        if not item:
            return gateway_error(404, "Resource not found")
        record_id = ids[-1]
        contact_id = ids[0] if person else None
        if method == "GET":
            return JSONResponse(self.store.get(resource, record_id, contact_id))
        if method == "PATCH":
            await self._require_json(request, (_PATCH_TYPE,))
            operations = await self._json(request)
            patched = self.store.patch(resource, record_id, operations, contact_id=contact_id)
            return JSONResponse(patched)
        if method == "DELETE":
            self.store.delete(resource, record_id, contact_id)
            return Response(status_code=200)
        return gateway_error(404, "Resource not found")

    def _list(self, resource: Resource, query: dict[str, str]) -> Response:
        page: Page = self.store.query(
            resource,
            query,
            default_page_size=self.limits.default_page_size,
            max_page_size=self.limits.max_page_size,
        )
        if not page.items:
            return Response(status_code=204)
        pagination: dict[str, Any] = {
            "currentPage": page.page_number,
            "pageSize": page.page_size,
            "totalCount": page.total_count,
            "totalPages": page.total_pages,
            "hasPrevious": page.page_number > 1,
            "hasNext": page.has_next,
            "nextPageLink": None,
            "previousPageLink": None,
        }
        if page.has_next:
            pagination["nextPageLink"] = f"PageNumber={page.page_number + 1}"
        if page.page_number > 1:
            pagination["previousPageLink"] = f"PageNumber={page.page_number - 1}"
        return JSONResponse(page.items, headers={"X-Pagination": json.dumps(pagination)})

    @staticmethod
    async def _require_json(request: Request, accepted: Sequence[str]) -> None:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        ok = media in accepted or (
            accepted is _JSON_TYPES and media.startswith("application/") and media.endswith("+json")
        )
        if not ok:
            raise ProblemDetailsError(
                415,
                "Unsupported Media Type",
                f"Content-Type must be one of: {', '.join(accepted)}.",
            )

    @staticmethod
    async def _json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise cast_problem("The request body is not valid JSON.") from None

    # -- admin --------------------------------------------------------------------------------

    @staticmethod
    def _admin_resource(request: Request) -> Resource:
        name = str(request.path_params["resource"]).lower()
        if name not in RESOURCES:
            raise ProblemDetailsError(404, "Not found", f"Unknown resource '{name}'.")
        return _RESOURCE_BY_SEGMENT[name]

    async def _admin_call(
        self, request: Request, action: Callable[[], Any], status: int = 200
    ) -> Response:
        try:
            result = action()
        except ProblemDetailsError as exc:
            return _problem(exc, request.url.path)
        except ValueError as exc:
            return _problem(
                ProblemDetailsError(400, "Bad admin request", str(exc)), request.url.path
            )
        return JSONResponse(result, status)

    async def _admin_health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _admin_seed(self, request: Request) -> Response:
        body = await self._json_or_problem(request)
        if isinstance(body, Response):
            return body
        validate = True
        if isinstance(body, dict):
            validate = bool(body.get("validate", True))
            body = body.get("records")

        def action() -> Any:
            return self.store.seed(self._admin_resource(request), body, validate=validate)

        return await self._admin_call(request, action, 201)

    async def _admin_list(self, request: Request) -> Response:
        return await self._admin_call(
            request, lambda: self.store.admin_list(self._admin_resource(request))
        )

    async def _admin_record(self, request: Request) -> Response:
        record_id = int(request.path_params["record_id"])
        if request.method == "GET":
            return await self._admin_call(
                request, lambda: self.store.admin_get(self._admin_resource(request), record_id)
            )
        purge = request.query_params.get("purge", "").lower() in ("1", "true", "yes")

        def action() -> Any:
            resource = self._admin_resource(request)
            if purge:
                self.store.purge(resource, record_id)
            else:
                self.store.delete(resource, record_id, force=True)
            return {"ok": True}

        return await self._admin_call(request, action)

    async def _admin_edit(self, request: Request) -> Response:
        body = await self._json_or_problem(request)
        if isinstance(body, Response):
            return body
        record_id = int(request.path_params["record_id"])
        silent = request.query_params.get("silent", "false").lower() == "true"
        return await self._admin_call(
            request,
            lambda: self.store.edit(self._admin_resource(request), record_id, body, silent=silent),
        )

    async def _admin_in_use(self, request: Request) -> Response:
        body = await self._json_or_problem(request)
        if isinstance(body, Response):
            return body
        record_id = int(request.path_params["record_id"])
        in_use = bool(body.get("in_use", True)) if isinstance(body, dict) else True

        def action() -> Any:
            self.store.set_in_use(self._admin_resource(request), record_id, in_use)
            return {"ok": True}

        return await self._admin_call(request, action)

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True})
        if request.method == "POST":
            body = await self._json_or_problem(request)
            if isinstance(body, Response):
                return body

            def action() -> Any:
                items = body if isinstance(body, list) else [body]
                rules = [fault_rule_from_json(item) for item in items]
                for rule in rules:
                    self.add_fault(rule)
                return {"ok": True, "added": len(rules)}

            return await self._admin_call(request, action, 201)
        with self.faults._lock:  # a consistent snapshot of the rules
            rules = [fault_rule_to_json(rule) for rule in self.faults.rules]
        return JSONResponse({"rules": rules, "injected": dict(self.faults.injected)})

    async def _admin_counters(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.reset_counters()
            return JSONResponse({"ok": True})
        return JSONResponse(self.counters_json())

    async def _admin_clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self._json_or_problem(request)
            if isinstance(body, Response):
                return body
            seconds = body.get("advance_seconds", 0) if isinstance(body, dict) else 0
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                return _problem(cast_problem("advance_seconds must be a number."), "/_admin/clock")
            self.advance_clock(float(seconds))
        return JSONResponse({"now": self.now().isoformat()})

    async def _admin_realism(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self._json_or_problem(request)
            if isinstance(body, Response):
                return body
            lag = body.get("read_lag_seconds") if isinstance(body, dict) else None
            if not isinstance(lag, int | float) or isinstance(lag, bool) or lag < 0:
                return _problem(
                    cast_problem("read_lag_seconds must be a number >= 0."), "/_admin/realism"
                )
            self.set_read_lag(float(lag))
        return JSONResponse(self.realism())

    async def _admin_expire_tokens(self, request: Request) -> Response:
        self.expire_tokens()
        return JSONResponse({"ok": True})

    async def _json_or_problem(self, request: Request) -> Any:
        try:
            return await self._json(request)
        except ProblemDetailsError as exc:
            return _problem(exc, request.url.path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether simulate poweroffice",
        description="Run the local PowerOffice Go v2 API simulator (not the real API).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--lift-limits", action="store_true", help="no 10 requests/second limit (benchmarks)"
    )
    parser.add_argument("--application-key", default=DEFAULT_APPLICATION_KEY)
    parser.add_argument("--client-key", default=DEFAULT_CLIENT_KEY)
    parser.add_argument("--subscription-key", default=DEFAULT_SUBSCRIPTION_KEY)
    parser.add_argument("--token-lifetime", type=int, default=1200, help="seconds (default 1200)")
    parser.add_argument("--no-retry-after", action="store_true", help="429 without Retry-After")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=10,
        help="requests per second the gateway allows (default 10; lower = a shared key)",
    )
    parser.add_argument(
        "--count-throttled", action="store_true", help="a 429 uses a slot of the window too"
    )
    parser.add_argument(
        "--read-lag",
        type=float,
        default=0.0,
        help="seconds reads lag behind writes, as a read replica would (default 0)",
    )
    parser.add_argument(
        "--page-size-clamp",
        type=int,
        default=None,
        help="return at most this many records per page whatever PageSize asks",
    )
    parser.add_argument(
        "--patch-test-failure-status",
        type=int,
        choices=(400, 409),
        default=400,
        help="status of a failed JSON Patch test (default 400, as the v2 OpenAPI documents)",
    )
    return parser


def limits_from_args(args: argparse.Namespace) -> SimulatorLimits:
    """The limits and realism options ``build_parser``'s options ask for."""
    return SimulatorLimits(
        requests_per_second=0 if args.lift_limits else args.rate_limit,
        count_throttled=args.count_throttled,
        token_lifetime_seconds=args.token_lifetime,
        send_retry_after=not args.no_retry_after,
        read_lag_seconds=args.read_lag,
        page_size_clamp=args.page_size_clamp,
        patch_test_failure_status=args.patch_test_failure_status,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    sim = PowerOfficeSimulator(
        credentials=Credentials(args.application_key, args.client_key, args.subscription_key),
        limits=limits_from_args(args),
    )
    root = f"http://{args.host}:{args.port}"
    print(
        f"PowerOffice Go v2 simulator: API {root}/v2, token {root}/OAuth/Token, admin {root}/_admin"
    )
    run_forever(sim.app, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
