"""The Wix webhook receiver on the extractor's HTTP port, fed by the Wix simulator."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.receiver import PATH
from services.connectors.wix.simstore import ContactChange
from services.connectors.wix.simwebhooks import WebhookSigner, envelope
from services.core.budget import ApiBudget
from services.extractor.service import Extractor
from tests.extractor.support import Harness, record_of


def webhook_url(extractor: Extractor) -> str:
    return f"http://127.0.0.1:{extractor.ctx.runtime.public.port}{PATH}"


def start(h: Harness) -> Extractor:
    extractor = h.extractor(http=True, wix_webhook_public_key=h.wix.signer.public_key_pem)
    h.wix.webhooks.settings.urls = [webhook_url(extractor)]
    return extractor


def deliveries(h: Harness, event_kind: str) -> list[int | None]:
    return [r.status for r in h.wix.webhooks.records if r.kind == event_kind]


def test_a_verified_delivery_is_one_event_acknowledged_before_200(harness: Harness) -> None:
    contact = harness.wix_admin.seed([{"info": {"name": {"first": "Åse", "last": "Sæther"}}}])[0]
    extractor = start(harness)
    extractor.poll_all()

    harness.wix_admin.edit(contact["id"], {"name": {"first": "Åse Marie"}})
    assert harness.wix.webhooks.wait_idle()
    assert deliveries(harness, "updated") == [200]
    events = harness.events("wix")
    webhook = [e for e in events if e["origin"] == "WEBHOOK"]
    assert len(webhook) == 1
    assert webhook[0]["operation"] == "UPSERT" and webhook[0]["source_version"] == "2"
    assert record_of(webhook[0])["info"]["name"]["first"] == "Åse Marie"  # type: ignore[index]

    extractor.poll_all()  # the poller sees revision 2 too: already known, not emitted again
    assert len(harness.events("wix")) == len(events) == 2

    # The older, stringified body variant is accepted as well.
    harness.wix.webhooks.settings.wire_variant = "json_string"
    harness.wix_admin.edit(contact["id"], {"name": {"last": "Østby"}})
    assert harness.wix.webhooks.wait_idle()
    assert [e["source_version"] for e in harness.events("wix")] == ["1", "2", "3"]
    accepted = harness.metric(
        extractor,
        "tether_extractor_webhook_deliveries_total",
        {"outcome": "accepted", "reason": "emitted"},
    )
    assert accepted == 2


def test_forged_and_duplicate_deliveries(harness: Harness) -> None:
    contact = harness.wix_admin.seed([{"info": {"name": {"first": "Bjørn"}}}])[0]
    extractor = start(harness)

    # A well-formed event signed with another key: 401, counted, nothing produced.
    forger = WebhookSigner()
    change = ContactChange(
        kind="updated", entity_id=contact["id"], entity={**contact, "revision": 9}, actor={}
    )
    env, _event = envelope(change, harness.wix.instance_id)
    forged = forger.envelope_jwt(env)
    answer = httpx.post(webhook_url(extractor), content=forged, timeout=5)
    assert answer.status_code == 401
    expired = harness.wix.signer.envelope_jwt(env, iat=1_600_000_000, ttl_seconds=60)
    assert httpx.post(webhook_url(extractor), content=expired, timeout=5).status_code == 401
    assert harness.events("wix") == []
    assert (
        harness.metric(
            extractor,
            "tether_extractor_webhook_deliveries_total",
            {"outcome": "rejected", "reason": "bad_signature"},
        )
        == 1
    )

    # Every event delivered twice: one change event each.
    harness.wix.webhooks.settings.duplicate_probability = 1.0
    harness.wix_admin.edit(contact["id"], {"name": {"first": "Bjørnar"}})
    harness.wix_admin.edit(contact["id"], {"name": {"first": "Bjørnulf"}})
    assert harness.wix.webhooks.wait_idle()
    assert deliveries(harness, "updated") == [200, 200, 200, 200]
    assert [e["source_version"] for e in harness.events("wix")] == ["2", "3"]
    assert (
        harness.metric(
            extractor,
            "tether_extractor_webhook_deliveries_total",
            {"outcome": "duplicate", "reason": "updated"},
        )
        == 2
    )


def test_merge_is_one_merge_event_and_deletes_are_events(harness: Harness) -> None:
    target, source, other = harness.wix_admin.seed(
        [
            {"info": {"name": {"first": "Kari"}, "emails": {"items": [{"email": "k@x.no"}]}}},
            {"info": {"name": {"first": "Kari N."}, "emails": {"items": [{"email": "kn@x.no"}]}}},
            {"info": {"name": {"first": "Ola"}}},
        ]
    )
    extractor = start(harness)
    extractor.poll_all()
    snapshot = len(harness.events("wix"))

    server: ServerThread = harness.wix_server
    with WixClient(
        ApiKeyAuth(api_key=SecretStr(harness.wix.api_key), site_id=harness.wix.site_id),
        ApiBudget("test", 0),
        base_url=server.url,
    ) as client:
        client.merge(target["id"], target["revision"], [source["id"]])
    harness.wix_admin.delete(other["id"])
    assert harness.wix.webhooks.wait_idle()

    new = harness.events("wix")[snapshot:]
    summary = sorted((e["record_id"], e["operation"], tuple(e["merged_ids"])) for e in new)
    assert summary == sorted(
        [
            (target["id"], "UPSERT", ()),  # the target changed (revision 2)
            (target["id"], "MERGE", (source["id"],)),
            (other["id"], "DELETE", ()),
        ]
    )  # no DELETE for the merged-away source: the MERGE implies it
    merge = next(e for e in new if e["operation"] == "MERGE")
    assert merge["source_version"] == "2" and record_of(merge)["id"] == target["id"]  # type: ignore[index]

    extractor.reconcile_all()  # the source is gone, but known as merged: nothing to add
    assert len(harness.events("wix")) == snapshot + 3
