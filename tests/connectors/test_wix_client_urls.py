"""WixClient's request URLs keep a base URL's path prefix (a proxy in front of Wix), for the
paths it builds once (create, query, extended fields) and the ones it builds per call (an id in
the path), over real HTTP: the simulator is served under ``/wix`` and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from services.connectors.simkit import ServerThread
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget

PREFIX = "/wix"


class _UnderPrefix:
    """Serves ``app`` under ``PREFIX`` only; any other path is a 404."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and not path.startswith(PREFIX + "/"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        inner = dict(scope)
        inner["path"] = path[len(PREFIX) :]
        inner["raw_path"] = inner["path"].encode()
        await self._app(inner, receive, send)


@pytest.fixture
def client(sim: WixSimulator) -> Iterator[WixClient]:
    sim.reset()
    auth = ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id)
    with (
        ServerThread(_UnderPrefix(sim.app)) as server,
        WixClient(auth, ApiBudget("wix-test", 0), base_url=server.url + PREFIX) as made,
    ):
        yield made


def test_every_operation_reaches_the_api_under_the_base_urls_path(client: WixClient):
    key = client.find_or_create_extended_field("tether-link-id")
    assert key == "custom.tether-link-id"
    created = client.create(
        {"info.name.first": "Kari", "info.emails[primary].email": "kari@example.com"},
        extended_fields={key: "link-1"},
    )
    assert [c.id for c in client.find_by_extended_field(key, "link-1")] == [created.id]
    assert client.get(created.id).contact.revision == 1
    updated = client.update(created, {"info.name.first": "Kåre"})
    assert updated.revision == 2
    client.delete(created.id)
    assert list(client.iter_query()) == []
    assert [f["key"] for f in client.list_extended_fields()] == [key]
