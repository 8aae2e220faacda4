"""Local simulator of Wix Contacts v4 (+ OAuth app tokens + contact webhooks) for tests and demos.

What it is for: a faithful stand-in for ``https://www.wixapis.com`` (reference
``shared/reference/wix-contacts-v4.md``; decisions in ``docs/wix-decisions.md``). In-process::

    sim = WixSimulator(rate_limit=0)               # 0 lifts the 200/min limit
    with ServerThread(sim.app) as server:          # from services.connectors.simkit
        client = WixClient(ApiKeyAuth(api_key=sim.api_key, site_id=sim.site_id), budget,
                           base_url=server.url)

or as its own process: ``python -m services.connectors.wix.simulator --port 8082``
(``main(argv)``; ``tether simulate wix`` calls it).

Real API surface: ``POST /oauth2/token``; ``/contacts/v4/contacts`` create/get/update/delete/list,
``/query``, ``/{id}/merge``; ``/contacts/v4/extended-fields`` (find-or-create, list). Auth:
``Authorization: <API key>`` + ``wix-site-id``, or an app token (raw or ``Bearer``). 200 requests
per 60 s per site (API-key and app-token traffic share it) -> 429 with ``Retry-After``.

Admin API (no auth, never in production), under ``/_admin``: ``GET/POST /contacts`` (inspect /
seed ``{"contacts": [...], "webhooks": false}``), ``GET/PATCH/DELETE /contacts/{id}`` (dashboard
view / edit ``{"info": {...}}`` / delete, all firing webhooks; ``"silent": true`` edits behind
the API's back: no revision bump, no webhook), ``POST /reset``,
``GET/POST/DELETE /faults`` (``simkit.FaultRule`` fields), ``GET/PUT /webhooks`` (settings),
``GET /webhooks/deliveries``, ``GET /counters``, ``PUT /rate-limit``, ``GET /public-key`` (PEM).

Realism options (all off by default): ``strict_read_only_items`` (a write carrying an item's
read-only ``id``/``e164Phone``/``formattedPhone`` -> 400), ``max_page_size`` (List/Query return
at most that many contacts whatever ``limit`` asked for), ``extended_fields_refused`` (an HTTP
status, e.g. 403: the Extended Fields API refuses, as for an API key without that permission;
404/5xx can also be injected with a ``FaultRule`` on ``/contacts/v4/extended-fields``).

Many sites in one process: ``simsites.WixSites`` holds one of these per site (tenant) and routes
by credentials; the sites share the app's webhook ``signer``.

Production code must not import this module. Imports: standard library, starlette, simkit and the
``sim*`` modules of this package.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.connectors.simkit import (
    FaultInjector,
    FaultRule,
    ServerThread,
    WindowRateLimiter,
    run_forever,
)
from services.connectors.wix.simerrors import SimApiError, app_error, invalid
from services.connectors.wix.simquery import parse_paging, parse_projection, project
from services.connectors.wix.simstore import ContactChange, ContactStore
from services.connectors.wix.simwebhooks import (
    WebhookDispatcher,
    WebhookSettings,
    WebhookSigner,
)

log = logging.getLogger(__name__)

DEFAULT_SITE_ID = "5c1e6a3e-5f2b-4c8e-9d7a-000000000001"
DEFAULT_INSTANCE_ID = "8a2d4c1b-3e5f-4a6b-9c8d-000000000002"
DEFAULT_APP_ID = "0f3a9b7c-1d2e-4f5a-8b6c-000000000003"
DEFAULT_READ_ONLY_API_KEY = "sim-wix-read-only-key"
DEFAULT_WIX_USER_ID = "4d7e1f2a-9b3c-4e5d-8f6a-000000000004"
CONTACTS = "/contacts/v4/contacts"

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Principal:
    """Who made an authenticated request."""

    identity: Mapping[str, Any]
    source: Mapping[str, Any]


class WixSimulator:
    """The simulated API: ``.app`` (ASGI, fault-injectable), ``.store``, ``.webhooks``."""

    def __init__(
        self,
        *,
        api_key: str = "sim-wix-api-key",
        read_only_api_key: str | None = DEFAULT_READ_ONLY_API_KEY,
        site_id: str = DEFAULT_SITE_ID,
        app_id: str = DEFAULT_APP_ID,
        app_secret: str = "sim-wix-app-secret",
        instance_id: str = DEFAULT_INSTANCE_ID,
        rate_limit: int = 200,
        rate_window_seconds: float = 60.0,
        retry_after_header: bool = True,
        count_throttled: bool = False,
        token_ttl_seconds: int = 14400,
        webhook_urls: Sequence[str] = (),
        webhook_settings: WebhookSettings | None = None,
        private_key_pem: str | None = None,
        strict_extended_fields: bool = True,
        strict_read_only_items: bool = False,
        max_page_size: int | None = None,
        extended_fields_refused: int | None = None,
        clock: Callable[[], datetime] | None = None,
        seed: int = 7,
        signer: WebhookSigner | None = None,
        on_token: Callable[[str, float], None] | None = None,
    ) -> None:
        """``signer``: the app's webhook key when several sites share it (then no
        ``private_key_pem``); ``on_token(token, ttl_seconds)`` is told of every app token issued
        (the multi-site front routes token calls with it)."""
        if signer is not None and private_key_pem is not None:
            raise ValueError("give either a signer or a private key, not both")
        self.api_key = api_key
        self.read_only_api_key = read_only_api_key
        self.site_id = site_id
        self.app_id = app_id
        self.app_secret = app_secret
        self.instance_id = instance_id
        self.token_ttl_seconds = token_ttl_seconds
        self.retry_after_header = retry_after_header
        # rate_limit is the real limit (set it below a client's budget to model a limit shared
        # with other apps); count_throttled: a 429 uses a slot of the window too.
        self._rate = (rate_limit, rate_window_seconds, count_throttled)
        self.limiter = WindowRateLimiter(*self._rate)
        self.signer = signer or WebhookSigner(private_key_pem)
        self._on_token = on_token
        settings = webhook_settings or WebhookSettings()
        if webhook_urls:
            settings.urls = list(webhook_urls)
        self.webhooks = WebhookDispatcher(self.signer, instance_id, settings, seed=seed)
        self.max_page_size = max_page_size
        self.extended_fields_refused = extended_fields_refused
        self._options = (max_page_size, extended_fields_refused, strict_read_only_items)
        store_args: dict[str, Any] = {
            "strict_extended_fields": strict_extended_fields,
            "strict_read_only_items": strict_read_only_items,
        }
        if clock is not None:
            store_args["clock"] = clock
        self.store = ContactStore(on_change=self._on_change, **store_args)
        self.counters: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.admin_identity = {"identityType": "WIX_USER", "wixUserId": DEFAULT_WIX_USER_ID}
        self.faults = FaultInjector(self._build_app(), seed=seed)
        self.app = self.faults

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the constructor's state: empty store, rate limit, faults, counters, tokens,
        realism options."""
        self.store.reset()
        self.max_page_size, self.extended_fields_refused, strict = self._options
        self.store.strict_read_only_items = strict
        self.faults.clear()
        self.webhooks.clear()
        with self._lock:
            self.counters.clear()
            self._tokens.clear()
        self.limiter = WindowRateLimiter(*self._rate)

    def close(self) -> None:
        self.webhooks.stop()

    def server(self, host: str = "127.0.0.1", port: int = 0) -> ServerThread:
        """A ``ServerThread`` serving ``.app`` (not started: use ``with`` or ``.start()``)."""
        return ServerThread(self.app, host=host, port=port)

    def issue_token(self, ttl_seconds: float | None = None) -> str:
        """An app access token (what ``POST /oauth2/token`` returns)."""
        token = "OAUTH2." + secrets.token_urlsafe(32)
        now = time.monotonic()
        ttl = ttl_seconds or self.token_ttl_seconds
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl
        if self._on_token is not None:
            self._on_token(token, ttl)
        return token

    def expire_tokens(self) -> None:
        """Make every issued token expired (tests of token renewal)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def _on_change(self, change: ContactChange) -> None:
        self.webhooks.publish(change)

    def _clamp(self, limit: int) -> int:
        """Realism option ``max_page_size``: a server returning fewer contacts than asked for."""
        return min(limit, self.max_page_size) if self.max_page_size else limit

    def _refuse_extended_fields(self) -> None:
        """Realism option ``extended_fields_refused`` (an HTTP status, e.g. 403): the Extended
        Fields API refused, as for an API key created without that permission."""
        status = self.extended_fields_refused
        if status is None:
            return
        if status == 403:
            raise app_error(
                403,
                "PERMISSION_DENIED",
                "Missing permission",
                "this API key lacks the permission to manage extended fields",
            )
        raise app_error(status, "EXTENDED_FIELDS_UNAVAILABLE", "Extended fields unavailable")

    # -- plumbing ----------------------------------------------------------------------------

    def _count(self, method: str, operation: str, status: int) -> None:
        with self._lock:
            self.counters[(method, operation, status)] += 1

    def _api(
        self, operation: str, *, write: bool, auth: bool = True
    ) -> Callable[[Callable[[Request, Principal], Awaitable[Response]]], Handler]:
        """Wrap a handler: authenticate, rate-limit, count, render ``SimApiError``."""

        def decorate(fn: Callable[[Request, Principal], Awaitable[Response]]) -> Handler:
            async def endpoint(request: Request) -> Response:
                try:
                    principal = self._authenticate(request, write) if auth else _NOBODY
                    if auth and not self.limiter.allow("site:" + self.site_id):
                        retry = self.limiter.retry_after("site:" + self.site_id)
                        problem = app_error(
                            429,
                            "RESOURCE_EXHAUSTED",
                            "Too many requests",
                            f"rate limit of {self.limiter.limit} requests per "
                            f"{self.limiter.window:g} s exceeded",
                        )
                        if self.retry_after_header:
                            problem.headers["Retry-After"] = str(retry)
                        raise problem
                    response = await fn(request, principal)
                except SimApiError as problem:
                    response = JSONResponse(
                        problem.body(), status_code=problem.status, headers=problem.headers
                    )
                self._count(request.method, operation, response.status_code)
                return response

            return endpoint

        return decorate

    def _authenticate(self, request: Request, write: bool) -> Principal:
        header = request.headers.get("authorization", "").strip()
        if header.lower().startswith("bearer "):
            header = header[7:].strip()
        if not header:
            raise app_error(401, "UNAUTHENTICATED", "Missing Authorization header")
        with self._lock:
            expires = self._tokens.get(header)
        if expires is not None:
            if expires <= time.monotonic():
                raise app_error(401, "UNAUTHENTICATED", "Access token expired")
            return Principal(
                {"identityType": "APP", "appId": self.app_id},
                {"sourceType": "WIX_APP", "appId": self.app_id},
            )
        if header in (self.api_key, self.read_only_api_key):
            site = request.headers.get("wix-site-id")
            if site is None:
                raise app_error(
                    403,
                    "PERMISSION_DENIED",
                    "Missing wix-site-id header",
                    "site-level APIs need the wix-site-id header with an API key",
                )
            if site != self.site_id:
                raise app_error(403, "PERMISSION_DENIED", "API key has no access to this site")
            if write and header != self.api_key:
                raise app_error(
                    403,
                    "PERMISSION_DENIED",
                    "Missing permission",
                    "this API key lacks SCOPE.DC-CONTACTS.MANAGE-CONTACTS",
                )
            return Principal(dict(self.admin_identity), {"sourceType": "OTHER"})
        raise app_error(401, "UNAUTHENTICATED", "Invalid credentials")

    # -- the app -----------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        api = self._api

        @api("token", write=False, auth=False)
        async def token(request: Request, _p: Principal) -> Response:
            body = await _json_body(request)
            if body.get("grant_type") != "client_credentials":
                raise app_error(400, "INVALID_GRANT", "Unsupported grant_type")
            if (
                body.get("client_id") != self.app_id
                or body.get("client_secret") != self.app_secret
                or body.get("instance_id") != self.instance_id
            ):
                raise app_error(400, "INVALID_CLIENT", "Invalid client credentials")
            return JSONResponse(
                {
                    "access_token": self.issue_token(),
                    "token_type": "Bearer",
                    "expires_in": self.token_ttl_seconds,
                }
            )

        @api("create", write=True)
        async def create(request: Request, p: Principal) -> Response:
            body = await _json_body(request)
            if "info" not in body:
                raise invalid("is required", "info", "REQUIRED_FIELD")
            contact = self.store.create(
                body["info"],
                allow_duplicates=_bool(body.get("allowDuplicates", False), "allowDuplicates"),
                actor=p.identity,
                source=p.source,
            )
            return JSONResponse({"contact": contact})

        @api("get", write=False)
        async def get(request: Request, _p: Principal) -> Response:
            paths = parse_projection(
                request.query_params.getlist("fields") or None,
                request.query_params.getlist("fieldsets") or None,
            )
            contact, response_type = self.store.get(request.path_params["contact_id"])
            return JSONResponse({"contact": project(contact, paths), "responseType": response_type})

        @api("update", write=True)
        async def update(request: Request, p: Principal) -> Response:
            body = await _json_body(request)
            revision = body.get("revision")
            if revision is None:
                raise invalid("is required", "revision", "REQUIRED_FIELD")
            if isinstance(revision, str) and revision.isdigit():
                revision = int(revision)
            if not isinstance(revision, int) or isinstance(revision, bool):
                raise invalid("must be an integer", "revision", "TYPE")
            if "info" not in body:
                raise invalid("is required", "info", "REQUIRED_FIELD")
            contact = self.store.update(
                request.path_params["contact_id"],
                body["info"],
                revision=revision,
                allow_duplicates=_bool(body.get("allowDuplicates", False), "allowDuplicates"),
                actor=p.identity,
            )
            return JSONResponse({"contact": contact})

        @api("delete", write=True)
        async def delete(request: Request, p: Principal) -> Response:
            self.store.delete(request.path_params["contact_id"], actor=p.identity)
            return JSONResponse({})

        @api("list", write=False)
        async def list_contacts(request: Request, _p: Principal) -> Response:
            q = request.query_params
            limit, offset = parse_paging(q.get("paging.limit"), q.get("paging.offset"))
            limit = self._clamp(limit)
            sort = None
            if q.get("sort.fieldName"):
                sort = {"fieldName": q["sort.fieldName"], "order": q.get("sort.order", "ASC")}
            paths = parse_projection(q.getlist("fields") or None, q.getlist("fieldsets") or None)
            page, total = self.store.query(sort=sort, limit=limit, offset=offset, paths=paths)
            return JSONResponse(_page(page, offset, total))

        @api("query", write=False)
        async def query(request: Request, _p: Principal) -> Response:
            body = await _json_body(request)
            spec = body.get("query") or {}
            if not isinstance(spec, dict):
                raise invalid("must be an object", "query", "TYPE")
            paging = spec.get("paging") or {}
            if not isinstance(paging, dict):
                raise invalid("must be an object", "query.paging", "TYPE")
            limit, offset = parse_paging(paging.get("limit"), paging.get("offset"), "query.paging")
            limit = self._clamp(limit)
            search = body.get("search")
            if search is not None and (not isinstance(search, str) or len(search) > 100):
                raise invalid("must be a string of at most 100 characters", "search", "MAX_LENGTH")
            paths = parse_projection(spec.get("fields"), spec.get("fieldsets"))
            page, total = self.store.query(
                query_filter=spec.get("filter"),
                sort=spec.get("sort"),
                limit=limit,
                offset=offset,
                search=search,
                paths=paths,
            )
            return JSONResponse(_page(page, offset, total))

        @api("merge", write=True)
        async def merge(request: Request, p: Principal) -> Response:
            body = await _json_body(request)
            contact = self.store.merge(
                request.path_params["contact_id"],
                target_revision=body.get("targetContactRevision"),
                source_ids=body.get("sourceContactIds"),
                actor=p.identity,
            )
            return JSONResponse({"contact": contact})

        @api("extended_fields", write=True)
        async def find_or_create_field(request: Request, _p: Principal) -> Response:
            self._refuse_extended_fields()
            body = await _json_body(request)
            definition, new = self.store.find_or_create_field(
                body.get("displayName"), body.get("dataType")
            )
            return JSONResponse({"field": definition, "newField": new})

        @api("extended_fields", write=False)
        async def list_fields(request: Request, _p: Principal) -> Response:
            self._refuse_extended_fields()
            q = request.query_params
            limit, offset = parse_paging(q.get("paging.limit"), q.get("paging.offset"))
            with self.store.lock:
                fields = [
                    f
                    for f in self.store.extended_fields.values()
                    if q.get("namespace") in (None, f["namespace"])
                ]
            page = fields[offset : offset + limit]
            return JSONResponse(
                {
                    "fields": page,
                    "pagingMetadata": {"count": len(page), "offset": offset, "total": len(fields)},
                }
            )

        routes = [
            Route("/oauth2/token", token, methods=["POST"]),
            Route(CONTACTS, create, methods=["POST"]),
            Route(CONTACTS, list_contacts, methods=["GET"]),
            Route(CONTACTS + "/query", query, methods=["POST"]),
            Route(CONTACTS + "/{contact_id}", get, methods=["GET"]),
            Route(CONTACTS + "/{contact_id}", update, methods=["PATCH"]),
            Route(CONTACTS + "/{contact_id}", delete, methods=["DELETE"]),
            Route(CONTACTS + "/{contact_id}/merge", merge, methods=["POST"]),
            Route("/contacts/v4/extended-fields", find_or_create_field, methods=["POST"]),
            Route("/contacts/v4/extended-fields", list_fields, methods=["GET"]),
            *self._admin_routes(),
        ]

        async def http_error(request: Request, exc: Exception) -> Response:
            status = exc.status_code if isinstance(exc, HTTPException) else 500
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, "INTERNAL")
            return JSONResponse(
                app_error(status, code, "Not found" if status == 404 else code).body(),
                status_code=status,
            )

        return Starlette(routes=routes, exception_handlers={HTTPException: http_error})

    # -- admin -------------------------------------------------------------------------------

    def _admin_routes(self) -> list[Route]:
        def admin(fn: Callable[[Request], Awaitable[Response]]) -> Handler:
            async def endpoint(request: Request) -> Response:
                try:
                    return await fn(request)
                except SimApiError as problem:
                    return JSONResponse(problem.body(), status_code=problem.status)
                except (ValueError, TypeError) as exc:
                    return JSONResponse({"message": str(exc)}, status_code=400)

            return endpoint

        @admin
        async def contacts(request: Request) -> Response:
            if request.method == "GET":
                return JSONResponse(
                    {"contacts": self.store.all(), "mergedInto": dict(self.store.merged_into)}
                )
            body = await _json_body(request)
            records = body.get("contacts")
            if not isinstance(records, list):
                raise invalid("must be a list", "contacts", "TYPE")
            seeded = self.store.seed(
                records, actor=self.admin_identity, emit=bool(body.get("webhooks", False))
            )
            return JSONResponse({"contacts": seeded})

        @admin
        async def contact(request: Request) -> Response:
            contact_id = request.path_params["contact_id"]
            if request.method == "GET":
                found, response_type = self.store.get(contact_id)
                return JSONResponse({"contact": found, "responseType": response_type})
            if request.method == "DELETE":
                self.store.delete(contact_id, actor=self.admin_identity)
                return JSONResponse({})
            body = await _json_body(request)
            edited = self.store.update(
                contact_id,
                body.get("info"),
                revision=None,
                allow_duplicates=bool(body.get("allowDuplicates", True)),
                actor=self.admin_identity,
                silent=bool(body.get("silent", False)),
            )
            return JSONResponse({"contact": edited})

        @admin
        async def reset(_request: Request) -> Response:
            self.reset()
            return JSONResponse({})

        @admin
        async def faults(request: Request) -> Response:
            if request.method == "POST":
                body = await _json_body(request)
                if isinstance(body.get("body"), str):
                    body["body"] = body["body"].encode()
                self.faults.add(FaultRule(**body))
            elif request.method == "DELETE":
                self.faults.clear()
            rules = [
                {**dataclasses.asdict(r), "body": r.body.decode(errors="replace")}
                for r in self.faults.rules
            ]
            return JSONResponse({"rules": rules, "injected": dict(self.faults.injected)})

        @admin
        async def webhooks(request: Request) -> Response:
            if request.method == "PUT":
                self.webhooks.settings.update(await _json_body(request))
            return JSONResponse(
                {
                    **self.webhooks.settings.as_dict(),
                    "kid": self.signer.kid,
                    "published": self.webhooks.published,
                }
            )

        @admin
        async def deliveries(_request: Request) -> Response:
            return JSONResponse(
                {"deliveries": [dataclasses.asdict(r) for r in list(self.webhooks.records)]}
            )

        @admin
        async def counters(_request: Request) -> Response:
            with self._lock:
                rows = [
                    {"method": m, "operation": o, "status": s, "count": n}
                    for (m, o, s), n in sorted(self.counters.items())
                ]
            return JSONResponse(
                {
                    "requests": rows,
                    "total": sum(r["count"] for r in rows),
                    "rateLimited": sum(r["count"] for r in rows if r["status"] == 429),
                    "faultsInjected": dict(self.faults.injected),
                    "webhooksPublished": self.webhooks.published,
                }
            )

        @admin
        async def rate_limit(request: Request) -> Response:
            if request.method == "PUT":
                body = await _json_body(request)
                self.limiter = WindowRateLimiter(
                    int(body.get("limit", self.limiter.limit)),
                    float(body.get("windowSeconds", self.limiter.window)),
                    bool(body.get("countThrottled", self.limiter.count_rejected)),
                )
            return JSONResponse(
                {
                    "limit": self.limiter.limit,
                    "windowSeconds": self.limiter.window,
                    "countThrottled": self.limiter.count_rejected,
                    "rejected": self.limiter.rejected,
                }
            )

        @admin
        async def public_key(_request: Request) -> Response:
            return PlainTextResponse(
                self.signer.public_key_pem, headers={"X-Key-Id": self.signer.kid}
            )

        return [
            Route("/_admin/contacts", contacts, methods=["GET", "POST"]),
            Route("/_admin/contacts/{contact_id}", contact, methods=["GET", "PATCH", "DELETE"]),
            Route("/_admin/reset", reset, methods=["POST"]),
            Route("/_admin/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route("/_admin/webhooks", webhooks, methods=["GET", "PUT"]),
            Route("/_admin/webhooks/deliveries", deliveries, methods=["GET"]),
            Route("/_admin/counters", counters, methods=["GET"]),
            Route("/_admin/rate-limit", rate_limit, methods=["GET", "PUT"]),
            Route("/_admin/public-key", public_key, methods=["GET"]),
        ]


_NOBODY = Principal({}, {})


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise SimApiError(400, "Expected a JSON object", code="INVALID_ARGUMENT") from None
    if not isinstance(body, dict):
        raise SimApiError(400, "Expected an object", code="INVALID_ARGUMENT")
    return body


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise invalid("must be a boolean", field, "TYPE")
    return value


def _page(contacts: list[dict[str, Any]], offset: int, total: int) -> dict[str, Any]:
    return {
        "contacts": contacts,
        "pagingMetadata": {
            "count": len(contacts),
            "offset": offset,
            "total": total,
            "tooManyToCount": False,
        },
    }


def build_parser() -> argparse.ArgumentParser:
    """The options of ``tether simulate wix``."""
    parser = argparse.ArgumentParser(
        prog="tether simulate wix", description="Local simulator of Wix Contacts v4."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--lift-limits", action="store_true", help="no 200/min rate limit")
    parser.add_argument("--rate-limit", type=int, default=200, help="requests per window")
    parser.add_argument("--rate-window", type=float, default=60.0, help="window in seconds")
    parser.add_argument(
        "--count-throttled", action="store_true", help="a 429 uses a slot of the window too"
    )
    parser.add_argument("--no-retry-after", action="store_true", help="429 without Retry-After")
    parser.add_argument(
        "--extended-fields-forbidden",
        action="store_true",
        help="realism: extended-fields endpoints answer 403 (a key without that permission)",
    )
    parser.add_argument(
        "--max-page-size",
        type=int,
        default=None,
        help="realism: List/Query return at most this many contacts whatever the limit asked",
    )
    parser.add_argument("--webhook-url", action="append", default=[], help="callback URL(s)")
    parser.add_argument("--private-key-file", help="PEM RSA key signing webhooks (default: new)")
    parser.add_argument("--public-key-out", help="write the webhook public key PEM here")
    parser.add_argument("--api-key", default="sim-wix-api-key")
    parser.add_argument("--site-id", default=DEFAULT_SITE_ID)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID)
    parser.add_argument("--app-secret", default="sim-wix-app-secret")
    parser.add_argument("--instance-id", default=DEFAULT_INSTANCE_ID)
    parser.add_argument("--duplicate-probability", type=float, default=0.0)
    parser.add_argument("--out-of-order-probability", type=float, default=0.0)
    return parser


def private_key_from_args(args: argparse.Namespace) -> str | None:
    """The webhook signing key ``--private-key-file`` names (None: generate one)."""
    if not args.private_key_file:
        return None
    with open(args.private_key_file, encoding="utf-8") as fh:
        return fh.read()


def site_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``WixSimulator`` keyword arguments for the limits and realism options of the command
    line (the same for every site of a multi-site simulator)."""
    return {
        "rate_limit": 0 if args.lift_limits else args.rate_limit,
        "rate_window_seconds": args.rate_window,
        "count_throttled": args.count_throttled,
        "retry_after_header": not args.no_retry_after,
        "max_page_size": args.max_page_size,
        "extended_fields_refused": 403 if args.extended_fields_forbidden else None,
    }


def webhook_settings_from_args(args: argparse.Namespace) -> WebhookSettings:
    return WebhookSettings(
        urls=list(args.webhook_url),
        duplicate_probability=args.duplicate_probability,
        out_of_order_probability=args.out_of_order_probability,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground (``tether simulate wix``)."""
    args = build_parser().parse_args(argv)
    sim = WixSimulator(
        api_key=args.api_key,
        site_id=args.site_id,
        app_id=args.app_id,
        app_secret=args.app_secret,
        instance_id=args.instance_id,
        webhook_settings=webhook_settings_from_args(args),
        private_key_pem=private_key_from_args(args),
        **site_options_from_args(args),
    )
    if args.public_key_out:
        with open(args.public_key_out, "w", encoding="utf-8") as fh:
            fh.write(sim.signer.public_key_pem)
    log.warning("wix simulator on http://%s:%d", args.host, args.port)
    try:
        run_forever(sim.app, args.host, args.port)
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
