"""Several Wix sites in one simulator process — tests, demo, benchmarks; never production.

``WixSites`` is an ASGI front holding one ``WixSimulator`` per tenant (a Wix site with the app
installed: its own contacts, API key, app instance, tokens, 200 requests/min, faults, counters
and webhook queue) and routing every request to one of them as ``www.wixapis.com`` does — by
credentials, never by a simulator-only URL in the client's path:

- ``POST /oauth2/token``: the site whose app ``instance_id`` the body names (the app id and
  secret are the app's, the same for every site); an unknown instance: 400 ``INVALID_CLIENT``.
- An app token (raw or ``Bearer``): the site it was issued for (``simkit.TokenIndex``).
- An API key: the site ``wix-site-id`` names; that site refuses a key that is not its own as it
  always did (401 for a key nobody issued). A key of another site's account: 403
  ``PERMISSION_DENIED`` ("site-level calls only work with keys from the site owner's account",
  reference §2; 403 = authenticated without the permission, §5). Sites may share a key (one
  account owning several sites). No or an unknown ``wix-site-id``: 403 for a known key, 401
  otherwise.
- 200 requests per 60 s **per site** (instance): each site's own window.
- Webhooks: each site's events carry its ``instanceId`` in the JWT envelope, are signed with the
  app's one key (``signer``, ``GET /_admin/public-key`` of any site) and go to the app's webhook
  URL(s) (``webhook_settings``, copied to each site: ``PUT /_tenants/{t}/_admin/webhooks``
  changes one site's). Each site keeps its own delivery queue; ``delivery_workers`` of the
  template is per site (default here 2: 200 sites must not start 1,600 threads).
- Admin (not part of Wix): ``/_tenants/{tenant}/_admin/...`` is that site's ``/_admin/...``;
  ``/_admin/...`` the first site's; ``GET /_tenants`` lists the sites with their (local, fake)
  credentials; ``POST /_tenants`` adds one at run time: ``{"tenant": id, "api_key"?,
  "site_id"?, "instance_id"?, "rate_limit"?, "rate_window_seconds"?}`` (missing values:
  ``site_credentials(id)``) -> 201, 409 when the id, site id or instance id is taken.

``main(argv)`` is ``tether simulate wix``: without ``--tenants`` it runs the single-site
simulator exactly as before; ``--tenants N`` serves site ``default`` (the credential options, so
a single-tenant deployment keeps working) and ``tenant-001``...

Imports: standard library, starlette, simkit and this package's ``sim*`` modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.connectors.simkit import (
    TENANT_ID,
    ASGIApp,
    Receive,
    Scope,
    Send,
    TenantFront,
    TokenIndex,
    forward,
    header,
    read_body,
    run_forever,
    tenant_admin_path,
    tenant_ids,
)
from services.connectors.wix import simulator
from services.connectors.wix.simerrors import SimApiError, app_error
from services.connectors.wix.simulator import DEFAULT_APP_ID, WixSimulator
from services.connectors.wix.simwebhooks import WebhookSettings, WebhookSigner

log = logging.getLogger(__name__)

DEFAULT_APP_SECRET = "sim-wix-app-secret"
#: The tenant ``--tenants`` gives the credential options (the single-site ones).
DEFAULT_TENANT = "default"
_IDS = uuid.UUID("6f1c0f1e-0b7a-4d39-9a51-5e3f1d2c7b80")  # namespace of the derived site ids


def site_credentials(tenant: str) -> WixSite:
    """Deterministic local credentials for ``tenant``'s site: its own API key, site id and app
    instance id (ids derived from the tenant id, so every process agrees)."""
    return WixSite(
        tenant=tenant,
        api_key=f"sim-wix-api-key-{tenant}",
        site_id=str(uuid.uuid5(_IDS, f"site:{tenant}")),
        instance_id=str(uuid.uuid5(_IDS, f"instance:{tenant}")),
    )


@dataclass(frozen=True)
class WixSite:
    """One simulated site: its tenant id, credentials and rate limit."""

    tenant: str
    api_key: str
    site_id: str
    instance_id: str
    read_only_api_key: str | None = None
    rate_limit: int = 200
    rate_window_seconds: float = 60.0

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SiteConflictError(ValueError):
    """A tenant id, site id or instance id already in use."""


class WixSites(TenantFront[WixSimulator]):
    """The multi-site front: ``.app`` (ASGI), ``[tenant]`` -> that site's simulator."""

    def __init__(
        self,
        sites: Iterable[WixSite] = (),
        *,
        app_id: str = DEFAULT_APP_ID,
        app_secret: str = DEFAULT_APP_SECRET,
        private_key_pem: str | None = None,
        webhook_settings: WebhookSettings | None = None,
        site_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``webhook_settings``: the app's delivery settings, copied to each site;
        ``site_options``: more ``WixSimulator`` keyword arguments for every site (realism
        options, ``token_ttl_seconds``, ``clock``...; a site's own ``rate_limit`` wins)."""
        self.app_id = app_id
        self.app_secret = app_secret
        self.signer = WebhookSigner(private_key_pem)
        self.webhook_settings = webhook_settings or WebhookSettings(delivery_workers=2)
        self.site_options = dict(site_options or {})
        self.tokens = TokenIndex()
        self.app: ASGIApp = self  # the ASGI app, named as on the single-tenant simulators
        super().__init__()
        self._sites: dict[str, WixSite] = {}
        self._by_site_id: dict[str, str] = {}
        self._by_instance: dict[str, str] = {}
        self._key_owners: dict[str, str] = {}  # API key -> first tenant holding it
        self._admin = Starlette(
            routes=[Route("/_tenants", self._tenants_admin, methods=["GET", "POST"])]
        )
        for site in sites:
            self.add(site)

    # -- sites --------------------------------------------------------------------------------

    def add(self, site: WixSite) -> WixSimulator:
        """Start serving ``site`` (at run time too); its simulator is returned."""
        if not TENANT_ID.match(site.tenant):
            raise ValueError(f"invalid tenant id {site.tenant!r}")
        with self._lock:
            if site.tenant in self._sites:
                raise SiteConflictError(f"tenant {site.tenant!r} exists")
            if site.site_id in self._by_site_id or site.instance_id in self._by_instance:
                raise SiteConflictError("another tenant has this site id or instance id")
            settings = dataclasses.replace(
                self.webhook_settings,
                urls=list(self.webhook_settings.urls),
                retry_delays=list(self.webhook_settings.retry_delays),
            )

            def issued(token: str, ttl: float, name: str = site.tenant) -> None:
                self.tokens.add(token, name, ttl)

            options = {
                **self.site_options,
                "rate_limit": site.rate_limit,
                "rate_window_seconds": site.rate_window_seconds,
            }
            sim = WixSimulator(
                api_key=site.api_key,
                read_only_api_key=site.read_only_api_key,
                site_id=site.site_id,
                app_id=self.app_id,
                app_secret=self.app_secret,
                instance_id=site.instance_id,
                webhook_settings=settings,
                signer=self.signer,
                on_token=issued,
                **options,
            )
            self._sites[site.tenant] = site
            self._simulators[site.tenant] = sim
            self._by_site_id[site.site_id] = site.tenant
            self._by_instance[site.instance_id] = site.tenant
            for key in (site.api_key, site.read_only_api_key):
                if key:
                    self._key_owners.setdefault(key, site.tenant)
        return sim

    def close(self) -> None:
        """Stop every site's webhook delivery threads."""
        with self._lock:
            sims = list(self._simulators.values())
        for sim in sims:
            sim.close()

    # -- routing ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/_tenants":
            await self._admin(scope, receive, send)
            return
        if path.startswith("/_tenants/"):
            routed = tenant_admin_path(path)
            with self._lock:
                sim = self._simulators.get(routed[0]) if routed is not None else None
            if routed is None or sim is None:
                await _refusal(app_error(404, "NOT_FOUND", "Not found"))(scope, receive, send)
                return
            await forward(sim.app, scope, receive, send, path=routed[1])
            return
        body: bytes | None = None
        if path == "/oauth2/token" and scope["method"] == "POST":
            body = await read_body(receive)
            target = self._site_of_instance(body)
        elif path.startswith("/_admin") or not path.startswith("/contacts/"):
            target = self.default or _refusal(app_error(404, "NOT_FOUND", "Not found"))
        else:
            target = self._route(scope)
        if isinstance(target, Response):
            await target(scope, receive, send)
        else:
            await forward(target.app, scope, receive, send, body=body)

    def _site_of_instance(self, body: bytes) -> WixSimulator | Response:
        try:
            instance = json.loads(body or b"{}").get("instance_id")
        except (ValueError, AttributeError):
            instance = None
        with self._lock:
            tenant = self._by_instance.get(instance) if isinstance(instance, str) else None
            if tenant is not None:
                return self._simulators[tenant]
        return _refusal(app_error(400, "INVALID_CLIENT", "Invalid client credentials"))

    def _route(self, scope: Scope) -> WixSimulator | Response:
        """The site whose simulator answers this API call, or the refusal itself."""
        credential = (header(scope, "authorization") or "").strip()
        if credential.lower().startswith("bearer "):
            credential = credential[7:].strip()
        if not credential:
            return _refusal(app_error(401, "UNAUTHENTICATED", "Missing Authorization header"))
        token_tenant = self.tokens.tenant_of(credential)
        with self._lock:
            if token_tenant is not None:
                return self._simulators[token_tenant]
            tenant = self._by_site_id.get(header(scope, "wix-site-id") or "")
            site = self._sites.get(tenant) if tenant is not None else None
            key_known = credential in self._key_owners
        if site is not None and (
            not key_known or credential in (site.api_key, site.read_only_api_key)
        ):
            return self[site.tenant]  # its own key, or one nobody issued: the site says 401
        if key_known:
            return _refusal(
                app_error(403, "PERMISSION_DENIED", "API key has no access to this site")
            )
        return _refusal(app_error(401, "UNAUTHENTICATED", "Invalid credentials"))

    # -- admin --------------------------------------------------------------------------------

    async def _tenants_admin(self, request: Request) -> Response:
        if request.method == "GET":
            with self._lock:
                sites = [s.describe() for s in self._sites.values()]
            return JSONResponse({"appId": self.app_id, "tenants": sites})
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict) or not isinstance(body.get("tenant"), str):
                raise ValueError('expected {"tenant": "<id>", ...}')
            site = dataclasses.replace(site_credentials(body["tenant"]), **body)
            self.add(site)
        except SiteConflictError as exc:
            return JSONResponse({"message": str(exc)}, 409)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, 400)
        return JSONResponse(site.describe(), 201)


def _refusal(problem: SimApiError) -> Response:
    return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers)


def build_parser() -> argparse.ArgumentParser:
    parser = simulator.build_parser()
    parser.add_argument(
        "--tenants",
        type=int,
        default=None,
        help="serve this many more sites (tenant-001, ...; credentials: GET /_tenants) beside "
        "the one of the credential options (tenant 'default')",
    )
    parser.add_argument(
        "--delivery-workers",
        type=int,
        default=2,
        help="with --tenants: webhook delivery threads per site (default 2)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``tether simulate wix [--tenants N]`` in the foreground until SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    if args.tenants is None:
        return simulator.main(argv)
    if args.tenants < 1:
        raise SystemExit("--tenants must be at least 1")
    settings = simulator.webhook_settings_from_args(args)
    settings.delivery_workers = args.delivery_workers
    options = simulator.site_options_from_args(args)
    rate = {
        "rate_limit": options.pop("rate_limit"),
        "rate_window_seconds": options.pop("rate_window_seconds"),
    }
    # The classic single-site credentials stay valid as tenant "default" (first: /_admin is its).
    default = WixSite(
        DEFAULT_TENANT,
        args.api_key,
        args.site_id,
        args.instance_id,
        read_only_api_key=simulator.DEFAULT_READ_ONLY_API_KEY,
        **rate,
    )
    others = [dataclasses.replace(site_credentials(n), **rate) for n in tenant_ids(args.tenants)]
    sites = WixSites(
        [default, *others],
        app_id=args.app_id,
        app_secret=args.app_secret,
        private_key_pem=simulator.private_key_from_args(args),
        webhook_settings=settings,
        site_options=options,
    )
    if args.public_key_out:
        with open(args.public_key_out, "w", encoding="utf-8") as fh:
            fh.write(sites.signer.public_key_pem)
    log.warning("wix simulator, %d sites, on http://%s:%d", len(others) + 1, args.host, args.port)
    try:
        run_forever(sites.app, args.host, args.port)
    finally:
        sites.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
