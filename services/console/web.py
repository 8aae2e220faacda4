"""The web console: server-rendered pages over the same read model and actions as the API.

Pages (Jinja2 templates in ``templates/``, one stylesheet in ``static/``, no script at all):

GET  /login, POST /login, POST /logout    sign in with a console token (a session cookie)
GET  /                                    overview
GET  /ui/review, /ui/review/{review_id}   review items; one item with its candidates
GET  /ui/conflicts                        conflicts
GET  /ui/dead-letters                     dead letters per stage
GET  /ui/links, /ui/links/{link_id}       links (search); one link with its timeline
GET  /ui/actions/new?kind=...&...         the confirmation step of an action (nothing changes)
POST /ui/actions                          publish it (CSRF-checked) -> /ui/actions/{id}
GET  /ui/actions/{action_id}              its result (the page refreshes itself while pending)
GET  /ui/actions                          the audit trail of operator actions
GET  /ui/ignored                          ignored records (with "stop ignoring")
GET  /ui/tenants                          the tenant registry (pause/resume for operators)
POST /ui/tenants/{tenant}/pause|resume    change a tenant's state (CSRF-checked)
POST /ui/tenant                           choose the tenant the pages show (CSRF-checked)

Every page shows one tenant's data: ``?tenant=`` if given, else the one chosen with the header's
tenant selector (a cookie; the selector lists the registry's tenants and appears once there are
any), else the console's ``TETHER_TENANT``.

Sessions: after a valid token, the browser gets a signed cookie (``HttpOnly``,
``SameSite=Strict``, ``Secure`` when ``console_cookie_secure``) naming the identity — the token
itself is not stored. Every form that changes something carries a CSRF token bound to the
session (``Sessions.csrf_token``). Callers with the ``read`` role see the pages without personal
data and without action buttons; a POST of an action from them is refused (403).

Stable hooks for the browser test: ``id``/``data-testid`` attributes listed in docs/console.md.

Imports: standard library, jinja2, psycopg, starlette and the console's own modules.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from services.console import api, privacy, readmodel
from services.console.actions import ActionRefusedError
from services.console.app import Console, client_key
from services.console.auth import Identity, Sessions
from services.console.tenants import OPERATOR_COMMANDS
from services.core.errors import TetherError
from services.core.operator_actions import ActionKind
from services.core.topics import STAGES
from services.tenants.model import TenantError, TenantNotFoundError

log = logging.getLogger("tether.console.web")

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

#: What each action asks the operator to confirm (and which targets the form carries).
ACTION_TEXT = {
    ActionKind.LINK_TO_CANDIDATE: "Link the record in review to this Wix contact",
    ActionKind.CREATE_NEW_CONTACT: "Create a new Wix contact for the record anyway",
    ActionKind.IGNORE_RECORD: "Ignore this record: never sync it (reversible)",
    ActionKind.UNIGNORE_RECORD: "Stop ignoring this record: sync it again",
    ActionKind.UNLINK: "Unlink: stop syncing these records (nothing is deleted)",
    ActionKind.RESYNC: "Re-sync now: push this side's current values to the other side",
    ActionKind.RETRY_COMMAND: "Retry the failed write",
    ActionKind.REDRIVE_DEAD_LETTERS: "Re-drive dead letters into their stage",
    ActionKind.RESET_DELETE_BREAKER: "Release the deletes the mass-delete breaker held",
}
FORM_TARGETS = (
    "review_id",
    "link_id",
    "contact_id",
    "side",
    "command_id",
    "deadletter_stage",
    "record_system",
    "record_resource",
    "record_id",
    "deadletter_ids",
)


def _fmt_time(value: Any) -> str:
    if not value:
        return ""
    text = str(value)
    return text.replace("T", " ")[:19]


TEMPLATES.filters["t"] = _fmt_time


#: The cookie holding the tenant chosen with the selector (not a secret: which data to show).
TENANT_COOKIE = "tether_tenant"


class Page:
    """The session (if any) of a page request, and the tenant it shows."""

    def __init__(self, console: Console, request: Request) -> None:
        self.console = console
        self.request = request
        found = console.sessions.read(request.cookies.get(Sessions.COOKIE))
        self.identity: Identity | None = found[0] if found else None
        self.nonce = found[1] if found else ""
        self.tenant: str = (
            request.query_params.get("tenant")
            or request.cookies.get(TENANT_COOKIE)
            or console.tenant
        )

    @property
    def operator(self) -> bool:
        return bool(self.identity and self.identity.is_operator)

    def tenant_choices(self) -> list[str]:
        """The tenants the selector offers: the registry's (removed ones too, until erased: their
        data is still there), the console's own and the one shown; none without a registry."""
        tenants = self.console.tenants
        registered = tenants.ids() if tenants is not None else []
        return sorted({*registered, self.console.tenant, self.tenant}) if registered else []

    @property
    def csrf(self) -> str:
        return self.console.sessions.csrf_token(self.nonce) if self.identity else ""

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = TEMPLATES.get_template(name).render(
            me=self.identity,
            operator=self.operator,
            csrf=self.csrf,
            tenant=self.tenant,
            tenant_choices=self.tenant_choices(),
            path=self.request.url.path,
            **context,
        )
        return HTMLResponse(body, status)


def _login_redirect() -> Response:
    return RedirectResponse("/login", 303)


def page(console: Console, handler: Any, *, methods: tuple[str, ...] = ("GET",)) -> Any:
    """A page that needs a session: else to /login; rate-limited per identity."""

    async def run(request: Request) -> Response:
        view = Page(console, request)
        if view.identity is None:
            return _login_redirect()
        if not console.allow(f"id:{view.identity.name}"):
            return view.render("error.html", 429, message="Too many requests: wait a minute.")
        request.scope["tether.identity"] = view.identity
        form: dict[str, str] = {}
        if request.method == "POST":
            form = _form(await request.body())
            if not same_origin(request):
                console.metrics.auth_failures.labels("csrf").inc()
                return view.render("error.html", 403, message="Cross-site form refused.")
            if not console.sessions.check_csrf(view.nonce, form.get("csrf")):
                console.metrics.auth_failures.labels("csrf").inc()
                return view.render("error.html", 403, message="The form expired: reload the page.")
        try:
            response: Response = await run_in_threadpool(handler, view, form)
            return response
        except readmodel.BadRequestError as exc:
            return view.render("error.html", 400, message=str(exc))
        except psycopg.Error as exc:
            log.warning("PostgreSQL error on %s: %s", request.url.path, type(exc).__name__)
            return view.render("error.html", 503, message="PostgreSQL is not reachable.")

    return run


def same_origin(request: Request) -> bool:
    """A browser's POST names its page's origin: refuse one from another site (defence in depth
    next to SameSite=Strict and the CSRF token; a request without the header is let through)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return urlsplit(origin).netloc in hosts - {""}


def _form(body: bytes) -> dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _q(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def _more(request: Request, cursor: str | None) -> str | None:
    if not cursor:
        return None
    params = dict(request.query_params)
    params["cursor"] = cursor
    return f"{request.url.path}?{urlencode(params)}"


# ------------------------------------------------------------------------------------------------
# Login
# ------------------------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    console: Console = request.app.state.console
    return Page(console, request).render("login.html")


async def login_post(request: Request) -> Response:
    console: Console = request.app.state.console
    view = Page(console, request)
    if not console.allow(client_key(request)):
        return view.render("login.html", 429, failed="Too many attempts: wait a minute.")
    form = _form(await request.body())
    if not same_origin(request):
        console.metrics.auth_failures.labels("csrf").inc()
        return view.render("login.html", 403, failed="Cross-site sign-in refused.")
    token = form.get("token", "").strip()
    identity = await run_in_threadpool(console.verifiers.verify, token) if token else None
    if identity is None:
        console.metrics.auth_failures.labels("invalid" if token else "missing").inc()
        return view.render("login.html", 401, failed="That token is not valid.")
    log.info("console sign-in", extra={"fields": {"actor": identity.name, "role": identity.role}})
    response = RedirectResponse("/", 303)
    response.set_cookie(
        Sessions.COOKIE,
        console.sessions.issue(identity),
        max_age=int(console.sessions.lifetime),
        httponly=True,
        samesite="strict",
        secure=console.settings.console_cookie_secure,
        path="/",
    )
    return response


def logout(view: Page, form: dict[str, str]) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(Sessions.COOKIE, path="/")
    return response


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------


def overview(view: Page, form: dict[str, str]) -> Response:
    data = api.overview_data(view.console, view.tenant)
    return view.render("overview.html", o=data, stages=STAGES)


def review_list(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    with view.console.pool.connection() as conn:
        result = readmodel.review_items(
            conn,
            view.tenant,
            state=_q(request, "state") or "open",
            reason=_q(request, "reason"),
            q=_q(request, "q"),
            limit=readmodel.page_size(
                _q(request, "limit"), view.console.settings.console_page_size
            ),
            cursor=_q(request, "cursor"),
        )
        reasons = [
            str(r[0])
            for r in conn.execute(
                # The open items' reasons (the partial index of open items answers this).
                "SELECT DISTINCT reason FROM mapper_review_items "
                "WHERE tenant = %s AND resolved_at IS NULL ORDER BY 1",
                (view.tenant,),
            ).fetchall()
        ]
    return view.render(
        "review_list.html",
        items=result.items,
        more=_more(request, result.next_cursor),
        reasons=reasons,
        f={k: request.query_params.get(k, "") for k in ("state", "reason", "q")},
    )


def review_one(view: Page, form: dict[str, str]) -> Response:
    review_id = view.request.path_params["review_id"]
    with view.console.pool.connection() as conn:
        item = readmodel.review_item(conn, view.tenant, review_id)
    if item is None:
        return view.render("error.html", 404, message="No such review item.")
    if not view.identity or not view.identity.is_operator:
        item = privacy.review(item)
    return view.render("review_item.html", item=item)


def conflict_list(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    with view.console.pool.connection() as conn:
        result = readmodel.conflicts(
            conn,
            view.tenant,
            property_name=_q(request, "property"),
            kind=_q(request, "kind"),
            link_id=_q(request, "link_id"),
            limit=readmodel.page_size(
                _q(request, "limit"), view.console.settings.console_page_size
            ),
            cursor=_q(request, "cursor"),
        )
    items = result.items
    if not view.identity or not view.identity.is_operator:
        items = [privacy.conflict(i) for i in items]
    return view.render(
        "conflicts.html",
        items=items,
        more=_more(request, result.next_cursor),
        f={k: request.query_params.get(k, "") for k in ("property", "kind", "link_id")},
    )


def dead_letters(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    stage = _q(request, "stage") or "mapper"
    error_text = None
    items: list[dict[str, Any]] = []
    more = None
    try:
        result = api.dead_letter_page(
            view.console,
            stage=stage,
            everything=_q(request, "all") == "1",
            error_class=_q(request, "error_class"),
            q=_q(request, "q"),
            limit=readmodel.page_size(
                _q(request, "limit"), view.console.settings.console_page_size
            ),
            cursor=_q(request, "cursor"),
        )
        items = result.items
        more = _more(request, result.next_cursor)
    except TetherError as exc:
        error_text = f"Kafka is not reachable ({type(exc).__name__})."
    if not view.identity or not view.identity.is_operator:
        items = [privacy.dead_letter(i) for i in items]
    return view.render(
        "dead_letters.html",
        items=items,
        more=more,
        stage=stage,
        stages=STAGES,
        everything=_q(request, "all") == "1",
        error=error_text,
        f={k: request.query_params.get(k, "") for k in ("error_class", "q")},
    )


def link_list(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    operator = bool(view.identity and view.identity.is_operator)
    q = _q(request, "q")
    notice = None
    if q and not operator and readmodel.search_kind(q) == "email":
        notice = "Searching by e-mail needs the operator role (read-only: ids only)."
        return view.render("links.html", items=[], more=None, notice=notice, f={"q": q})
    with view.console.pool.connection() as conn:
        result = readmodel.links(
            conn,
            view.tenant,
            status=_q(request, "status"),
            verification=_q(request, "verification"),
            flow=_q(request, "flow"),
            q=q,
            personal_search=operator,
            limit=readmodel.page_size(
                _q(request, "limit"), view.console.settings.console_page_size
            ),
            cursor=_q(request, "cursor"),
        )
    items = result.items if operator else [privacy.link_row(i) for i in result.items]
    return view.render(
        "links.html",
        items=items,
        more=_more(request, result.next_cursor),
        notice=notice,
        f={k: request.query_params.get(k, "") for k in ("q", "status", "verification", "flow")},
    )


def link_one(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    link_id = request.path_params["link_id"]
    with view.console.pool.connection() as conn:
        link = readmodel.link_page(conn, view.tenant, link_id)
        events = (
            readmodel.timeline(
                conn,
                view.tenant,
                link_id,
                limit=readmodel.page_size(_q(request, "limit"), 100),
                cursor=_q(request, "cursor"),
            )
            if link is not None
            else None
        )
    if link is None or events is None:
        return view.render("error.html", 404, message="No such link.")
    entries = events.items
    if not view.identity or not view.identity.is_operator:
        link = privacy.link(link)
        entries = [privacy.timeline_entry(e) for e in entries]
    return view.render(
        "link.html", link=link, entries=entries, more=_more(request, events.next_cursor)
    )


def action_new(view: Page, form: dict[str, str]) -> Response:
    if not view.identity or not view.identity.is_operator:
        return view.render("error.html", 403, message="Acting needs the operator role.")
    params = dict(view.request.query_params)
    try:
        kind = ActionKind(params.get("kind", "").upper())
    except ValueError:
        return view.render("error.html", 400, message="Unknown action.")
    targets = {k: params[k] for k in FORM_TARGETS if params.get(k)}
    context: dict[str, Any] = {}
    with view.console.pool.connection() as conn:
        if targets.get("review_id"):
            context["review"] = readmodel.review_item(conn, view.tenant, targets["review_id"])
        if targets.get("link_id"):
            context["link"] = readmodel.link_page(conn, view.tenant, targets["link_id"])
    return view.render(
        "confirm.html",
        kind=kind.value,
        text=ACTION_TEXT[kind],
        targets=targets,
        idempotency_key=str(uuid.uuid4()),
        back=view.request.headers.get("referer") or "/",
        **context,
    )


def action_post(view: Page, form: dict[str, str]) -> Response:
    console = view.console
    identity = view.identity
    if identity is None or not identity.is_operator:
        console.metrics.auth_failures.labels("forbidden").inc()
        return view.render("error.html", 403, message="Acting needs the operator role.")
    if console.actions is None:
        return view.render("error.html", 503, message="The console has no Kafka producer.")
    body: dict[str, Any] = {
        k: form[k] for k in ("kind", "reason", "idempotency_key", *FORM_TARGETS) if form.get(k)
    }
    if body.get("record_id"):
        body["record"] = {
            "system": body.pop("record_system", ""),
            "resource": body.pop("record_resource", ""),
            "id": body.pop("record_id"),
        }
    if body.get("deadletter_ids"):
        body["deadletter_ids"] = [i for i in body["deadletter_ids"].split(",") if i]
    try:
        # The tenant the confirmation page showed (a hidden field), not whatever is chosen now.
        submitted = console.actions.submit(identity, form.get("tenant") or view.tenant, body)
    except ActionRefusedError as exc:
        return view.render("error.html", 400, message=f"Not sent: {exc}")
    except TetherError as exc:
        return view.render(
            "error.html", 503, message=f"Kafka did not acknowledge ({type(exc).__name__})."
        )
    target = f"/ui/actions/{submitted.action_id}"
    if submitted.redriven is not None:
        target += f"?redriven={submitted.redriven}"
    return RedirectResponse(target, 303)


def action_one(view: Page, form: dict[str, str]) -> Response:
    action_id = view.request.path_params["action_id"]
    with view.console.pool.connection() as conn:
        row = readmodel.action_result(conn, action_id)
    if row is not None:
        row.pop("action", None)
        if not view.identity or not view.identity.is_operator:
            row = privacy.action(row)
    return view.render(
        "action.html",
        action_id=action_id,
        row=row,
        redriven=_q(view.request, "redriven"),
    )


def action_list(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    with view.console.pool.connection() as conn:
        result = readmodel.operator_actions(
            conn,
            view.tenant,
            kind=_q(request, "kind"),
            actor=_q(request, "actor"),
            status=_q(request, "status"),
            limit=readmodel.page_size(
                _q(request, "limit"), view.console.settings.console_page_size
            ),
            cursor=_q(request, "cursor"),
        )
    items = result.items
    if not view.identity or not view.identity.is_operator:
        items = [privacy.action(i) for i in items]
    return view.render(
        "actions.html",
        items=items,
        more=_more(request, result.next_cursor),
        kinds=[k.value for k in ActionKind],
        f={k: request.query_params.get(k, "") for k in ("kind", "actor", "status")},
    )


def ignored_list(view: Page, form: dict[str, str]) -> Response:
    request = view.request
    with view.console.pool.connection() as conn:
        result = readmodel.ignored_records(
            conn,
            view.tenant,
            limit=readmodel.page_size(
                _q(request, "limit"), view.console.settings.console_page_size
            ),
            cursor=_q(request, "cursor"),
        )
    return view.render("ignored.html", items=result.items, more=_more(request, result.next_cursor))


#: The tenant commands the page offers: every operator's (registering and removing are for the
#: tenant administrators, on the API and the CLI).
WEB_COMMANDS = tuple(sorted(OPERATOR_COMMANDS))


def tenant_list(view: Page, form: dict[str, str]) -> Response:
    tenants = view.console.tenants
    if tenants is None:
        return view.render("error.html", 503, message="The console has no Kafka connection.")
    return view.render(
        "tenants.html", rows=tenants.rows(), loaded=tenants.loaded, commands=WEB_COMMANDS
    )


def tenant_command(view: Page, form: dict[str, str]) -> Response:
    console = view.console
    identity = view.identity
    if identity is None or not identity.is_operator:
        console.metrics.auth_failures.labels("forbidden").inc()
        return view.render("error.html", 403, message="Changing a tenant needs the operator role.")
    command = view.request.path_params["command"]
    if console.tenants is None or command not in WEB_COMMANDS:
        return view.render("error.html", 404, message="No such page.")
    tenant = view.request.path_params["tenant"]
    try:
        console.tenants.set_state(
            tenant, command, {"reason": form.get("reason", "")}, by=identity.name
        )
    except TenantNotFoundError:
        return view.render("error.html", 404, message="No such tenant.")
    except TenantError as exc:
        return view.render("error.html", 400, message=f"Not changed: {exc}")
    except TetherError as exc:
        return view.render(
            "error.html", 503, message=f"Kafka did not acknowledge ({type(exc).__name__})."
        )
    return RedirectResponse("/ui/tenants", 303)


def tenant_choose(view: Page, form: dict[str, str]) -> Response:
    tenant = form.get("tenant", "")
    if tenant not in view.tenant_choices():
        return view.render("error.html", 400, message="No such tenant.")
    back = form.get("back", "/")
    # Only a path of this site (not "//host", "/\host" or a URL): an open redirect otherwise.
    if not back.startswith("/") or back[1:2] in ("/", "\\"):
        back = "/"
    response = RedirectResponse(back, 303)
    response.set_cookie(
        TENANT_COOKIE,
        tenant,
        max_age=int(view.console.sessions.lifetime),
        httponly=True,
        samesite="strict",
        secure=view.console.settings.console_cookie_secure,
        path="/",
    )
    return response


def routes(console: Console) -> list[BaseRoute]:
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", page(console, logout), methods=["POST"]),
        Route("/", page(console, overview), methods=["GET"]),
        Route("/ui/review", page(console, review_list), methods=["GET"]),
        Route("/ui/review/{review_id}", page(console, review_one), methods=["GET"]),
        Route("/ui/conflicts", page(console, conflict_list), methods=["GET"]),
        Route("/ui/dead-letters", page(console, dead_letters), methods=["GET"]),
        Route("/ui/links", page(console, link_list), methods=["GET"]),
        Route("/ui/links/{link_id}", page(console, link_one), methods=["GET"]),
        Route("/ui/actions/new", page(console, action_new), methods=["GET"]),
        Route("/ui/actions", page(console, action_post), methods=["POST"]),
        Route("/ui/actions", page(console, action_list), methods=["GET"]),
        Route("/ui/ignored", page(console, ignored_list), methods=["GET"]),
        Route("/ui/actions/{action_id}", page(console, action_one), methods=["GET"]),
        Route("/ui/tenants", page(console, tenant_list), methods=["GET"]),
        Route(
            "/ui/tenants/{tenant}/{command}",
            page(console, tenant_command),
            methods=["POST"],
        ),
        Route("/ui/tenant", page(console, tenant_choose), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
