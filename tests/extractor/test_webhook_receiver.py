"""The webhook receiver's decisions with a fake producer side: 401, 503, duplicates, merges."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from services.connectors.wix.receiver import WixWebhooks
from services.connectors.wix.simstore import ChangeKind, ContactChange
from services.connectors.wix.simwebhooks import WebhookSigner, envelope
from services.connectors.wix.stream import WixContacts
from services.core.errors import TransportError
from services.extractor.changes import Change, ChangeMaker
from services.extractor.dedup import Claim, EventDeduplicator
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.webhook import PushReceiver

SIGNER = WebhookSigner()
CONTACT = {
    "id": "c-1",
    "revision": 2,
    "createdDate": "2025-01-01T00:00:00.000Z",
    "updatedDate": "2025-11-27T08:00:00.000Z",
    "info": {"name": {"first": "Ola"}},
}


@dataclass
class FakeBatch:
    owner: FakeEmitter
    added: list[Change] = field(default_factory=list)
    parked: list[bytes] = field(default_factory=list)

    def add(self, change: Change) -> None:
        self.added.append(change)

    def park(
        self, payload: bytes, error: BaseException, key: bytes | None = None, *, source: str
    ) -> None:
        assert source == "wix/contacts"
        self.parked.append(payload)

    def __len__(self) -> int:
        return len(self.added)

    def wait(self, timeout: float) -> None:
        if self.owner.kafka_down:
            raise TransportError("no ack")
        self.owner.acked.extend(self.added)
        self.owner.dead.extend(self.parked)
        for change in self.added:
            self.owner.known.apply(change)


@dataclass
class FakeEmitter:
    known: KnownSet
    kafka_down: bool = False
    acked: list[Change] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)

    def batch(self) -> FakeBatch:
        return FakeBatch(self)


def body(kind: ChangeKind, entity: dict[str, Any] | None = CONTACT, **extra: Any) -> bytes:
    change = ContactChange(kind=kind, entity_id="c-1", entity=entity, actor={}, **extra)
    env, _ = envelope(change, "instance")
    return SIGNER.envelope_jwt(env).encode()


def receiver(emitter: FakeEmitter, ready: bool = True, instance: str | None = None) -> PushReceiver:
    return PushReceiver(
        WixWebhooks(SIGNER.public_key_pem, instance_id=instance),
        {"contacts": ChangeMaker("wix", "contacts", WixContacts())},
        emitter,  # type: ignore[arg-type]
        {"contacts": emitter.known},
        EventDeduplicator(100),
        ExtractorMetrics(CollectorRegistry()),
        ack_timeout=1.0,
        ready=lambda: ready,
    )


def status(answer: tuple[int, str, bytes]) -> tuple[int, dict[str, Any]]:
    return answer[0], json.loads(answer[2])


def test_not_ready_forged_and_unacknowledged_deliveries_are_not_200() -> None:
    emitter = FakeEmitter(KnownSet("wix", "contacts"))
    delivery = body("updated")
    assert status(receiver(emitter, ready=False)(delivery, {}))[0] == 503
    hook = receiver(emitter)
    env, _ = envelope(ContactChange("updated", "c-1", CONTACT, {}), "instance")
    forged = WebhookSigner().envelope_jwt(env).encode()  # signed with another key
    assert status(hook(forged, {})) == (401, {"error": "bad_signature"})
    assert status(hook(b"not a jwt", {})) == (401, {"error": "malformed"})

    emitter.kafka_down = True
    assert status(hook(delivery, {}))[0] == 503  # Wix will retry
    assert emitter.acked == []
    emitter.kafka_down = False
    assert status(hook(delivery, {}))[0] == 200  # the retry is handled, not a "duplicate"
    assert [c.source_version for c in emitter.acked] == ["2"]
    assert status(hook(delivery, {})) == (200, {"status": "duplicate"})
    assert len(emitter.acked) == 1


def test_known_versions_merge_implied_deletes_and_malformed_contacts() -> None:
    emitter = FakeEmitter(KnownSet("wix", "contacts"))
    hook = receiver(emitter)
    assert status(hook(body("updated"), {}))[0] == 200
    older = body("updated", {**CONTACT, "revision": 1})  # out of order: already superseded
    assert status(hook(older, {}))[0] == 200
    implied = body("deleted", None, originated_from="merge")
    assert status(hook(implied, {}))[0] == 200
    assert [c.source_version for c in emitter.acked] == ["2"]

    bad = body("updated", {**CONTACT, "revision": 3, "info": {"name": {"first": 42}}})
    assert status(hook(bad, {}))[0] == 200  # parked, acknowledged: Wix must not retry it
    assert emitter.dead == [bad]


def test_a_copy_arriving_while_the_first_is_in_flight_waits_for_it() -> None:
    dedup = EventDeduplicator(capacity=2)
    assert dedup.claim("a") is Claim.NEW
    result: list[Claim] = []
    waiter = threading.Thread(target=lambda: result.append(dedup.claim("a", wait_seconds=5)))
    waiter.start()
    dedup.done("a")
    waiter.join()
    assert result == [Claim.DONE]
    assert dedup.claim("b") is Claim.NEW
    dedup.release("b")  # failed: the retry handles it again
    assert dedup.claim("b") is Claim.NEW
    dedup.done("b")
    dedup.claim("c")
    dedup.done("c")
    assert len(dedup) == 2 and dedup.claim("a", wait_seconds=0) is Claim.NEW  # forgotten


def test_events_of_another_app_instance_are_ignored() -> None:
    emitter = FakeEmitter(KnownSet("wix", "contacts"))
    assert status(receiver(emitter, instance="other")(body("updated"), {})) == (
        200,
        {"status": "ignored"},
    )
    assert emitter.acked == []
    assert status(receiver(emitter, instance="instance")(body("updated"), {}))[0] == 200
    assert len(emitter.acked) == 1
