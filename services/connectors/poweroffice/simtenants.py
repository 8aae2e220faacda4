"""Several PowerOffice Go clients in one simulator process (tests, demo, bench; not production).

``PowerOfficeSimulators`` is an ASGI front holding one ``PowerOfficeSimulator`` per tenant (a Go
client, each with its own records, keys, token store, faults, counters and clock offset) and
routing every request to one of them as the real gateway does — by credentials, never by a
simulator-only URL in the client's path:

- ``POST /OAuth/Token`` (and ``/Demo/...``): the client whose (application key, client key) the
  ``Authorization: Basic`` header names, provided the ``Ocp-Apim-Subscription-Key`` is that
  client's. A subscription key the gateway knows but that is not the named client's goes to the
  key's own client, which answers 400 ``invalid_client`` ("keys matching the desired
  environment", reference §2). An unknown or missing subscription key: 401 from the gateway.
- ``/v2/...``: the client that issued the bearer token (``simkit.TokenIndex``). That client
  checks the subscription key as its own gateway does: a key that is not its own is refused
  with **401** "Access denied due to invalid subscription key" (reference §1/§2: subscription,
  application and client key must belong together; §8: 401 for credentials, 403 is for missing
  privileges). An unknown or expired token goes to the subscription key's client: 401.
- Rate limit: 10 requests/second **per subscription key**, whichever client sends (reference
  §8, "regardless of how many client keys use it"). Tenants with their own keys have
  independent limits; tenants sharing a key (``tenant_credentials(..., shared_subscription_key=
  True)``: one integration's customers, the real-world shape) share one window, whose limit is
  the first such tenant's.
- Admin (not part of the real API): ``/_tenants/{tenant}/_admin/...`` is that tenant's
  ``/_admin/...`` (seed, edit, faults, counters, ...); ``/_admin/...`` is the first tenant's;
  ``GET /_tenants`` lists the tenants with their (local, fake) keys; ``POST /_tenants`` adds one
  at run time: ``{"tenant": id, "application_key"?, "client_key"?, "subscription_key"?,
  <SimulatorLimits field>?...}`` (missing keys: ``tenant_credentials(id)``) -> 201, 409 when the
  id or the (application key, client key) pair is taken.

``main(argv)`` is ``tether simulate poweroffice``: without ``--tenants`` it runs the
single-tenant simulator exactly as before; ``--tenants N`` serves tenant ``default`` (the key
options' credentials, so a single-tenant deployment keeps working) and ``tenant-001``...

Imports: standard library, starlette, simkit and ``simulator``; never the production client.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.connectors.poweroffice import simulator
from services.connectors.poweroffice.simulator import (
    DEFAULT_APPLICATION_KEY,
    INVALID_SUBSCRIPTION_KEY,
    MISSING_SUBSCRIPTION_KEY,
    Credentials,
    PowerOfficeSimulator,
    SimulatorLimits,
    gateway_error,
)
from services.connectors.simkit import (
    TENANT_ID,
    ASGIApp,
    Receive,
    Scope,
    Send,
    TenantFront,
    TokenIndex,
    WindowRateLimiter,
    forward,
    header,
    query_params,
    run_forever,
    tenant_admin_path,
    tenant_ids,
)

#: The tenant ``--tenants`` gives the key options' credentials (the single-tenant ones).
DEFAULT_TENANT = "default"


def tenant_credentials(tenant: str, *, shared_subscription_key: bool = False) -> Credentials:
    """Deterministic local keys for ``tenant``: the integration's one application key, the
    tenant's own client key, and its own subscription key — or, with
    ``shared_subscription_key``, the integration's one key (all tenants then share 10 req/s)."""
    return Credentials(
        application_key=DEFAULT_APPLICATION_KEY,
        client_key=f"sim-client-key-{tenant}",
        subscription_key=(
            simulator.DEFAULT_SUBSCRIPTION_KEY
            if shared_subscription_key
            else f"sim-subscription-key-{tenant}"
        ),
    )


@dataclass(frozen=True)
class PowerOfficeTenant:
    """One simulated Go client: its tenant id, keys and limits."""

    tenant: str
    credentials: Credentials
    limits: SimulatorLimits = field(default_factory=SimulatorLimits)

    def describe(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "application_key": self.credentials.application_key,
            "client_key": self.credentials.client_key,
            "subscription_key": self.credentials.subscription_key,
            "requests_per_second": self.limits.requests_per_second,
        }


class TenantConflictError(ValueError):
    """A tenant id or an (application key, client key) pair already in use."""


class PowerOfficeSimulators(TenantFront[PowerOfficeSimulator]):
    """The multi-tenant front: ``.app`` (ASGI), ``[tenant]`` -> that tenant's simulator."""

    def __init__(
        self,
        tenants: Iterable[PowerOfficeTenant] = (),
        *,
        limits: SimulatorLimits | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``limits``: the template of a tenant added by ``POST /_tenants`` (default: real)."""
        self.limits = limits or SimulatorLimits()
        self._clock = clock
        super().__init__()
        self._tenants: dict[str, PowerOfficeTenant] = {}
        self._by_client: dict[tuple[str, str], str] = {}
        self._by_subscription: dict[str, str] = {}  # key -> first tenant holding it
        self._limiters: dict[str, WindowRateLimiter] = {}
        self.tokens = TokenIndex()
        self.app: ASGIApp = self  # the ASGI app, named as on the single-tenant simulators
        self._admin = Starlette(
            routes=[Route("/_tenants", self._tenants_admin, methods=["GET", "POST"])]
        )
        for tenant in tenants:
            self.add(tenant)

    # -- tenants ------------------------------------------------------------------------------

    def add(self, tenant: PowerOfficeTenant) -> PowerOfficeSimulator:
        """Start serving ``tenant`` (at run time too); its simulator is returned."""
        if not TENANT_ID.match(tenant.tenant):
            raise ValueError(f"invalid tenant id {tenant.tenant!r}")
        creds = tenant.credentials
        client = (creds.application_key, creds.client_key)
        with self._lock:
            if tenant.tenant in self._tenants:
                raise TenantConflictError(f"tenant {tenant.tenant!r} exists")
            if client in self._by_client:
                raise TenantConflictError("another tenant has this application and client key")
            # The gateway counts per subscription key: tenants sharing a key share one window.
            limiter = self._limiters.get(creds.subscription_key)

            def issued(token: str, lifetime: float, name: str = tenant.tenant) -> None:
                self.tokens.add(token, name, lifetime)

            sim = PowerOfficeSimulator(
                credentials=creds,
                limits=tenant.limits,
                clock=self._clock,
                rate_limiter=limiter,
                on_token=issued,
            )
            self._limiters.setdefault(creds.subscription_key, sim.rate_limiter)
            self._by_subscription.setdefault(creds.subscription_key, tenant.tenant)
            self._by_client[client] = tenant.tenant
            self._tenants[tenant.tenant] = tenant
            self._simulators[tenant.tenant] = sim
        return sim

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
                await JSONResponse({"message": "no such tenant or path"}, 404)(scope, receive, send)
                return
            await forward(sim.app, scope, receive, send, path=routed[1])
            return
        target = self._route(scope)
        if isinstance(target, Response):
            await target(scope, receive, send)
        else:
            await target.app(scope, receive, send)

    def _route(self, scope: Scope) -> PowerOfficeSimulator | Response:
        """The tenant whose simulator answers this request, or the gateway's own refusal."""
        default = self.default
        parts = [p for p in scope["path"].lower().split("/") if p]
        if parts[:1] == ["demo"]:
            parts = parts[1:]
        is_token = parts == ["oauth", "token"]
        if scope["path"].startswith("/_admin") or not (is_token or parts[:1] == ["v2"]):
            return default if default is not None else gateway_error(404, "Resource not found")
        params = {name.lower(): value for name, value in query_params(scope).items()}
        key = header(scope, "ocp-apim-subscription-key") or params.get("subscription-key")
        if not key:
            return gateway_error(401, MISSING_SUBSCRIPTION_KEY)
        # Whichever simulator is chosen checks the key, then counts the request against the
        # key's window, then checks the credentials: the gateway's order. So a request for which
        # no client is found goes to the key's owner, never past the key's rate limit.
        chosen = self._client_of_token(scope) if not is_token else self._client_of_keys(scope)
        with self._lock:
            if chosen is not None and (
                not is_token or self._tenants[chosen].credentials.subscription_key == key
            ):
                return self._simulators[chosen]
            owner = self._by_subscription.get(key)
            if owner is None:
                return gateway_error(401, INVALID_SUBSCRIPTION_KEY)
            return self._simulators[owner]

    def _client_of_keys(self, scope: Scope) -> str | None:
        auth = header(scope, "authorization") or ""
        if auth[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        app_key, _, client_key = decoded.partition(":")
        with self._lock:
            return self._by_client.get((app_key, client_key))

    def _client_of_token(self, scope: Scope) -> str | None:
        auth = header(scope, "authorization") or ""
        if auth[:7].lower() != "bearer ":
            return None
        return self.tokens.tenant_of(auth[7:].strip())

    # -- admin --------------------------------------------------------------------------------

    async def _tenants_admin(self, request: Request) -> Response:
        if request.method == "GET":
            with self._lock:
                tenants = [t.describe() for t in self._tenants.values()]
            return JSONResponse({"tenants": tenants})
        try:
            body = json.loads(await request.body())
            tenant = self._tenant_from_json(body)
            self.add(tenant)
        except TenantConflictError as exc:
            return JSONResponse({"message": str(exc)}, 409)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, 400)
        return JSONResponse(tenant.describe(), 201)

    def _tenant_from_json(self, body: Any) -> PowerOfficeTenant:
        if not isinstance(body, dict) or not isinstance(body.get("tenant"), str):
            raise ValueError('expected {"tenant": "<id>", ...}')
        body = dict(body)
        name = body.pop("tenant")
        defaults = tenant_credentials(name)
        creds = Credentials(
            application_key=str(body.pop("application_key", defaults.application_key)),
            client_key=str(body.pop("client_key", defaults.client_key)),
            subscription_key=str(body.pop("subscription_key", defaults.subscription_key)),
        )
        known = {f.name for f in dataclasses.fields(SimulatorLimits)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown tenant fields: {unknown}")
        return PowerOfficeTenant(name, creds, dataclasses.replace(self.limits, **body))


def build_parser() -> argparse.ArgumentParser:
    parser = simulator.build_parser()
    parser.add_argument(
        "--tenants",
        type=int,
        default=None,
        help="serve this many more Go clients (tenant-001, ...; keys: GET /_tenants) beside "
        "the one of the key options (tenant 'default')",
    )
    parser.add_argument(
        "--shared-subscription-key",
        action="store_true",
        help="with --tenants: all tenants use one subscription key (and share its rate limit)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``tether simulate poweroffice [--tenants N]`` in the foreground until SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    if args.tenants is None:
        return simulator.main(argv)
    if args.tenants < 1:
        raise SystemExit("--tenants must be at least 1")
    limits = simulator.limits_from_args(args)
    # The classic single-tenant keys stay valid as tenant "default" (first: /_admin is its).
    default = Credentials(args.application_key, args.client_key, args.subscription_key)
    tenants = [PowerOfficeTenant(DEFAULT_TENANT, default, limits)]
    for name in tenant_ids(args.tenants):
        creds = tenant_credentials(name)
        if args.shared_subscription_key:
            creds = dataclasses.replace(creds, subscription_key=default.subscription_key)
        tenants.append(PowerOfficeTenant(name, creds, limits))
    front = PowerOfficeSimulators(tenants, limits=limits)
    root = f"http://{args.host}:{args.port}"
    print(
        f"PowerOffice Go v2 simulator, {len(tenants)} clients: API {root}/v2, token "
        f"{root}/OAuth/Token, tenants {root}/_tenants, admin {root}/_tenants/<tenant>/_admin"
    )
    run_forever(front.app, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
