"""The reconciliation shell: scan, plan (``reconciliation.plan``), verify, emit, for one resource.

One run: (1) the poll cursor must exist (no reconciliation before the first snapshot completed);
(2) list every live record with a cheap projection — an error anywhere aborts the run, a partial
listing is never used; (3) plan against the known set; (4) adopt old unknown records; (5) fetch
and emit the drifted records (origin RECONCILE); (6) unless the breaker is open, verify each
delete candidate with a lookup and emit DELETE (404) or MERGE (``presence``: merged away);
(7) wait for Kafka's acknowledgement (the known set learns the changes then). Breaker state,
candidates and drift are metrics.

The API access is the resource's ``SourceStream`` (``scan``, ``get_many``, ``presence``); its
poller says how far polling has read (``covered_until_ns``) and turns records into changes.

Imports: the connector interface, the extractor's pure modules, its poller, emitter and metrics.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from services.core.connector import Gone, MergedInto, RecordKey
from services.core.errors import ContractError
from services.core.stream_positions import NS_PER_SECOND, from_datetime
from services.extractor.changes import Change, Origin, raw_payload
from services.extractor.emitter import Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.poller import Poller
from services.extractor.reconciliation import BreakerLimits, Listed, Plan, plan

log = logging.getLogger("tether.extractor.reconcile")


class Reconciler:
    def __init__(
        self,
        poller: Poller,
        known: KnownSet,
        emitter: Emitter,
        metrics: ExtractorMetrics,
        limits: BreakerLimits,
        *,
        page_size: int,
        retention_seconds: float,
        ack_timeout: float = 30.0,
    ) -> None:
        self.poller = poller
        self.stream = poller.stream
        self.maker = poller.maker
        self.page_size = page_size
        self.known = known
        self.emitter = emitter
        self.metrics = metrics
        self.limits = limits
        self.retention_seconds = retention_seconds
        self.ack_timeout = ack_timeout
        self.labels = (poller.system, poller.resource)
        self.source = poller.maker.source

    def scan(self) -> list[Listed]:
        """Every live record (id, version, key, time, parent); any error aborts the run."""
        return [
            Listed(
                item.key.id,
                item.version,
                self.stream.version_order(item.version),
                item.changed_ns,
                item.key.parent_id,
            )
            for item in self.stream.scan(self.page_size)
        ]

    def run(self) -> Plan | None:
        # 1. only after the first snapshot: before it, everything would look unseen
        covered = self.poller.covered_until_ns()
        if covered is None:
            log.info("reconcile %s/%s skipped: no snapshot yet", *self.labels)
            return None
        started_clock = time.monotonic()
        now = datetime.now(UTC)
        # 2. the full listing (an exception aborts the run: nothing is planned from a partial one)
        try:
            listing = self.scan()
        except Exception:
            self.metrics.reconcile_runs.labels(*self.labels, "failed").inc()
            raise
        # 3. plan
        horizon = from_datetime(now) - int(self.retention_seconds * NS_PER_SECOND)
        result = plan(
            self.known.snapshot(),
            listing,
            scan_started=started_clock,
            covered_until_ns=covered,
            horizon_ns=horizon,
            limits=self.limits,
        )
        # 4. adopt what is older than the changes topics remember
        for item in result.adopted:
            self.known.adopt(item.record_id, item.version, item.key, item.parent_id)
        if result.adopted:
            self.metrics.adopted.labels(*self.labels).inc(len(result.adopted))
        batch = self.emitter.batch()
        found: list[tuple[Change, str]] = []
        # 5. drift: read back and emit what the poller missed
        kinds = {item.record_id: "changed" for item in result.changed}
        kinds.update({item.record_id: "unseen" for item in result.unseen})
        drifted = [*result.changed, *result.unseen]
        keys = [RecordKey(item.record_id, item.parent_id) for item in drifted]
        for raw in self.stream.get_many(keys):
            try:
                change = self.poller.to_change(raw, Origin.RECONCILE)
            except ContractError as exc:
                batch.park(raw_payload(raw), exc, source=self.source)
                continue
            if not self.known.covers(change):
                batch.add(change)
                found.append((change, kinds.get(change.record_id, "changed")))
        # 6. deletes, unless the breaker refuses them
        self._breaker_metrics(result)
        for record_id, entry in result.deletes_allowed:
            verdict = self.stream.presence(RecordKey(record_id, entry.parent_id))
            if isinstance(verdict, Gone):
                change = self.maker.delete(
                    record_id, Origin.RECONCILE, now, entry.version, entry.parent_id
                )
                kind = "deleted"
            elif isinstance(verdict, MergedInto):
                try:
                    change = self.maker.merge(
                        verdict.record, verdict.target.id, [record_id], Origin.RECONCILE, now
                    )
                except ContractError as exc:
                    batch.park(raw_payload(verdict.record), exc, source=self.source)
                    continue
                kind = "merged"
            else:
                continue
            if not self.known.covers(change):
                batch.add(change)
                found.append((change, kind))
        # 7. acknowledged -> the known set and the metrics learn it
        batch.wait(self.ack_timeout)
        for _change, kind in found:
            self.metrics.drift.labels(*self.labels, kind).inc()
        self.metrics.reconcile_runs.labels(*self.labels, "completed").inc()
        self.metrics.reconcile_seconds.labels(*self.labels).observe(
            time.monotonic() - started_clock
        )
        log.info(
            "reconciled %s/%s",
            *self.labels,
            extra={
                "fields": {
                    "listed": result.listed,
                    "known": result.known_live,
                    "delete_candidates": len(result.missing),
                    "breaker_open": result.breaker_open,
                    "drift": len(found),
                }
            },
        )
        return result

    def _breaker_metrics(self, result: Plan) -> None:
        self.metrics.delete_candidates.labels(*self.labels).set(len(result.missing))
        self.metrics.breaker_open.labels(*self.labels).set(1 if result.breaker_open else 0)
        if result.breaker_open:
            self.metrics.breaker_trips.labels(*self.labels, result.breaker_reason or "").inc()
            log.error(
                "reconcile %s/%s: circuit breaker refused %d deletes (%s)",
                *self.labels,
                len(result.missing),
                result.breaker_reason,
                extra={"fields": {"listed": result.listed, "known": result.known_live}},
            )
