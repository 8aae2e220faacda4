"""The push receiver: a system's webhook route on the extractor's public port (9180).

The system's ``PushSource`` (its connector package's; the route is its ``path``) authenticates a
delivery and says what changed; this module does the rest. Per delivery, in this order:

1. ``source.receive``: forged, expired or malformed -> **401**, counted, nothing emitted; an
   authentic delivery that is not for this deployment (another installation) -> 200, ignored;
2. claim the event id (``dedup``): an id already handled -> **200**, nothing emitted;
3. turn it into change events (``ChangeMaker.pushed``: UPSERT / DELETE / MERGE; a delivery
   implied by another -> none; a version the known set already has -> none) — a record that
   cannot be read becomes a dead letter with the raw body;
4. produce and **wait for Kafka's acknowledgement** (``webhook_ack_timeout_seconds``, ~1 s, well
   inside the sender's deadline) -> **200**; no acknowledgement in time -> **503**, the id is
   released and the sender retries: no change is lost (a late ack + the retry give two events
   with one event id).

Until the extractor finished starting (cursors and known set loaded) it answers 503. A body over
``webhook_max_body_bytes`` (default 1 MiB) never reaches the receiver: the public HTTP server
(``services.core.public_http``, uvicorn) answers **413** without reading it (``Content-Length``
checked first, a chunked body counted while it streams) and counts it as ``rejected``/
``too_large``.

Imports: the connector interface and the extractor's own modules.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from services.core.connector import PushRejectedError, PushSource
from services.core.errors import ConfigurationError, ContractError, TransportError
from services.extractor.changes import ChangeMaker
from services.extractor.dedup import Claim, EventDeduplicator
from services.extractor.emitter import Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics

log = logging.getLogger("tether.extractor.webhook")

JSON = "application/json"


Answer = tuple[int, str, bytes]
T = TypeVar("T")


def answer(code: int, **body: object) -> Answer:
    """An HTTP answer of a push route: status, content type, JSON body."""
    return code, JSON, json.dumps(body).encode()


def verified(
    read: Callable[[], T], count: Callable[[str, str], None], path: str
) -> tuple[T | None, Answer | None]:
    """``read()`` (a push source authenticating and reading a delivery), or the answer for a
    delivery it refuses: 401 for a forged or malformed one, 500 when our verification key is
    unusable (an operator must fix it; the sender retries meanwhile). Counted and logged here,
    for the receiver and the router alike."""
    try:
        return read(), None
    except PushRejectedError as exc:
        count("rejected", exc.reason)
        log.warning("webhook rejected", extra={"fields": {"path": path, "reason": exc.reason}})
        return None, answer(401, error=exc.reason)
    except ConfigurationError:
        count("error", "configuration")
        log.exception("webhook verification key is unusable (%s)", path)
        return None, answer(500, error="configuration")


class PushReceiver:
    def __init__(
        self,
        source: PushSource,
        makers: Mapping[str, ChangeMaker],
        emitter: Emitter,
        known: Mapping[str, KnownSet],
        dedup: EventDeduplicator,
        metrics: ExtractorMetrics,
        *,
        ack_timeout: float,
        ready: Callable[[], bool],
    ) -> None:
        """``makers`` and ``known``: per resource of the source's system."""
        self.source = source
        self.makers = makers
        self.emitter = emitter
        self.known = known
        self.dedup = dedup
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.ready = ready

    @property
    def path(self) -> str:
        return self.source.path

    def __call__(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        received = time.monotonic()
        try:
            return self._handle(body, headers, received)
        finally:
            self.metrics.webhook_seconds.labels().observe(time.monotonic() - received)

    def count(self, outcome: str, reason: str) -> None:
        self.metrics.webhooks.labels(outcome, reason).inc()

    def _handle(
        self, body: bytes, headers: dict[str, str], received: float
    ) -> tuple[int, str, bytes]:
        if not self.ready():
            self.count("unavailable", "starting")
            return answer(503, error="starting")
        # 1. authenticate and read
        delivery, refused = verified(
            lambda: self.source.receive(body, headers), self.count, self.path
        )
        if refused is not None:
            return refused
        assert delivery is not None  # read() returned
        if delivery.ignored is not None:
            self.count("ignored", delivery.ignored)
            return answer(200, status="ignored")
        # 2. de-duplicate by event id
        if self.dedup.claim(delivery.event_id, wait_seconds=self.ack_timeout / 2) is Claim.DONE:
            self.count("duplicate", delivery.kind)
            return answer(200, status="duplicate")
        maker = self.makers[delivery.resource]
        try:
            # 3. the change events (or a dead letter)
            batch = self.emitter.batch()
            reason = "emitted"
            try:
                changes = [maker.pushed(change) for change in delivery.changes]
            except ContractError as exc:
                batch.park(body, exc, source=maker.source)
                changes = []
                reason = "dead_letter"
            if not changes and reason == "emitted":
                reason = "implied"
            known = self.known[delivery.resource]
            fresh = [c for c in changes if not known.covers(c)]
            if changes and not fresh:
                reason = "known"
            for change in fresh:
                batch.add(change)
            # 4. acknowledged by Kafka before 200
            remaining = self.ack_timeout - (time.monotonic() - received)
            batch.wait(max(0.05, remaining))
        except TransportError:
            self.dedup.release(delivery.event_id)
            self.count("unavailable", "kafka")
            log.warning("webhook not acknowledged by Kafka in time: answering 503")
            return answer(503, error="unavailable")
        except BaseException:
            self.dedup.release(delivery.event_id)
            raise
        self.dedup.done(delivery.event_id)
        self.count("accepted", reason)
        return answer(200, status="accepted")
