"""The fleet's push route: whose a delivery is, handled here or forwarded (no I/O of its own)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from services.core.connector import Delivery, PushRejectedError
from services.core.errors import TransportError
from services.extractor.metrics import ExtractorMetrics
from services.extractor.routing import Answer, PushRouter
from services.tenants.model import Tenant, new_tenant

PATH = "/webhooks/sim"


class Source:
    """A routed push source whose body is the tenant key ('forged': not authentic)."""

    path = PATH
    tenant_setting = "wix_instance_id"

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        raise AssertionError("the router reads the tenant key only")

    def tenant_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        if body == b"forged":
            raise PushRejectedError("bad_signature")
        return body.decode() or None


def registered(name: str, instance: str, state: str = "active") -> Tenant:
    tenant = new_tenant(name, settings={"wix_instance_id": instance}, credentials_ref="", by="t")
    return tenant.model_copy(update={"state": state})


class Setup:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.loaded = True
        self.here: set[str] = set()
        self.forwarded: list[tuple[str, str, str, bytes]] = []
        self.kafka_down = False
        self.tenants = {
            "acme": registered("acme", "i-acme"),
            "paused": registered("paused", "i-paused", "paused"),
        }
        self.router = PushRouter(
            "sim",
            Source(),
            ExtractorMetrics(self.registry, by_tenant=True),
            tenants=lambda: self.tenants,
            loaded=lambda: self.loaded,
            local=self.local,
            forward=self.forward,
        )

    def local(self, tenant: str, path: str) -> object:
        if tenant not in self.here:
            return None

        def receiver(body: bytes, headers: dict[str, str]) -> Answer:
            return 200, "application/json", b'{"status": "accepted"}'

        return receiver

    def forward(
        self, tenant: str, system: str, path: str, body: bytes, headers: dict[str, str]
    ) -> None:
        if self.kafka_down:
            raise TransportError("not acknowledged")
        self.forwarded.append((tenant, system, path, body))

    def post(self, body: bytes) -> tuple[int, dict[str, str]]:
        code, _, answer = self.router(body, {})
        return code, json.loads(answer)

    def count(self, outcome: str, reason: str) -> float | None:
        return self.registry.get_sample_value(
            "tether_extractor_webhook_deliveries_total", {"outcome": outcome, "reason": reason}
        )


def test_a_delivery_is_handled_here_forwarded_or_ignored() -> None:
    s = Setup()
    assert s.post(b"i-acme") == (200, {"status": "forwarded"})
    assert s.forwarded == [("acme", "sim", PATH, b"i-acme")]
    s.here.add("acme")
    assert s.post(b"i-acme") == (200, {"status": "accepted"})
    assert len(s.forwarded) == 1
    assert s.post(b"i-unknown") == (200, {"status": "ignored"})
    assert s.post(b"") == (200, {"status": "ignored"})
    assert s.post(b"i-paused") == (200, {"status": "ignored"})
    assert (s.count("forwarded", "owner_elsewhere"), s.count("ignored", "other_instance")) == (
        1.0,
        2.0,
    )
    assert s.count("ignored", "paused") == 1.0


def test_not_answered_200_unless_authentic_and_acknowledged() -> None:
    s = Setup()
    assert s.post(b"forged") == (401, {"error": "bad_signature"})
    s.kafka_down = True
    assert s.post(b"i-acme") == (503, {"error": "unavailable"})
    s.loaded = False
    assert s.post(b"i-acme") == (503, {"error": "starting"})
    assert s.forwarded == []
    assert s.count("rejected", "bad_signature") == 1.0
