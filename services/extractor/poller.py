"""The incremental poller of one resource, over its connector's ``SourceStream``.

A cycle reads ``stream.pages(cursor)`` from the stored cursor (none yet: a full snapshot) until
the stream says a page was the last, or a stop is requested. Per page, in this order:

1. read the page (the stream makes the request; what it recognised from the overlap behind the
   cursor is only counted, ``Page.repeated``);
2. handle each record: no identity/version or a wrong type -> dead letter; a version the known
   set has (e.g. emitted by the push receiver or reconciliation) -> skipped; else a change event;
3. wait until Kafka acknowledged the page's events and dead letters;
4. save the page's cursor (the stream's opaque string; ``CursorStore.save`` waits for its own
   ack) — unless it is the one stored already.

A crash between 3 and 4 re-reads one page at most; what it re-emits carries the same event ids.
A stop request (SIGTERM) is honoured between pages: the read resumes from the saved cursor.

Imports: the connector interface, the cursor store and the extractor's own modules.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from services.core.connector import SourceStream
from services.core.errors import ContractError
from services.core.stream_positions import from_datetime
from services.core.topics import record_key
from services.extractor.changes import Change, ChangeMaker, Origin, raw_payload
from services.extractor.cursors import CursorStore
from services.extractor.emitter import Batch, Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.parents import ParentKinds

STREAM = "poll"
"""The cursor's stream name (part of its key on the cursors topic)."""

log = logging.getLogger("tether.extractor.poller")


class Poller:
    def __init__(
        self,
        system: str,
        stream: SourceStream,
        cursors: CursorStore,
        emitter: Emitter,
        known: KnownSet,
        metrics: ExtractorMetrics,
        *,
        tenant: str,
        page_size: int,
        ack_timeout: float = 30.0,
        parents: ParentKinds | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stream = stream
        self.system = system
        self.resource = stream.resource
        self.maker = ChangeMaker(system, stream.resource, stream)
        self.cursors = cursors
        self.emitter = emitter
        self.known = known
        self.metrics = metrics
        self.tenant = tenant
        self.page_size = page_size
        self.ack_timeout = ack_timeout
        self.parents = parents
        self.clock = clock
        # The service loop asks before every round and the lag gauge at every scrape, while the
        # stored cursor changes only when a page is saved: decoding it each time (a Wix cursor
        # holds its whole ``seen`` window) cost more than reading the pages. One entry: the
        # cursor stored now.
        self._covered_until = functools.lru_cache(maxsize=1)(stream.covered_until)

    def cursor(self) -> str | None:
        """The stored cursor (None: nothing read yet)."""
        return self.cursors.stream_cursor(self.tenant, self.system, self.resource, STREAM)

    def covered_until_ns(self) -> int | None:
        """Every change at or before this was read (None: no complete snapshot yet)."""
        return self._covered_until(self.cursor())

    def lag_seconds(self) -> float:
        covered = self.covered_until_ns()
        if covered is None:
            return 0.0
        return max(0.0, (from_datetime(self.clock()) - covered) / 1e9)

    def to_change(self, raw: Any, origin: Origin) -> Change:
        """A record as read -> UPSERT (``ContractError`` when it cannot be one)."""
        observed = self.stream.observe(raw)
        kind = None
        if self.parents is not None:
            kind = self.parents.kind(observed.key.parent_id, self.parents.created(raw))
        return self.maker.upsert(raw, observed, origin, parent_kind=kind)

    def cycle(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> int:
        """One poll cycle (all pages, or until ``should_stop``); returns the events emitted."""
        started = time.monotonic()
        stored = self.cursor()
        pages = self.stream.pages(stored, self.page_size)
        emitted = 0
        try:
            # 1. read one page
            for page in pages:
                self.metrics.poll_pages.labels(self.system, self.resource).inc()
                # 2. handle
                batch = self.emitter.batch()
                skipped = page.repeated
                for raw in (*page.records, *page.rejected):
                    if not self._handle(raw, batch):
                        skipped += 1
                # 3. the page's events are acknowledged before the cursor covers them
                sent = len(batch)
                batch.wait(self.ack_timeout)
                emitted += sent
                if skipped:
                    self.metrics.skipped.labels(self.system, self.resource, "POLL").inc(skipped)
                # 4. persist the cursor (waits for its own ack)
                if page.cursor is not None and page.cursor != stored:
                    self.cursors.save_stream_cursor(
                        self.tenant, self.system, self.resource, STREAM, page.cursor
                    )
                    stored = page.cursor
                heartbeat()
                # 5. next page, unless this was the last one or we are asked to stop
                if page.last or should_stop():
                    break
        finally:
            close = getattr(pages, "close", None)  # a generator: ends the stream's read
            if close is not None:
                close()
        self.metrics.poll_seconds.labels(self.system, self.resource).observe(
            time.monotonic() - started
        )
        return emitted

    def _handle(self, raw: Any, batch: Batch) -> bool:
        """Add ``raw``'s change (or dead letter) to ``batch``; False when the known set has it."""
        try:
            change = self.to_change(raw, Origin.POLL)
        except ContractError as exc:
            batch.park(raw_payload(raw), exc, self._key_of(raw), source=self.maker.source)
            return True
        if self.known.covers(change):
            return False
        batch.add(change)
        return True

    def _key_of(self, raw: Any) -> bytes | None:
        """The Kafka key of a dead letter: the record's, when it has an id at all."""
        if not isinstance(raw, Mapping):
            return None
        try:
            record_id = self.stream.key_of(raw).id
        except ContractError:
            return None
        return record_key(self.tenant, self.system, self.resource, record_id)
