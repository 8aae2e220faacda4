"""Simulator only: signs contact events as Wix does and delivers them from a background thread.

What it is for: ``WixSimulator`` hands every ``ContactChange`` to ``WebhookDispatcher.publish``;
the dispatcher builds the domain event (reference §7.3, object form by default), wraps it in the
envelope, signs the JWT (RS256, header ``kid``, claims ``{data, iat, exp}``) and POSTs it to every
callback URL with ``Content-Type: text/plain``.

Delivery faults, as Wix documents them (§7.4): a delivery that is not answered 200 within
``timeout_seconds`` (1.25 s) is retried after ``retry_delays``; ``duplicate_probability`` sends an
event twice; ``out_of_order_probability`` holds an event back for ``hold_seconds`` so later ones
overtake it. A resent event carries the data of the original event (same JWT).

Delivery runs on ``delivery_workers`` threads (Wix delivers concurrently; one thread capped the
whole pipeline at ~70 webhooks/s, each waiting for the receiver's Kafka acknowledgement). The
events of one contact are still delivered one at a time, in the order they are due, so only the
realism options above reorder a contact's events. The JWT is signed by the worker on the first
attempt (an RSA signature costs ~1 ms; signing in ``publish`` held up the API request that made
the change) and reused by every retry and duplicate.

Production code must not import this module. Imports: standard library, PyJWT,
cryptography, ``webhooks`` (event type names) and ``simstore`` (the change type).
"""

from __future__ import annotations

import heapq
import http.client
import json
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.connectors.wix.simstore import ContactChange
from services.connectors.wix.webhooks import ENTITY_FQDN, EVENT_TYPES

log = logging.getLogger(__name__)

WireVariant = Literal["object", "json_string"]


@dataclass
class WebhookSettings:
    """Delivery settings; changeable at run time (admin API) — the worker reads them per event."""

    urls: list[str] = field(default_factory=list)
    enabled: bool = True
    duplicate_probability: float = 0.0
    out_of_order_probability: float = 0.0
    hold_seconds: float = 0.3
    timeout_seconds: float = 1.25
    retry_delays: list[float] = field(default_factory=lambda: [0.5, 2.0, 5.0])
    delivery_workers: int = 8  # read when the workers start
    wire_variant: WireVariant = "object"
    jwt_ttl_seconds: int = 300_000  # exp - iat of the JWT sample in Wix's docs
    content_type: str = "text/plain; charset=utf-8"

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown webhook setting {key!r}")
            setattr(self, key, list(value) if isinstance(value, list) else value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebhookSigner:
    """An RSA key pair (generated unless a PEM is given) signing webhook JWTs."""

    def __init__(self, private_key_pem: str | None = None, kid: str | None = None) -> None:
        if private_key_pem is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            loaded = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError("webhook signing key must be RSA")
            key = loaded
        self._key = key
        self.kid = kid or uuid.uuid4().hex[:8]
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        self.public_key_pem = (
            key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode()
        )

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def envelope_jwt(
        self, envelope: dict[str, Any], *, iat: int | None = None, ttl_seconds: int = 300_000
    ) -> str:
        issued = int(time.time()) if iat is None else iat
        return self.sign(
            {
                "data": json.dumps(envelope, separators=(",", ":")),
                "iat": issued,
                "exp": issued + ttl_seconds,
            }
        )


def domain_event(change: ContactChange, variant: WireVariant = "object") -> dict[str, Any]:
    """The decoded ``envelope.data`` for one change (reference §7.3)."""
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "entityFqdn": ENTITY_FQDN,
        "slug": change.kind,
        "entityId": change.entity_id,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "triggeredByAnonymizeRequest": False,
    }
    if change.originated_from:
        event["originatedFrom"] = change.originated_from
    stringify = variant == "json_string"

    def wrap(name: str, value: dict[str, Any]) -> dict[str, Any]:
        return {name + "AsJson": json.dumps(value)} if stringify else {name: value}

    if change.kind == "created":
        event["createdEvent"] = wrap("entity", change.entity or {})
    elif change.kind == "updated":
        event["updatedEvent"] = wrap("currentEntity", change.entity or {})
    elif change.kind == "deleted":
        event["deletedEvent"] = {}
    else:
        event["actionEvent"] = wrap(
            "body",
            {
                "targetContactId": change.entity_id,
                "sourceContactIds": list(change.source_contact_ids),
                "targetContact": change.entity or {},
            },
        )
    return event


def envelope(
    change: ContactChange, instance_id: str, variant: WireVariant = "object"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(envelope, domain event)`` for one change."""
    event = domain_event(change, variant)
    return (
        {
            "eventType": EVENT_TYPES[change.kind],
            "instanceId": instance_id,
            "data": json.dumps(event, separators=(",", ":")),
            "identity": json.dumps(dict(change.actor), separators=(",", ":")),
        },
        event,
    )


class SignedEvent:
    """One event's envelope, signed once (by the first worker that delivers it)."""

    def __init__(self, signer: WebhookSigner, envelope: dict[str, Any], ttl_seconds: int) -> None:
        self._signer = signer
        self._envelope = envelope
        self._ttl_seconds = ttl_seconds
        self._token: str | None = None
        self._lock = threading.Lock()

    @property
    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._signer.envelope_jwt(
                    self._envelope, ttl_seconds=self._ttl_seconds
                )
            return self._token


@dataclass
class Delivery:
    url: str
    signed: SignedEvent
    event_id: str
    kind: str
    entity_id: str
    attempt: int = 1
    copy: int = 1


@dataclass
class DeliveryRecord:
    """One delivery attempt, as the admin API reports it."""

    event_id: str
    kind: str
    entity_id: str
    url: str
    attempt: int
    copy: int
    status: int | None
    ok: bool
    seconds: float
    at: float


class WebhookDispatcher:
    """Queue + ``delivery_workers`` threads delivering signed events with the configured faults;
    one contact's events one at a time."""

    def __init__(
        self,
        signer: WebhookSigner,
        instance_id: str,
        settings: WebhookSettings | None = None,
        *,
        seed: int = 7,
        post: Callable[[str, bytes, dict[str, str], float], int] | None = None,
    ) -> None:
        self.signer = signer
        self.instance_id = instance_id
        self.settings = settings or WebhookSettings()
        self.records: list[DeliveryRecord] = []
        self.published = 0
        self._random = random.Random(seed)
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._busy: set[str] = set()  # entity ids with a delivery in flight
        self._local = threading.local()  # each worker's kept-alive connections
        self._connections: list[http.client.HTTPConnection] = []
        self._post = post or self._http_post

    # -- producer side -----------------------------------------------------------------------

    def publish(self, change: ContactChange) -> None:
        settings = self.settings
        if not settings.enabled or not settings.urls:
            return
        env, event = envelope(change, self.instance_id, settings.wire_variant)
        signed = SignedEvent(self.signer, env, settings.jwt_ttl_seconds)
        now = time.monotonic()
        with self._cond:
            self.published += 1
            for url in list(settings.urls):
                base = Delivery(url, signed, event["id"], change.kind, change.entity_id)
                due = now
                if self._random.random() < settings.out_of_order_probability:
                    due = now + settings.hold_seconds
                self._push(due, base)
                if self._random.random() < settings.duplicate_probability:
                    dup = Delivery(url, signed, base.event_id, base.kind, base.entity_id, copy=2)
                    self._push(due + self._random.uniform(0.0, 0.05), dup)
            self._ensure_worker()
            self._cond.notify_all()

    def _push(self, due: float, delivery: Delivery) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, delivery))

    def _ensure_worker(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        if not self._threads:
            self._stopping = False
        for i in range(len(self._threads), max(1, self.settings.delivery_workers)):
            thread = threading.Thread(target=self._run, name=f"wix-sim-webhooks-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next_ready(self, now: float) -> Delivery | None:
        """The earliest due delivery whose contact has none in flight (caller holds the lock)."""
        passed_over: list[tuple[float, int, Delivery]] = []
        found: Delivery | None = None
        while self._heap and self._heap[0][0] <= now:
            item = heapq.heappop(self._heap)
            if item[2].entity_id in self._busy:
                passed_over.append(item)
                continue
            found = item[2]
            break
        for item in passed_over:
            heapq.heappush(self._heap, item)
        return found

    # -- consumer side -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                delivery: Delivery | None = None
                while not self._stopping:
                    now = time.monotonic()
                    delivery = self._next_ready(now)
                    if delivery is not None:
                        break
                    # nothing due, or only contacts busy on another worker (it notifies when done)
                    future = [due for due, _, _ in self._heap if due > now]
                    self._cond.wait(timeout=min(future) - now if future else None)
                if self._stopping or delivery is None:
                    return
                self._busy.add(delivery.entity_id)
                self._in_flight += 1
            try:
                self._deliver(delivery)
            finally:
                with self._cond:
                    self._busy.discard(delivery.entity_id)
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        settings = self.settings
        started = time.monotonic()
        status: int | None
        try:
            status = self._post(
                delivery.url,
                delivery.signed.token.encode(),
                {"Content-Type": settings.content_type},
                settings.timeout_seconds,
            )
        except (http.client.HTTPException, OSError) as exc:
            log.debug("webhook delivery failed: %s", type(exc).__name__)
            status = None
        seconds = time.monotonic() - started
        ok = status == 200 and seconds <= settings.timeout_seconds
        with self._cond:
            self.records.append(
                DeliveryRecord(
                    delivery.event_id,
                    delivery.kind,
                    delivery.entity_id,
                    delivery.url,
                    delivery.attempt,
                    delivery.copy,
                    status,
                    ok,
                    round(seconds, 4),
                    time.time(),
                )
            )
            if not ok and delivery.attempt <= len(settings.retry_delays):
                delay = settings.retry_delays[delivery.attempt - 1]
                delivery.attempt += 1
                self._push(time.monotonic() + delay, delivery)

    def _http_post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """One POST on this worker's kept-alive connection to the URL's host. The standard
        library's ``http.client``: an httpx request cost the simulator more CPU than signing
        and everything else of a delivery together (measured with py-spy in bench/e2e.py). A
        kept-alive connection the receiver closed meanwhile is replaced once."""
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connections: dict[tuple[str, str], http.client.HTTPConnection] = (
            self._local.__dict__.setdefault("connections", {})
        )
        key = (parts.scheme, parts.netloc)
        for attempt in (1, 2):
            connection = connections.get(key)
            reused = connection is not None
            if connection is None:
                factory = (
                    http.client.HTTPSConnection
                    if parts.scheme == "https"
                    else http.client.HTTPConnection
                )
                connection = connections[key] = factory(parts.netloc, timeout=timeout)
                with self._cond:
                    self._connections.append(connection)
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.will_close:
                    connection.close()
                return response.status
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                connections.pop(key, None)
                if not reused or attempt == 2:
                    raise
            except BaseException:
                connection.close()
                connections.pop(key, None)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- control -----------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued, held, retrying or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.05))
        return True

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self.records.clear()
            self.published = 0

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        with self._cond:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
