"""WixClient fidelity against the simulator's realism options (over real HTTP): writes carry only
writable item fields, paging survives a server that clamps the page size, a short-lived token is
not renewed before every call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.client import (
    ApiKeyAuth,
    AppAuth,
    WixClient,
    last_page,
)
from services.connectors.wix.fields import info_for_update
from services.connectors.wix.models import parse_contact
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget


@pytest.fixture(scope="module")
def sim() -> Iterator[WixSimulator]:
    simulator = WixSimulator(rate_limit=0, strict_read_only_items=True, max_page_size=7)
    yield simulator
    simulator.close()


@pytest.fixture
def client(sim: WixSimulator, server: ServerThread) -> Iterator[WixClient]:
    sim.reset()
    auth = ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id)
    with WixClient(auth, ApiBudget("wix-test", 0), base_url=server.url) as made:
        yield made


def test_update_sends_no_read_only_item_fields_to_a_strict_server(client: WixClient):
    created = client.create(
        {
            "info.name.first": "Kari",
            "info.emails[primary].email": "k@example.com",
            "info.phones[primary].phone": "41234567",
        },
        phone_country="NO",
    )
    assert created.phones[0].e164_phone == "+4741234567"  # the server derived read-only fields
    assert created.phones[0].id and created.emails[0].id
    updated = client.update(
        created,
        {
            "info.emails[primary].email": "kari@example.com",
            "info.phones[primary].phone": "98765432",
        },
    )
    assert [e.email for e in updated.emails] == ["kari@example.com"]
    assert [(p.phone, p.e164_phone) for p in updated.phones] == [("98765432", "+4798765432")]
    renamed = client.update(
        updated, {"info.name.last": "Nordmann"}
    )  # name only: items not sent at all
    assert renamed.last_name == "Nordmann"


def test_update_body_carries_only_writable_item_fields():
    current = parse_contact(
        {
            "id": "c1",
            "revision": 3,
            "info": {
                "emails": {
                    "items": [
                        {"id": "e1", "tag": "WORK", "email": "a@x.no", "primary": True},
                        {"id": "e2", "tag": "HOME", "email": "b@x.no", "verified": True},
                    ]
                },
                "phones": {
                    "items": [
                        {
                            "id": "p1",
                            "tag": "MOBILE",
                            "countryCode": "NO",
                            "phone": "41234567",
                            "e164Phone": "+4741234567",
                            "formattedPhone": "+47 412 34 567",
                            "primary": True,
                        }
                    ]
                },
            },
        }
    )
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        return httpx.Response(200, json={"contact": {"id": "c1", "revision": 4}})

    auth = ApiKeyAuth(api_key=SecretStr("k"), site_id="s")
    with WixClient(
        auth, ApiBudget("t", 0), base_url="https://wix.test", transport=httpx.MockTransport(handler)
    ) as client:
        client.update(
            current,
            {"info.emails[primary].email": "c@x.no", "info.phones[primary].phone": "98765432"},
        )
    [body] = sent
    assert body["info"]["emails"]["items"] == [
        {"tag": "WORK", "email": "c@x.no", "primary": True},
        {"tag": "HOME", "email": "b@x.no", "primary": False},
    ]
    assert body["info"]["phones"]["items"] == [
        {"tag": "MOBILE", "countryCode": "NO", "phone": "98765432", "primary": True}
    ]
    assert info_for_update(current, {"info.name.first": "K"}) == {"name": {"first": "K"}}


def test_paging_survives_a_server_that_clamps_the_page_size(
    client: WixClient, server: ServerThread
):
    with WixAdmin(server.url) as admin:
        seeded = admin.seed([{"info": {"name": {"first": f"P{i}"}}} for i in range(30)])
    page = client.query_page(limit=100)
    assert page.count == 7 and page.total == 30  # the server answered 7 of the 100 asked for
    everyone = [c.id for c in client.iter_query(page_size=100)]
    assert everyone == [s["id"] for s in seeded]


def test_last_page_rule():
    assert last_page(0, 10, None)
    assert not last_page(7, 7, None)  # short page, nothing counted: ask again
    assert not last_page(7, 7, 30)
    assert last_page(2, 30, 30)


def test_short_lived_token_is_not_renewed_before_every_call():
    short = WixSimulator(rate_limit=0, token_ttl_seconds=30)
    calls: list[str] = []
    try:
        with short.server() as running:
            auth = AppAuth(
                app_id=short.app_id,
                app_secret=SecretStr(short.app_secret),
                instance_id=short.instance_id,
            )
            with WixClient(
                auth,
                ApiBudget("t", 0),
                base_url=running.url,
                on_request=lambda _s, op, _st, _sec: calls.append(op),
            ) as app_client:
                for _ in range(3):
                    app_client.query_page(limit=1)
    finally:
        short.close()
    assert calls == ["token", "query", "query", "query"]
