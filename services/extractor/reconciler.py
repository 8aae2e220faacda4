"""The reconciliation shell: scan, plan (``reconciliation.plan``), verify, emit, for one resource.

One run: (1) the poll cursor must exist (no reconciliation before the first snapshot completed);
(2) list every live record with a cheap projection — an error anywhere aborts the run, a partial
listing is never used; (3) plan against the known set; (4) adopt old unknown records; (5) fetch
and emit the drifted records (origin RECONCILE); (6) unless the breaker is open, verify each
delete candidate with a lookup and emit DELETE (404) or MERGE (Wix: merged away); (7) wait for
Kafka's acknowledgement (the known set learns the changes then). Breaker state, candidates and
drift are metrics.

Imports: the extractor's pure modules, its emitter and metrics; the API access comes in through
the :class:`Scanner` port (``poweroffice.py`` / ``wix.py`` implement it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from services.core.errors import ContractError
from services.extractor.changes import Change, Origin, delete, raw_payload, wix_merge
from services.extractor.emitter import Emitter
from services.extractor.known import KnownRecord, KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.positions import NS_PER_SECOND, from_datetime
from services.extractor.reconciliation import BreakerLimits, Listed, Plan, plan

log = logging.getLogger("tether.extractor.reconcile")


@dataclass(frozen=True)
class Gone:
    """The lookup answered 404: the record was deleted."""


@dataclass(frozen=True)
class Exists:
    """The record is still there (the listing missed it)."""


@dataclass(frozen=True)
class MergedInto:
    """Wix: the id was merged into ``target_id`` (``target``: its raw contact, if read)."""

    target_id: str
    target: Mapping[str, Any] | None


Verdict = Gone | Exists | MergedInto


class Scanner(Protocol):
    """API access of one resource, for reconciliation."""

    system: str
    resource: str

    def covered_until_ns(self) -> int | None:
        """The poll cursor's position (None: no snapshot yet)."""
        ...

    def scan(self) -> list[Listed]:
        """Every live record (id, version); raises on any error (never a partial list)."""
        ...

    def fetch(self, items: Sequence[Listed]) -> list[Any]:
        """The full raw records of ``items`` (those still there)."""
        ...

    def to_change(self, raw: Any) -> Change:
        """A raw record -> UPSERT change with origin RECONCILE (``ContractError`` if malformed)."""
        ...

    def verify(self, record_id: str, known: KnownRecord) -> Verdict: ...


class Reconciler:
    def __init__(
        self,
        scanner: Scanner,
        known: KnownSet,
        emitter: Emitter,
        metrics: ExtractorMetrics,
        limits: BreakerLimits,
        *,
        retention_seconds: float,
        ack_timeout: float = 30.0,
    ) -> None:
        self.scanner = scanner
        self.known = known
        self.emitter = emitter
        self.metrics = metrics
        self.limits = limits
        self.retention_seconds = retention_seconds
        self.ack_timeout = ack_timeout
        self.labels = (scanner.system, scanner.resource)
        self.source = f"{scanner.system}/{scanner.resource}"

    def run(self) -> Plan | None:
        # 1. only after the first snapshot: before it, everything would look unseen
        covered = self.scanner.covered_until_ns()
        if covered is None:
            log.info("reconcile %s/%s skipped: no snapshot yet", *self.labels)
            return None
        started_clock = time.monotonic()
        now = datetime.now(UTC)
        # 2. the full listing (an exception aborts the run: nothing is planned from a partial one)
        try:
            listing = self.scanner.scan()
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
        for raw in self.scanner.fetch([*result.changed, *result.unseen]):
            try:
                change = self.scanner.to_change(raw)
            except ContractError as exc:
                batch.park(raw_payload(raw), exc, source=self.source)
                continue
            if not self.known.covers(change):
                batch.add(change)
                found.append((change, kinds.get(change.record_id, "changed")))
        # 6. deletes, unless the breaker refuses them
        self._breaker_metrics(result)
        for record_id, entry in result.deletes_allowed:
            verdict = self.scanner.verify(record_id, entry)
            if isinstance(verdict, Gone):
                change = delete(
                    self.scanner.system,
                    self.scanner.resource,
                    record_id,
                    Origin.RECONCILE,
                    now,
                    entry.version,
                    entry.parent_id,
                )
                kind = "deleted"
            elif isinstance(verdict, MergedInto):
                try:
                    change = wix_merge(
                        verdict.target, verdict.target_id, [record_id], Origin.RECONCILE, now
                    )
                except ContractError as exc:
                    batch.park(raw_payload(verdict.target), exc, source=self.source)
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
