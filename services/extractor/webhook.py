"""The Wix webhook receiver: ``POST /webhooks/wix`` on the extractor's public port (9180).

Per delivery, in this order:

1. verify the JWT with the configured public key and parse the event (``verify_and_parse``, both
   body variants) — forged, expired or malformed -> **401**, counted, nothing emitted; an event of
   another app instance than ``TETHER_WIX_INSTANCE_ID`` (when set) -> 200, ignored;
2. claim the event id (``dedup``): an id already handled -> **200**, nothing emitted;
3. turn it into change events (``changes.webhook_changes``: UPSERT / DELETE / MERGE; a source's
   merge-implied delete -> none; a version the known set already has -> none) — a malformed
   contact becomes a dead letter with the raw body;
4. produce and **wait for Kafka's acknowledgement** (``webhook_ack_timeout_seconds``, ~1 s, well
   inside Wix's 1250 ms) -> **200**; no acknowledgement in time -> **503**, the id is released
   and Wix retries: no change is lost (a late ack + the retry give two events with one event id).

Until the extractor finished starting (cursors and known set loaded) it answers 503. A body over
``webhook_max_body_bytes`` (default 1 MiB; Wix sends small JWTs) never reaches the receiver: the
public HTTP server (``services.core.public_http``, uvicorn) answers **413** without reading it
(``Content-Length`` checked first, a chunked body counted while it streams) and counts it as
``rejected``/``too_large``.

Imports: the Wix webhook parser and the extractor's own modules.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from services.connectors.wix.webhooks import WebhookRejectedError, verify_and_parse
from services.core.errors import ConfigurationError, ContractError, TransportError
from services.extractor.changes import webhook_changes
from services.extractor.dedup import Claim, EventDeduplicator
from services.extractor.emitter import Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics

log = logging.getLogger("tether.extractor.webhook")

PATH = "/webhooks/wix"
JSON = "application/json"


def _answer(code: int, **body: object) -> tuple[int, str, bytes]:
    return code, JSON, json.dumps(body).encode()


class WixWebhookReceiver:
    def __init__(
        self,
        public_key_pem: str,
        emitter: Emitter,
        known: KnownSet,
        dedup: EventDeduplicator,
        metrics: ExtractorMetrics,
        *,
        ack_timeout: float,
        ready: Callable[[], bool],
        instance_id: str | None = None,
    ) -> None:
        self.public_key_pem = public_key_pem
        self.emitter = emitter
        self.known = known
        self.dedup = dedup
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.ready = ready
        self.instance_id = instance_id or None

    def __call__(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        received = time.monotonic()
        try:
            return self._handle(body, received)
        finally:
            self.metrics.webhook_seconds.observe(time.monotonic() - received)

    def count(self, outcome: str, reason: str) -> None:
        self.metrics.webhooks.labels(outcome, reason).inc()

    def _handle(self, body: bytes, received: float) -> tuple[int, str, bytes]:
        if not self.ready():
            self.count("unavailable", "starting")
            return _answer(503, error="starting")
        # 1. authenticate and parse
        try:
            event = verify_and_parse(body, self.public_key_pem)
        except WebhookRejectedError as exc:
            self.count("rejected", exc.reason)
            log.warning("wix webhook rejected", extra={"fields": {"reason": exc.reason}})
            return _answer(401, error=exc.reason)
        except ConfigurationError:
            self.count("error", "configuration")
            log.exception("wix webhook public key is unusable")
            return _answer(500, error="configuration")
        if self.instance_id and event.instance_id and event.instance_id != self.instance_id:
            # Authentic, but for another installation of the app: not this tenant's change.
            self.count("ignored", "other_instance")
            return _answer(200, status="ignored")
        # 2. de-duplicate by event id
        if self.dedup.claim(event.event_id, wait_seconds=self.ack_timeout / 2) is Claim.DONE:
            self.count("duplicate", event.kind)
            return _answer(200, status="duplicate")
        try:
            # 3. the change events (or a dead letter)
            batch = self.emitter.batch()
            reason = "emitted"
            try:
                changes = webhook_changes(event)
            except ContractError as exc:
                batch.park(body, exc, source="wix/contacts")
                changes = []
                reason = "dead_letter"
            if not changes and reason == "emitted":
                reason = "implied"
            fresh = [c for c in changes if not self.known.covers(c)]
            if changes and not fresh:
                reason = "known"
            for change in fresh:
                batch.add(change)
            # 4. acknowledged by Kafka before 200
            remaining = self.ack_timeout - (time.monotonic() - received)
            batch.wait(max(0.05, remaining))
        except TransportError:
            self.dedup.release(event.event_id)
            self.count("unavailable", "kafka")
            log.warning("wix webhook not acknowledged by Kafka in time: answering 503")
            return _answer(503, error="unavailable")
        except BaseException:
            self.dedup.release(event.event_id)
            raise
        self.dedup.done(event.event_id)
        self.count("accepted", reason)
        return _answer(200, status="accepted")
