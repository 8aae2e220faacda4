"""Producing change events and dead letters, and waiting until Kafka acknowledged them.

A :class:`Batch` collects the sends of one unit of work (a poll page, a webhook delivery, a
reconciliation) and :meth:`Batch.wait` blocks until every one is acknowledged (``acks=all``,
idempotent producer) or raises :class:`TransportError` — only then does the caller move a cursor,
answer a webhook 200 or trust the known set, which :meth:`wait` updates with the acknowledged
changes. Events are counted by system/resource/operation/origin once acknowledged. With tracing
on, each change event is sent inside a span of its own (``extractor.emit``, the root of the
change's trace) and carries the span's ``traceparent`` in its Kafka headers.

Dead letters of API records have no topic position, so each gets a deterministic identity,
:func:`dead_letter_identity` (its source ``system/resource`` and a hash of its bytes, which
include the record's id and version): the same invalid record read again — the next
reconciliation pass, the poll overlap — is recognised. Within a process a repeat whose dead letter
Kafka already acknowledged is counted (``tether_extractor_dead_letter_repeats_total``) and not
parked again; after a restart it is parked once more with the same ``dead_letter_id``.

Imports: kafka-python errors and the core/extractor modules.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka.errors import KafkaError

from services.core.deadletters import DeadLetterWriter
from services.core.errors import TransportError
from services.core.service import ServiceContext
from services.core.tracing import kafka_headers
from services.extractor.changes import Change
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics

log = logging.getLogger("tether.extractor.emitter")

PARKED_MEMORY = 10_000
"""Dead-letter identities an extractor remembers (oldest forgotten: at worst parked again)."""


def dead_letter_identity(source: str, payload: bytes) -> str:
    """The identity of a dead letter without a topic position: ``source`` (``system/resource``)
    and the SHA-256 of the parked bytes (a record's id and version are part of them)."""
    return f"{source}/{hashlib.sha256(payload).hexdigest()}"


class Emitter:
    def __init__(
        self,
        ctx: ServiceContext,
        metrics: ExtractorMetrics,
        known: dict[tuple[str, str], KnownSet],
        *,
        tenant: str | None = None,
        dead_letters: DeadLetterWriter | None = None,
    ) -> None:
        """``tenant`` (default: the service's) is the one whose events this emitter produces;
        ``dead_letters`` (default: the service's writer) parks that tenant's dead letters."""
        self.ctx = ctx
        self.metrics = metrics
        self.known = known
        self.tenant = tenant if tenant is not None else ctx.settings.tenant
        self.dead_letters = dead_letters if dead_letters is not None else ctx.dead_letters
        self._parked: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._parked_lock = threading.Lock()

    def already_parked(self, identity: str) -> bool:
        with self._parked_lock:
            if identity in self._parked:
                self._parked.move_to_end(identity)
                return True
            return False

    def remember_parked(self, identities: list[str]) -> None:
        """Dead letters Kafka acknowledged (only those: an unacknowledged one is parked again)."""
        with self._parked_lock:
            for identity in identities:
                self._parked[identity] = None
                self._parked.move_to_end(identity)
            while len(self._parked) > PARKED_MEMORY:
                self._parked.popitem(last=False)

    def batch(self) -> Batch:
        return Batch(self)

    def known_for(self, change: Change) -> KnownSet:
        return self.known[(change.system, change.resource)]


@dataclass
class Batch:
    emitter: Emitter
    _sent: list[tuple[Change, Any]] = field(default_factory=list)
    _parked: list[Any] = field(default_factory=list)
    _parked_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._sent)

    @property
    def parked(self) -> int:
        return len(self._parked)

    def add(self, change: Change) -> None:
        ctx = self.emitter.ctx
        tenant = self.emitter.tenant
        datum = change.to_datum(tenant, datetime.now(UTC))
        topic = ctx.layout.changes(change.system, change.resource)
        try:
            attributes = None
            if ctx.tracing.enabled:  # off: nothing built for a span that is not recorded
                attributes = {
                    "tether.system": change.system,
                    "tether.resource": change.resource,
                    "tether.operation": change.operation.value,
                    "tether.event_id": datum["event_id"],
                    "messaging.destination.name": topic,
                }
            with ctx.tracing.span(
                "extractor.emit", kind="producer", attributes=attributes
            ) as traceparent:
                future = ctx.send(
                    topic, change.key(tenant), "ChangeEvent", datum, kafka_headers(traceparent)
                )
        except KafkaError as exc:
            raise TransportError(f"change event not sent: {type(exc).__name__}") from exc
        self._sent.append((change, future))

    def park(
        self, payload: bytes, error: BaseException, key: bytes | None = None, *, source: str
    ) -> None:
        """Dead-letter a malformed input of ``source`` (``system/resource``; acknowledged with
        the batch) — unless this process already parked the very same input."""
        identity = dead_letter_identity(source, payload)
        if identity in self._parked_ids:
            return  # twice in one batch (e.g. the poll overlap): one dead letter
        if self.emitter.already_parked(identity):
            system, _, resource = source.partition("/")
            self.emitter.metrics.dead_letter_repeats.labels(system, resource).inc()
            return
        try:
            future = self.emitter.dead_letters.park(payload, error, key=key, identity=identity)
        except KafkaError as exc:
            raise TransportError(f"dead letter not sent: {type(exc).__name__}") from exc
        self._parked.append(future)
        self._parked_ids.append(identity)

    def wait(self, timeout: float) -> None:
        """Block until every send of the batch is acknowledged; raise ``TransportError`` if one is
        not within ``timeout`` seconds (it may still arrive: the caller retries, and the
        deterministic event ids make the repeat recognisable)."""
        deadline = time.monotonic() + timeout
        try:
            for future in self._parked:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            for _change, future in self._sent:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
        except KafkaError as exc:
            raise TransportError(f"not acknowledged by Kafka: {type(exc).__name__}") from exc
        self.emitter.remember_parked(self._parked_ids)
        for change, _future in self._sent:
            self.emitter.known_for(change).apply(change)
            self.emitter.metrics.events.labels(
                change.system, change.resource, change.operation.value, change.origin.value
            ).inc()
        self._sent.clear()
        self._parked.clear()
        self._parked_ids.clear()
