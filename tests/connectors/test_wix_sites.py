"""Several Wix sites in one simulator: the production client and webhook parser over real HTTP.

An API key with ``wix-site-id``, or an app token issued for an instance, selects the site; each
site's contacts, tokens and 200 requests/min are its own; a key of another site's account is
refused; every site's webhooks carry its own instanceId, signed with the app's one key.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.client import ApiKeyAuth, AppAuth, WixClient
from services.connectors.wix.models import primary_email
from services.connectors.wix.simsites import WixSites, site_credentials
from services.connectors.wix.simwebhooks import WebhookSettings
from services.connectors.wix.webhooks import verify_and_parse
from services.core.budget import ApiBudget
from services.core.errors import AuthenticationError, PermissionDeniedError

ALPHA, BETA = site_credentials("alpha"), site_credentials("beta")


class Hook:
    """A webhook receiver recording bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.bodies.append(body)
        return PlainTextResponse("ok")


@pytest.fixture
def hook() -> Iterator[tuple[Hook, ServerThread]]:
    received = Hook()
    with ServerThread(Starlette(routes=[Route("/hook", received.endpoint, methods=["POST"])])) as s:
        yield received, s


@pytest.fixture
def sites(hook: tuple[Hook, ServerThread]) -> Iterator[WixSites]:
    made = WixSites(
        [dataclasses.replace(site, rate_limit=0) for site in (ALPHA, BETA)],
        webhook_settings=WebhookSettings(urls=[f"{hook[1].url}/hook"], delivery_workers=1),
    )
    yield made
    made.close()


@pytest.fixture
def server(sites: WixSites) -> Iterator[ServerThread]:
    with sites.serve() as running:
        yield running


def api_key_client(server: ServerThread, key: str, site_id: str) -> WixClient:
    return WixClient(
        ApiKeyAuth(api_key=SecretStr(key), site_id=site_id),
        ApiBudget("wix-test", 0),
        base_url=server.url,
        timeout_seconds=5.0,
    )


def app_client(sites: WixSites, server: ServerThread, instance_id: str) -> WixClient:
    auth = AppAuth(
        app_id=sites.app_id, app_secret=SecretStr(sites.app_secret), instance_id=instance_id
    )
    return WixClient(auth, ApiBudget("wix-test", 0), base_url=server.url, timeout_seconds=5.0)


def emails(client: WixClient) -> list[str]:
    return sorted(primary_email(c) or "" for c in client.iter_query())


def seed(server: ServerThread, tenant: str, email: str) -> None:
    with WixAdmin(WixSites.admin_root(server.url, tenant)) as admin:
        admin.seed([{"info": {"emails": {"items": [{"email": email, "primary": True}]}}}])


def test_the_api_key_and_site_id_select_the_site(server: ServerThread):
    seed(server, "alpha", "ola@example.com")
    seed(server, "beta", "kari@example.com")
    with api_key_client(server, ALPHA.api_key, ALPHA.site_id) as alpha:
        alpha.create({"info.name.first": "Per", "info.emails[primary].email": "per@example.com"})
        assert emails(alpha) == ["ola@example.com", "per@example.com"]
    with api_key_client(server, BETA.api_key, BETA.site_id) as beta:
        assert emails(beta) == ["kari@example.com"]
    with WixAdmin(server.url) as default:  # /_admin without a tenant: the first site's
        assert len(default.contacts()) == 2


def test_an_app_token_selects_its_instance(sites: WixSites, server: ServerThread):
    seed(server, "beta", "kari@example.com")
    with app_client(sites, server, BETA.instance_id) as beta:
        assert emails(beta) == ["kari@example.com"]
        beta.create({"info.name.first": "Nils"})
    with app_client(sites, server, ALPHA.instance_id) as alpha:
        assert emails(alpha) == []
    named = [c["info"]["name"]["first"] for c in sites["beta"].store.all() if "name" in c["info"]]
    assert named == ["Nils"]
    assert sites["alpha"].store.all() == []
    unknown = app_client(sites, server, "00000000-0000-4000-8000-000000000000")
    with unknown, pytest.raises(AuthenticationError):
        unknown.query_page()


def test_foreign_and_unknown_keys_are_refused(server: ServerThread):
    with (
        api_key_client(server, ALPHA.api_key, BETA.site_id) as foreign,
        pytest.raises(PermissionDeniedError),
    ):
        foreign.query_page()
    with (
        api_key_client(server, "no-such-key", ALPHA.site_id) as unknown,
        pytest.raises(AuthenticationError),
    ):
        unknown.query_page()
    with (
        api_key_client(server, ALPHA.api_key, "no-such-site") as lost,
        pytest.raises(PermissionDeniedError),
    ):
        lost.query_page()


def test_rate_limits_are_per_site():
    # A window no test run outlasts: whether a request is throttled never depends on timing.
    slow = WixSites(
        dataclasses.replace(site, rate_limit=2, rate_window_seconds=600) for site in (ALPHA, BETA)
    )
    try:
        with slow.serve() as server:
            statuses = [
                httpx.post(
                    f"{server.url}/contacts/v4/contacts/query",
                    headers={"Authorization": ALPHA.api_key, "wix-site-id": ALPHA.site_id},
                    json={},
                ).status_code
                for _ in range(3)
            ]
            assert statuses == [200, 200, 429]
            with api_key_client(server, BETA.api_key, BETA.site_id) as beta:
                assert beta.query_page().contacts == []
    finally:
        slow.close()
    assert slow["alpha"].limiter.rejected == 1
    assert slow["beta"].limiter.rejected == 0


def test_each_sites_webhooks_carry_its_instance_id(
    sites: WixSites, server: ServerThread, hook: tuple[Hook, ServerThread]
):
    with api_key_client(server, ALPHA.api_key, ALPHA.site_id) as alpha:
        alpha.create({"info.name.first": "Ola"})
    with app_client(sites, server, BETA.instance_id) as beta:
        beta.create({"info.name.first": "Kari"})
    for tenant in ("alpha", "beta"):
        assert sites[tenant].webhooks.wait_idle()
    public_key = httpx.get(f"{server.url}/_tenants/beta/_admin/public-key").text
    events = [verify_and_parse(body, public_key) for body in hook[0].bodies]
    by_instance = {e.instance_id: (e.contact or {})["info"]["name"]["first"] for e in events}
    assert by_instance == {ALPHA.instance_id: "Ola", BETA.instance_id: "Kari"}


def test_sites_added_and_listed_at_run_time(sites: WixSites, server: ServerThread):
    added = httpx.post(f"{server.url}/_tenants", json={"tenant": "gamma", "rate_limit": 0})
    assert added.status_code == 201
    gamma = site_credentials("gamma")
    assert added.json()["site_id"] == gamma.site_id
    assert httpx.post(f"{server.url}/_tenants", json={"tenant": "gamma"}).status_code == 409
    clash = {"tenant": "delta", "site_id": ALPHA.site_id}
    assert httpx.post(f"{server.url}/_tenants", json=clash).status_code == 409
    assert httpx.post(f"{server.url}/_tenants", json={"tenant": "x", "no": 1}).status_code == 400
    listed = httpx.get(f"{server.url}/_tenants").json()
    assert [t["tenant"] for t in listed["tenants"]] == ["alpha", "beta", "gamma"]
    with api_key_client(server, gamma.api_key, gamma.site_id) as client:
        client.create({"info.name.first": "Nils"})
    assert len(sites["gamma"].store.all()) == 1
