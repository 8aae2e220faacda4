"""Webhooks for any tenant reach any replica (real Kafka, a simulated Wix site per tenant).

Two replicas share two tenants whose sites sign with one app key; each tenant's site delivers its
webhooks to the replica that does NOT run the tenant: that replica forwards the delivery on the
webhooks topic, answers 200 once Kafka acknowledged it, and the owner emits the change (origin
WEBHOOK: polling is slowed down so that only the webhook can bring it). A delivery for an
installation no tenant has is answered as for another installation.
"""

from __future__ import annotations

import json

import httpx

from services.connectors.wix.simstore import ContactChange
from services.connectors.wix.simwebhooks import WebhookSigner, envelope
from tests.extractor.fleet_support import (
    Fleets,
    emitted,
    signing_key,
    tenant_ids,
    wait_until,
)


def test_a_webhook_delivered_to_a_replica_that_does_not_run_its_tenant(fleets: Fleets) -> None:
    key = signing_key()
    tenants = tenant_ids(2)
    for tenant in tenants:
        fleets.add_tenant(tenant, contacts=2, signing_key=key)
    webhooks = {
        "public": True,
        "wix_webhooks_enabled": True,
        "wix_webhook_public_key": WebhookSigner(key).public_key_pem,
        "wix_poll_interval_seconds": 3600.0,  # the first snapshot, then webhooks only
    }
    replicas = [fleets.start_replica(name, **webhooks) for name in ("replica-a", "replica-b")]
    wait_until(
        lambda: all(set(fleets.versions(t)) <= set(emitted(fleets.events(t))) for t in tenants),
        "the snapshots on Kafka",
    )

    wait_until(fleets.settled, "the tenants' partitions shared by both replicas")
    for tenant in tenants:
        owner = next(r for r in replicas if tenant in r.tenants())
        other = next(r for r in replicas if r is not owner)
        wait_until(lambda o=other, t=tenant: o.fleet.directory.get(t) is not None, "directory")
        site = fleets.sites[tenant]
        site.wix.webhooks.settings.urls = [other.webhook_url]
        contact = site.admin.contacts()[0]
        site.admin.edit(contact["id"], {"name": {"first": "Pushed"}})
        assert site.wix.webhooks.wait_idle()
        assert [r.status for r in site.wix.webhooks.records] == [200]

        wait_until(
            lambda t=tenant, c=contact: (c["id"], "2") in emitted(fleets.events(t)),
            "the pushed edit on Kafka",
        )
        pushed = [e for e in fleets.events(tenant) if e["source_version"] == "2"]
        assert [(e["record_id"], e["origin"]) for e in pushed] == [(contact["id"], "WEBHOOK")]
    assert sum(r.deliveries("forwarded", "owner_elsewhere") for r in replicas) == len(tenants)

    # An authentic delivery for an installation no tenant has: ignored, as for another one.
    site = next(iter(fleets.sites.values()))
    contact = site.admin.contacts()[0]
    change = ContactChange(kind="updated", entity_id=contact["id"], entity=contact, actor={})
    env, _event = envelope(change, "inst-of-nobody")
    answer = httpx.post(replicas[0].webhook_url, content=site.wix.signer.envelope_jwt(env))
    assert (answer.status_code, json.loads(answer.content)) == (200, {"status": "ignored"})
    assert replicas[0].deliveries("ignored", "other_instance") == 1
