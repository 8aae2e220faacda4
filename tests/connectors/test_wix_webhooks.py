"""Wix contact webhooks: JWTs checked independently and by verify_and_parse; delivery faults."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simstore import ChangeKind, ContactChange
from services.connectors.wix.simulator import WixSimulator
from services.connectors.wix.simwebhooks import WebhookSettings, WebhookSigner, envelope
from services.connectors.wix.webhooks import (
    ContactWebhookEvent,
    WebhookRejectedError,
    verify_and_parse,
)
from services.core.errors import ConfigurationError, TetherError

C = "/contacts/v4/contacts"


@dataclass
class Receiver:
    """A webhook endpoint: records bodies; answers per ``script`` (status or delay) then 200."""

    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    script: list[int | float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.bodies.append(body)
            self.content_types.append(request.headers.get("content-type", ""))
            action = self.script.pop(0) if self.script else 200
        if isinstance(action, float):
            time.sleep(action)  # blocks this server: a receiver too slow to answer in time
            return PlainTextResponse("late")
        return PlainTextResponse("ok", status_code=action)

    def events(self, public_key: str) -> list[ContactWebhookEvent]:
        with self.lock:
            return [verify_and_parse(body, public_key) for body in self.bodies]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, ServerThread]]:
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.endpoint, methods=["POST"])])
    with ServerThread(app) as running:
        yield rec, running


@pytest.fixture(scope="module")
def sim(receiver: tuple[Receiver, ServerThread]) -> Iterator[WixSimulator]:
    _rec, running = receiver
    simulator = WixSimulator(
        rate_limit=0,
        webhook_urls=[running.url + "/hook"],
        webhook_settings=WebhookSettings(retry_delays=[0.1, 0.2]),
    )
    yield simulator
    simulator.close()


@pytest.fixture
def rec(sim: WixSimulator, receiver: tuple[Receiver, ServerThread]) -> Receiver:
    sim.reset()
    sim.webhooks.settings.update(
        {"duplicate_probability": 0.0, "out_of_order_probability": 0.0, "wire_variant": "object"}
    )
    recorder = receiver[0]
    with recorder.lock:
        recorder.bodies.clear()
        recorder.content_types.clear()
        recorder.script.clear()
    return recorder


@pytest.fixture
def http(sim: WixSimulator, server: ServerThread) -> Iterator[httpx.Client]:
    headers = {"Authorization": sim.api_key, "wix-site-id": sim.site_id}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        yield client


def settle(sim: WixSimulator) -> None:
    assert sim.webhooks.wait_idle(10.0)


def b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def info(email: str) -> dict[str, Any]:
    return {"name": {"first": "Kari"}, "emails": {"items": [{"email": email}]}}


# -- what is sent ---------------------------------------------------------------------------


def test_jwt_verified_independently_of_our_parser(
    sim: WixSimulator, rec: Receiver, http: httpx.Client, server: ServerThread
):
    created = http.post(C, json={"info": info("a@example.com")}).json()["contact"]
    settle(sim)
    [token] = [b.decode() for b in rec.bodies]
    assert rec.content_types == ["text/plain; charset=utf-8"]
    public_pem = WixAdmin(server.url).public_key_pem()
    assert public_pem == sim.signer.public_key_pem

    # 1. the RS256 signature, checked by hand with `cryptography`
    head, payload, signature = token.split(".")
    header = json.loads(b64url(head))
    assert header == {"alg": "RS256", "kid": sim.signer.kid, "typ": "JWT"}
    public_key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        b64url(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )

    # 2. the claims, decoded by PyJWT directly, and the nesting of JSON strings
    claims = jwt.decode(token, public_pem, algorithms=["RS256"])
    assert set(claims) == {"data", "iat", "exp"} and claims["exp"] > claims["iat"]
    env = json.loads(claims["data"])
    assert env["eventType"] == "wix.contacts.v4.contact_created"
    assert env["instanceId"] == sim.instance_id
    assert json.loads(env["identity"])["identityType"] == "WIX_USER"
    domain = json.loads(env["data"])
    assert domain["entityFqdn"] == "wix.contacts.v4.contact" and domain["slug"] == "created"
    assert domain["entityId"] == created["id"]
    assert domain["createdEvent"]["entity"] == created
    assert domain["triggeredByAnonymizeRequest"] is False

    # 3. our parser agrees
    event = verify_and_parse(token, public_pem)
    assert (event.kind, event.entity_id, event.event_id) == ("created", created["id"], domain["id"])
    assert event.contact == created and event.instance_id == sim.instance_id
    assert event.event_time.tzinfo is not None


def test_every_write_fires_its_event(
    sim: WixSimulator, rec: Receiver, http: httpx.Client, server: ServerThread
):
    admin = WixAdmin(server.url)
    admin.seed([{"info": info("quiet@example.com")}])  # seeding is silent by default
    target = http.post(C, json={"info": info("t@example.com")}).json()["contact"]
    source = http.post(C, json={"info": info("s@example.com")}).json()["contact"]
    http.patch(f"{C}/{target['id']}", json={"revision": 1, "info": {"company": "Acme"}})
    admin.edit(target["id"], {"jobTitle": "Boss"})  # a person in the dashboard
    http.post(
        f"{C}/{target['id']}/merge",
        json={"targetContactRevision": 3, "sourceContactIds": [source["id"]]},
    )
    http.delete(f"{C}/{target['id']}")
    settle(sim)
    events = rec.events(sim.signer.public_key_pem)
    # Contacts are delivered concurrently: each contact's events in order, not all of them.
    of_target = [(e.kind, e.originated_from) for e in events if e.entity_id == target["id"]]
    of_source = [(e.kind, e.originated_from) for e in events if e.entity_id == source["id"]]
    assert len(events) == 8
    assert of_target == [
        ("created", None),
        ("updated", None),
        ("updated", None),
        ("updated", "merge"),
        ("merged", None),
        ("deleted", None),
    ]
    assert of_source == [("created", None), ("deleted", "merge")]
    target_events = [e for e in events if e.entity_id == target["id"]]
    dashboard = target_events[2]
    assert dashboard.contact is not None and dashboard.contact["revision"] == 3
    assert dashboard.identity["identityType"] == "WIX_USER"
    merged = target_events[4]
    assert merged.source_contact_ids == (source["id"],)
    assert merged.contact is not None and merged.contact["revision"] == 4
    assert target_events[5].contact is None
    assert len({e.event_id for e in events}) == len(events)


def test_stringified_wire_variant_is_accepted(sim: WixSimulator, rec: Receiver, http: httpx.Client):
    sim.webhooks.settings.update({"wire_variant": "json_string"})
    created = http.post(C, json={"info": info("a@example.com")}).json()["contact"]
    settle(sim)
    claims = jwt.decode(rec.bodies[0], sim.signer.public_key_pem, algorithms=["RS256"])
    domain = json.loads(json.loads(claims["data"])["data"])
    assert isinstance(domain["createdEvent"]["entityAsJson"], str)
    assert verify_and_parse(rec.bodies[0], sim.signer.public_key_pem).contact == created


# -- what is rejected -----------------------------------------------------------------------


def change(kind: ChangeKind = "updated", **extra: Any) -> ContactChange:
    entity = {"id": "c-1", "revision": 2}
    return ContactChange(
        kind=kind,
        entity_id="c-1",
        entity=entity,
        actor={"identityType": "APP", "appId": "app"},
        **extra,
    )


def test_forged_expired_and_malformed_tokens_are_rejected():
    signer, forger = WebhookSigner(), WebhookSigner()
    env, _ = envelope(change(), "inst")
    good = signer.envelope_jwt(env)
    assert verify_and_parse(good, signer.public_key_pem).kind == "updated"

    def reason(token: str | bytes) -> str:
        with pytest.raises(WebhookRejectedError) as caught:
            verify_and_parse(token, signer.public_key_pem)
        assert isinstance(caught.value, TetherError) and not caught.value.retriable
        return caught.value.reason

    assert reason(forger.envelope_jwt(env)) == "bad_signature"
    expired = signer.envelope_jwt(env, iat=int(time.time()) - 3600, ttl_seconds=60)
    assert reason(expired) == "expired"
    assert reason(b"not a jwt") == "malformed"
    head, payload, sig = good.split(".")
    assert reason(f"{head}.{payload[:-4]}AAAA.{sig}") in ("bad_signature", "malformed")
    hs256 = jwt.encode(
        {"data": json.dumps(env), "exp": time.time() + 60}, "k" * 32, algorithm="HS256"
    )
    assert reason(hs256) == "bad_signature"
    assert reason(signer.sign({"data": "{not json", "exp": time.time() + 60})) == "malformed"
    no_id = {**env, "data": json.dumps({"slug": "updated", "entityId": "c-1"})}
    assert reason(signer.envelope_jwt(no_id)) == "malformed"
    other = {
        **env,
        "eventType": "wix.ecom.v1.order_created",
        "data": json.dumps(
            {"id": "e", "slug": "created", "entityId": "o", "eventTime": "2024-01-01T00:00:00Z"}
        ),
    }
    assert reason(signer.envelope_jwt(other)) == "unsupported_event"


def test_each_public_key_verifies_only_its_own_tokens_and_an_unusable_one_stays_refused():
    first, second = WebhookSigner(), WebhookSigner()
    env, _ = envelope(change(), "inst")
    for _ in range(2):  # the second round verifies with the keys loaded by the first
        assert verify_and_parse(first.envelope_jwt(env), first.public_key_pem).kind == "updated"
        assert verify_and_parse(second.envelope_jwt(env), second.public_key_pem).kind == "updated"
        with pytest.raises(WebhookRejectedError, match="signature"):
            verify_and_parse(first.envelope_jwt(env), second.public_key_pem)
        with pytest.raises(ConfigurationError):
            verify_and_parse(first.envelope_jwt(env), "not a key")
        with pytest.raises(WebhookRejectedError) as caught:  # the token is checked first
            verify_and_parse(b"not a jwt", "not a key")
        assert caught.value.reason == "malformed"


def test_merge_slug_spelled_merge_and_old_payloads_are_accepted():
    signer = WebhookSigner()
    env, domain = envelope(change("merged", source_contact_ids=("s-1", "s-2")), "inst")
    domain["slug"] = "merge"
    domain["eventTime"] = "2020-10-20T07:22:04.564864123Z"  # nanoseconds, as Wix sometimes sends
    domain["actionEvent"] = {"bodyAsJson": json.dumps(domain["actionEvent"]["body"])}
    env["data"] = json.dumps(domain)
    event = verify_and_parse(signer.envelope_jwt(env), signer.public_key_pem)
    assert event.kind == "merged" and event.source_contact_ids == ("s-1", "s-2")
    assert event.event_time.microsecond == 564864


# -- delivery faults ------------------------------------------------------------------------


def test_duplicate_delivery(sim: WixSimulator, rec: Receiver, http: httpx.Client):
    sim.webhooks.settings.update({"duplicate_probability": 1.0})
    http.post(C, json={"info": info("a@example.com")})
    http.post(C, json={"info": info("b@example.com")})
    settle(sim)
    events = rec.events(sim.signer.public_key_pem)
    assert len(events) == 4
    assert len({e.event_id for e in events}) == 2  # receivers de-duplicate by event id


def test_out_of_order_delivery(sim: WixSimulator, rec: Receiver, http: httpx.Client):
    sim.webhooks.settings.update({"out_of_order_probability": 0.5, "hold_seconds": 0.2})
    contact = http.post(C, json={"info": info("a@example.com")}).json()["contact"]
    for revision in range(1, 11):
        http.patch(
            f"{C}/{contact['id']}", json={"revision": revision, "info": {"company": f"v{revision}"}}
        )
    settle(sim)
    revisions = [
        e.contact["revision"]
        for e in rec.events(sim.signer.public_key_pem)
        if e.contact is not None
    ]
    assert sorted(revisions) == list(range(1, 12))  # each delivered exactly once…
    assert revisions != sorted(revisions)  # …but not in order


def test_retry_until_the_receiver_answers_200_in_time(
    sim: WixSimulator, rec: Receiver, http: httpx.Client
):
    rec.script.extend([500, 1.4])  # an error, then an answer after the 1250 ms deadline
    http.post(C, json={"info": info("a@example.com")})
    settle(sim)
    events = rec.events(sim.signer.public_key_pem)
    assert len(events) == 3 and len({e.event_id for e in events}) == 1
    attempts = [(r.attempt, r.ok) for r in sim.webhooks.records]
    assert attempts == [(1, False), (2, False), (3, True)]
    assert sim.webhooks.records[1].status is None  # timed out


def test_retries_stop_after_the_schedule(sim: WixSimulator, rec: Receiver, http: httpx.Client):
    rec.script.extend([503, 503, 503, 503])
    http.post(C, json={"info": info("a@example.com")})
    settle(sim)
    assert [r.ok for r in sim.webhooks.records] == [False, False, False]
    assert len(rec.bodies) == 3


# -- concurrent delivery ----------------------------------------------------------------------


def test_contacts_are_delivered_concurrently_and_each_contact_in_order() -> None:
    """A receiver slow on one contact does not hold up the others (one delivery thread capped
    the pipeline at ~70 webhooks/s), but that contact's next event waits for its first."""
    from services.connectors.wix.simwebhooks import WebhookDispatcher

    signer = WebhookSigner()
    release_a = threading.Event()
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        event = verify_and_parse(body, signer.public_key_pem)
        with lock:
            seen.append((event.entity_id, event.kind))
        if event.entity_id == "a" and event.kind == "created":
            assert release_a.wait(5.0)
        return 200

    def change(kind: ChangeKind, entity_id: str) -> ContactChange:
        contact = {"id": entity_id, "revision": 1, "info": {"name": {"first": "Kari"}}}
        return ContactChange(kind, entity_id, contact, {"identityType": "APP"})

    dispatcher = WebhookDispatcher(
        signer, "instance", WebhookSettings(urls=["http://receiver/hook"]), post=post
    )
    try:
        dispatcher.publish(change("created", "a"))  # held by the receiver
        dispatcher.publish(change("created", "b"))
        dispatcher.publish(change("updated", "a"))  # must wait for a's first event
        deadline = time.monotonic() + 5.0
        while ("b", "created") not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        with lock:
            assert ("b", "created") in seen  # delivered while a's first is still in flight
            assert ("a", "updated") not in seen
        release_a.set()
        assert dispatcher.wait_idle(5.0)
        order_of_a = [kind for entity, kind in seen if entity == "a"]
        assert order_of_a == ["created", "updated"]
        assert len({r.event_id for r in dispatcher.records}) == 3
    finally:
        release_a.set()
        dispatcher.stop()
