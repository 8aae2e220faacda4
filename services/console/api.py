"""The console's JSON API, ``/api/v1/...`` (documented with examples in docs/console.md).

Every route needs ``Authorization: Bearer <token>`` (a static token or an OIDC JWT:
``services.console.auth``); without one the answer is **401**, over the caller's rate the answer
is **429**. Callers with the ``read`` role get the same routes with personal data left out
(``services.console.privacy``) and are refused actions and searches by e-mail (**403**; their
other queries match ids only).

GET  /api/v1/whoami                          the caller's name and role
GET  /api/v1/overview                        the sync's state (PostgreSQL + Kafka figures)
GET  /api/v1/review-items                    ?state=open|resolved|all&reason=&system=&resource=&q=
GET  /api/v1/review-items/{review_id}        one item with its candidate contacts
GET  /api/v1/conflicts                       ?property=&kind=&link_id=
GET  /api/v1/dead-letters                    ?stage=mapper|loader|extractor&all=1&error_class=&q=
GET  /api/v1/links                           ?status=&verification=&flow=&q=
GET  /api/v1/links/{link_id}                 one link
GET  /api/v1/links/{link_id}/timeline        its timeline, newest first
POST /api/v1/actions                         publish an operator action -> 202 {action_id, ...}
GET  /api/v1/actions                         the audit trail ?kind=&actor=&status=applied|rejected
GET  /api/v1/ignored-records                 records an operator chose never to sync
GET  /api/v1/actions/{action_id}             its result (``pending`` until the mapper applied it)
GET  /api/v1/tenants                         the tenant registry: state, phase, owner, version
GET  /api/v1/tenants/{tenant}                one tenant's registration and status
POST /api/v1/tenants                         register a tenant -> 201 (tenant administrators)
PATCH /api/v1/tenants/{tenant}               change its setting overrides (tenant administrators)
POST /api/v1/tenants/{tenant}/pause|resume   change its state (operator role)
POST /api/v1/tenants/{tenant}/remove         stop its work for good (tenant administrators)

Lists take ``limit`` (1..500) and ``cursor`` (the previous page's ``next_cursor``) and answer
``{"items": [...], "next_cursor": ..., "limit": n}``; every route but the tenant registry's takes
``tenant`` (default: the console's ``TETHER_TENANT``). The registry's routes apply the rules of
``tether tenants`` (``services.console.tenants``) and name the caller as who changed it; a change
answers once the broker acknowledged it. Tenant administrators are the operators that
``console_tenant_admins`` names (every operator when it names none). Refusals: 400 (a rule: a
secret or an unknown name in the settings, a bad tenant id or credentials reference), 404 (no
such tenant), 409 (the id is in use), 503 (Kafka unreachable, or the registry not read yet).

Imports: standard library, psycopg, starlette and the console's own modules.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.console import privacy, readmodel
from services.console.actions import ActionRefusedError
from services.console.app import Console, client_key
from services.console.auth import Identity, bearer_token
from services.console.tenants import OPERATOR_COMMANDS, ConsoleTenants
from services.core.errors import TetherError, TransportError
from services.core.topics import STAGES
from services.tenants.credentials import CredentialsError
from services.tenants.model import (
    COMMAND_STATES,
    TenantError,
    TenantExistsError,
    TenantNotFoundError,
)

log = logging.getLogger("tether.console.api")

Handler = Callable[[Console, Request, Identity], Response]


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str).encode("utf-8")


def error(status: int, code: str, detail: str | None = None, **headers: str) -> Response:
    body: dict[str, Any] = {"error": code}
    if detail:
        body["detail"] = detail
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return JSON(body, status, headers=named or None)


async def authenticate(console: Console, request: Request) -> Identity | Response:
    """The caller's identity, or the refusal to answer with (401 / 429)."""
    token = bearer_token(request.headers.get("authorization"))
    identity = await run_in_threadpool(console.verifiers.verify, token) if token else None
    if identity is None:
        console.metrics.auth_failures.labels("missing" if token is None else "invalid").inc()
        if not console.allow(client_key(request)):
            return error(429, "rate_limited", retry_after="60")
        return error(
            401, "unauthenticated", "send Authorization: Bearer <token>", www_authenticate="Bearer"
        )
    if not console.allow(f"id:{identity.name}"):
        return error(429, "rate_limited", retry_after="60")
    return identity


def endpoint(console: Console, handler: Handler) -> Callable[[Request], Any]:
    async def run(request: Request) -> Response:
        who = await authenticate(console, request)
        if isinstance(who, Response):
            return who
        request.scope["tether.identity"] = who
        try:
            return await run_in_threadpool(handler, console, request, who)
        except readmodel.BadRequestError as exc:
            return error(400, "bad_request", str(exc))
        except psycopg.Error as exc:
            log.warning("PostgreSQL error on %s: %s", request.url.path, type(exc).__name__)
            return error(503, "postgres_unavailable", type(exc).__name__)

    return run


def tenant_of(console: Console, request: Request) -> str:
    return request.query_params.get("tenant") or console.tenant


def forbidden(console: Console, what: str) -> Response:
    console.metrics.auth_failures.labels("forbidden").inc()
    return error(403, "forbidden", f"{what} needs the operator role")


# ------------------------------------------------------------------------------------------------


def whoami(console: Console, request: Request, who: Identity) -> Response:
    return JSON({"name": who.name, "role": who.role.value, "method": who.method})


def overview_data(console: Console, tenant: str) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        with console.pool.connection() as conn:
            return readmodel.overview(conn, tenant)

    cache = console.overview_cache
    data = dict(cache.get(("overview", tenant), load) if cache is not None else load())
    if console.kafka is not None:
        data["dead_letters"] = console.kafka.counts()
        data["consumer_lag"] = console.kafka.lag()
        data["last_poll"] = console.kafka.last_polls()
    else:
        data["dead_letters"] = data["consumer_lag"] = data["last_poll"] = None
    data["api_budget"] = {
        "available": False,
        "detail": "budget use is a metric of the extractor and the loader "
        "(tether_budget_* on their /metrics), not kept in PostgreSQL or Kafka",
    }
    return data


def overview(console: Console, request: Request, who: Identity) -> Response:
    return JSON(overview_data(console, tenant_of(console, request)))


def _q(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def review_list(console: Console, request: Request, who: Identity) -> Response:
    limit = readmodel.page_size(_q(request, "limit"), console.settings.console_page_size)
    with console.pool.connection() as conn:
        page = readmodel.review_items(
            conn,
            tenant_of(console, request),
            state=_q(request, "state") or "open",
            reason=_q(request, "reason"),
            system=_q(request, "system"),
            resource=_q(request, "resource"),
            q=_q(request, "q"),
            limit=limit,
            cursor=_q(request, "cursor"),
        )
    body = page.to_json()
    if not who.is_operator:
        body["items"] = [privacy.review(i) for i in body["items"]]
    return JSON(body)


def review_one(console: Console, request: Request, who: Identity) -> Response:
    with console.pool.connection() as conn:
        item = readmodel.review_item(
            conn, tenant_of(console, request), request.path_params["review_id"]
        )
    if item is None:
        return error(404, "not_found")
    return JSON(item if who.is_operator else privacy.review(item))


def conflict_list(console: Console, request: Request, who: Identity) -> Response:
    limit = readmodel.page_size(_q(request, "limit"), console.settings.console_page_size)
    with console.pool.connection() as conn:
        page = readmodel.conflicts(
            conn,
            tenant_of(console, request),
            property_name=_q(request, "property"),
            kind=_q(request, "kind"),
            link_id=_q(request, "link_id"),
            limit=limit,
            cursor=_q(request, "cursor"),
        )
    body = page.to_json()
    if not who.is_operator:
        body["items"] = [privacy.conflict(i) for i in body["items"]]
    return JSON(body)


def dead_letter_page(
    console: Console,
    *,
    stage: str,
    everything: bool,
    error_class: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> readmodel.Page:
    """A page of a stage's dead letters (newest first; keyset on first_seen/partition/offset)."""
    if console.kafka is None:
        raise readmodel.BadRequestError("the console has no Kafka connection")
    if stage not in STAGES:
        raise readmodel.BadRequestError(f"stage must be one of {', '.join(STAGES)}")
    letters = console.kafka.letters(stage, everything=everything)
    after = readmodel.decode_cursor(cursor, (str, int, int))
    rows = []
    for letter in letters:
        key = (letter.first_seen, letter.partition, letter.offset)
        if after is not None and key >= tuple(after):
            continue
        if error_class and letter.error_class != error_class:
            continue
        if q and q not in (letter.record or "") and q != letter.dead_letter_id:
            continue
        rows.append(letter.to_json())
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        readmodel.encode_cursor([rows[-1]["first_seen"], rows[-1]["partition"], rows[-1]["offset"]])
        if more
        else None
    )
    return readmodel.Page(rows, next_cursor, limit)


def dead_letter_list(console: Console, request: Request, who: Identity) -> Response:
    limit = readmodel.page_size(_q(request, "limit"), console.settings.console_page_size)
    try:
        page = dead_letter_page(
            console,
            stage=_q(request, "stage") or "mapper",
            everything=_q(request, "all") in ("1", "true", "yes"),
            error_class=_q(request, "error_class"),
            q=_q(request, "q"),
            limit=limit,
            cursor=_q(request, "cursor"),
        )
    except TetherError as exc:
        return error(503, "kafka_unavailable", type(exc).__name__)
    body = page.to_json()
    if not who.is_operator:
        body["items"] = [privacy.dead_letter(i) for i in body["items"]]
    return JSON(body)


def link_list(console: Console, request: Request, who: Identity) -> Response:
    q = _q(request, "q")
    # A reader's query is matched against ids only (a long numeric id may look like a phone
    # number); an e-mail address is refused outright.
    if q and not who.is_operator and readmodel.search_kind(q) == "email":
        return forbidden(console, "searching by e-mail")
    limit = readmodel.page_size(_q(request, "limit"), console.settings.console_page_size)
    with console.pool.connection() as conn:
        page = readmodel.links(
            conn,
            tenant_of(console, request),
            status=_q(request, "status"),
            verification=_q(request, "verification"),
            flow=_q(request, "flow"),
            q=q,
            personal_search=who.is_operator,
            limit=limit,
            cursor=_q(request, "cursor"),
        )
    body = page.to_json()
    if not who.is_operator:
        body["items"] = [privacy.link_row(i) for i in body["items"]]
    return JSON(body)


def link_one(console: Console, request: Request, who: Identity) -> Response:
    with console.pool.connection() as conn:
        page = readmodel.link_page(
            conn, tenant_of(console, request), request.path_params["link_id"]
        )
    if page is None:
        return error(404, "not_found")
    return JSON(page if who.is_operator else privacy.link(page))


def link_timeline(console: Console, request: Request, who: Identity) -> Response:
    limit = readmodel.page_size(_q(request, "limit"), 100)
    with console.pool.connection() as conn:
        page = readmodel.timeline(
            conn,
            tenant_of(console, request),
            request.path_params["link_id"],
            limit=limit,
            cursor=_q(request, "cursor"),
        )
    if page is None:
        return error(404, "not_found")
    body = page.to_json()
    if not who.is_operator:
        body["items"] = [privacy.timeline_entry(e) for e in body["items"]]
    return JSON(body)


def action_post(console: Console, request: Request, who: Identity) -> Response:
    if not who.is_operator:
        return forbidden(console, "acting")
    if console.actions is None:
        return error(503, "actions_unavailable", "the console has no Kafka producer")
    body = request.scope.get("tether.body")
    if not isinstance(body, dict):
        return error(400, "bad_request", "the body must be a JSON object")
    try:
        submitted = console.actions.submit(who, tenant_of(console, request), body)
    except ActionRefusedError as exc:
        return error(400, "invalid_action", str(exc))
    except TetherError as exc:
        return error(503, "kafka_unavailable", type(exc).__name__)
    return JSON(submitted.to_json(), 202)


def action_get(console: Console, request: Request, who: Identity) -> Response:
    action_id = request.path_params["action_id"]
    with console.pool.connection() as conn:
        row = readmodel.action_result(conn, action_id)
    if row is None:
        return JSON({"action_id": action_id, "status": "pending"})
    row.pop("action", None)
    if not who.is_operator:
        row = privacy.action(row)
    return JSON(row)


def action_list(console: Console, request: Request, who: Identity) -> Response:
    limit = readmodel.page_size(_q(request, "limit"), console.settings.console_page_size)
    with console.pool.connection() as conn:
        page = readmodel.operator_actions(
            conn,
            tenant_of(console, request),
            kind=_q(request, "kind"),
            actor=_q(request, "actor"),
            status=_q(request, "status"),
            limit=limit,
            cursor=_q(request, "cursor"),
        )
    body = page.to_json()
    if not who.is_operator:
        body["items"] = [privacy.action(i) for i in body["items"]]
    return JSON(body)


def ignored_list(console: Console, request: Request, who: Identity) -> Response:
    limit = readmodel.page_size(_q(request, "limit"), console.settings.console_page_size)
    with console.pool.connection() as conn:
        page = readmodel.ignored_records(
            conn, tenant_of(console, request), limit=limit, cursor=_q(request, "cursor")
        )
    return JSON(page.to_json())


def registry_for(
    console: Console, who: Identity, *, changing: bool, administering: bool = False
) -> ConsoleTenants | Response:
    """The console's tenant registry, or the refusal to answer with (``administering``: a
    registration, a change of settings or a removal, not only a pause or a resume)."""
    tenants = console.tenants
    if tenants is None:
        return error(503, "tenants_unavailable", "the console has no Kafka connection")
    if changing and not who.is_operator:
        return forbidden(console, "changing the tenant registry")
    if administering and not tenants.administers(who.name):
        console.metrics.auth_failures.labels("forbidden").inc()
        return error(
            403,
            "forbidden",
            "registering, re-configuring and removing tenants is for the tenant administrators "
            "(TETHER_CONSOLE_TENANT_ADMINS)",
        )
    if not tenants.loaded:
        return error(503, "tenants_loading", "the tenant registry is being read; retry")
    return tenants


def tenant_change(change: Callable[[], dict[str, Any]], status: int) -> Response:
    """Run an operator's change of the registry; its refusals as the API's answers."""
    try:
        return JSON(change(), status)
    except TenantNotFoundError as exc:
        return error(404, "not_found", str(exc))
    except TenantExistsError as exc:
        return error(409, "exists", str(exc))
    except (TenantError, CredentialsError) as exc:
        return error(400, "invalid_tenant", str(exc))
    except TransportError as exc:
        log.warning("tenant registry not changed: %s", exc)
        return error(503, "kafka_unavailable", type(exc).__name__)


def tenant_list(console: Console, request: Request, who: Identity) -> Response:
    tenants = registry_for(console, who, changing=False)
    if isinstance(tenants, Response):
        return tenants
    return JSON({"items": tenants.rows()})


def tenant_one(console: Console, request: Request, who: Identity) -> Response:
    tenants = registry_for(console, who, changing=False)
    if isinstance(tenants, Response):
        return tenants
    try:
        found = tenants.one(request.path_params["tenant"])
    except TenantError as exc:
        return error(400, "invalid_tenant", str(exc))
    return JSON(found) if found is not None else error(404, "not_found")


def tenant_add(console: Console, request: Request, who: Identity) -> Response:
    tenants = registry_for(console, who, changing=True, administering=True)
    if isinstance(tenants, Response):
        return tenants
    body = request.scope.get("tether.body")
    return tenant_change(lambda: tenants.add(body, by=who.name), 201)


def tenant_settings(console: Console, request: Request, who: Identity) -> Response:
    tenants = registry_for(console, who, changing=True, administering=True)
    if isinstance(tenants, Response):
        return tenants
    body = request.scope.get("tether.body")
    tenant = request.path_params["tenant"]
    return tenant_change(lambda: tenants.change_settings(tenant, body, by=who.name), 200)


def tenant_command(command: str) -> Handler:
    """The handler of ``POST /api/v1/tenants/{tenant}/<command>`` (pause, resume, remove)."""

    administering = command not in OPERATOR_COMMANDS

    def handler(console: Console, request: Request, who: Identity) -> Response:
        tenants = registry_for(console, who, changing=True, administering=administering)
        if isinstance(tenants, Response):
            return tenants
        body = request.scope.get("tether.body")
        tenant = request.path_params["tenant"]
        return tenant_change(lambda: tenants.set_state(tenant, command, body, by=who.name), 200)

    return handler


def _with_json_body(console: Console, handler: Handler) -> Callable[[Request], Any]:
    inner = endpoint(console, handler)

    async def run(request: Request) -> Response:
        try:
            request.scope["tether.body"] = json.loads(await request.body() or b"{}")
        except ValueError:
            request.scope["tether.body"] = None
        return await inner(request)  # type: ignore[no-any-return]

    return run


def routes(console: Console) -> list[BaseRoute]:
    def get(path: str, handler: Handler) -> Route:
        return Route(f"/api/v1{path}", endpoint(console, handler), methods=["GET"])

    return [
        get("/whoami", whoami),
        get("/overview", overview),
        get("/review-items", review_list),
        get("/review-items/{review_id}", review_one),
        get("/conflicts", conflict_list),
        get("/dead-letters", dead_letter_list),
        get("/links", link_list),
        get("/links/{link_id}", link_one),
        get("/links/{link_id}/timeline", link_timeline),
        Route("/api/v1/actions", _with_json_body(console, action_post), methods=["POST"]),
        get("/actions", action_list),
        get("/ignored-records", ignored_list),
        get("/actions/{action_id}", action_get),
        get("/tenants", tenant_list),
        get("/tenants/{tenant}", tenant_one),
        Route("/api/v1/tenants", _with_json_body(console, tenant_add), methods=["POST"]),
        Route(
            "/api/v1/tenants/{tenant}",
            _with_json_body(console, tenant_settings),
            methods=["PATCH"],
        ),
        *(
            Route(
                f"/api/v1/tenants/{{tenant}}/{command}",
                _with_json_body(console, tenant_command(command)),
                methods=["POST"],
            )
            for command in COMMAND_STATES
        ),
    ]
