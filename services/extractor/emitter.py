"""Producing change events and dead letters, and waiting until Kafka acknowledged them.

A :class:`Batch` collects the sends of one unit of work (a poll page, a webhook delivery, a
reconciliation) and :meth:`Batch.wait` blocks until every one is acknowledged (``acks=all``,
idempotent producer) or raises :class:`TransportError` — only then does the caller move a cursor,
answer a webhook 200 or trust the known set, which :meth:`wait` updates with the acknowledged
changes. Events are counted by system/resource/operation/origin once acknowledged.

Imports: kafka-python errors and the core/extractor modules.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka.errors import KafkaError

from services.core.errors import TransportError
from services.core.service import ServiceContext
from services.extractor.changes import Change
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics

log = logging.getLogger("tether.extractor.emitter")


class Emitter:
    def __init__(
        self,
        ctx: ServiceContext,
        metrics: ExtractorMetrics,
        known: dict[tuple[str, str], KnownSet],
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.known = known

    def batch(self) -> Batch:
        return Batch(self)

    def known_for(self, change: Change) -> KnownSet:
        return self.known[(change.system, change.resource)]


@dataclass
class Batch:
    emitter: Emitter
    _sent: list[tuple[Change, Any]] = field(default_factory=list)
    _parked: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._sent)

    @property
    def parked(self) -> int:
        return len(self._parked)

    def add(self, change: Change) -> None:
        ctx = self.emitter.ctx
        tenant = ctx.settings.tenant
        datum = change.to_datum(tenant, datetime.now(UTC))
        try:
            future = ctx.send(
                ctx.layout.changes(change.system, change.resource),
                change.key(tenant),
                "ChangeEvent",
                datum,
            )
        except KafkaError as exc:
            raise TransportError(f"change event not sent: {type(exc).__name__}") from exc
        self._sent.append((change, future))

    def park(self, payload: bytes, error: BaseException, key: bytes | None = None) -> None:
        """Dead-letter a malformed input (acknowledged with the batch)."""
        try:
            self._parked.append(self.emitter.ctx.dead_letters.park(payload, error, key=key))
        except KafkaError as exc:
            raise TransportError(f"dead letter not sent: {type(exc).__name__}") from exc

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
        for change, _future in self._sent:
            self.emitter.known_for(change).apply(change)
            self.emitter.metrics.events.labels(
                change.system, change.resource, change.operation.value, change.origin.value
            ).inc()
        self._sent.clear()
        self._parked.clear()
