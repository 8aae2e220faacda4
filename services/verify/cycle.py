"""One verification cycle: read, compare, repair, record, export.

``Verifier.run_cycle()`` does, in this order (the order matters):

1. read every record of both systems (``reading.read_all``) — *before* the links, so a link
   that moved on while the scan ran carries an observation newer than the record read and is
   reported ``in_flux`` instead of divergent;
2. load the active links and the open review items (read only);
3. re-read the linked records the listing did not return (offset paging can miss one);
4. compare every link (``compare.verify_link``);
5. emit one repair change event per member to re-send (``events.repair_event``) and wait until
   Kafka acknowledged them all — only then is a link recorded as repaired;
6. write the verdicts (``mapper_verification``) in one transaction;
7. publish the metrics.

A failure anywhere raises: the cycle is counted as failed, nothing is recorded, the metrics keep
the last completed cycle's figures and the next cycle starts over (a full rescan needs no
position).

Imports: kafka-python/psycopg through the core modules, the verifier's own modules and the
mapper's pure domain.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from kafka import KafkaProducer

from services.core.codec import AvroCodec
from services.core.errors import ContractError
from services.core.timestamps import utcnow
from services.core.topics import TopicLayout
from services.verify import reading, store
from services.verify.compare import Status, Verdict, verify_link
from services.verify.events import repair_event
from services.verify.metrics import VerifyMetrics
from services.verify.reading import Clients, Key
from services.verify.settings import VerifySettings

log = logging.getLogger("tether.verify")


@dataclass
class Report:
    """What one cycle found and did (``to_json``: the CLI's output; no personal data)."""

    cycle_id: str
    started_at: datetime
    seconds: float
    records_read: dict[str, int]
    verdicts: list[Verdict]
    repairs: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    unrepairable: dict[str, str] = field(default_factory=dict)
    """link id -> why no repair was emitted (``stuck``, ``unencodable``, ``repair_off``)."""

    @property
    def by_status(self) -> dict[str, int]:
        tally = Counter(v.status.value for v in self.verdicts)
        return {status.value: tally[status.value] for status in Status}

    @property
    def divergent(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.divergent]

    @property
    def converging(self) -> bool:
        """Every divergent link got all its repair events (exit code 0 of ``tether verify``)."""
        return all(
            v.link_id in self.repairs and v.link_id not in self.unrepairable for v in self.divergent
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "records_read": self.records_read,
            "links_checked": len(self.verdicts),
            "by_status": self.by_status,
            "divergent_links": len(self.divergent),
            "repaired_links": len(self.repairs),
            "repair_events": sum(len(r) for r in self.repairs.values()),
            "divergent": [
                {
                    "link_id": v.link_id,
                    "flow": v.flow,
                    "status": v.status.value,
                    "properties": list(v.properties),
                    "detail": v.detail,
                    "repairs": self.repairs.get(v.link_id, []),
                    "unrepairable": self.unrepairable.get(v.link_id),
                }
                for v in self.divergent
            ],
        }


class Verifier:
    def __init__(
        self,
        settings: VerifySettings,
        clients: Clients,
        producer: KafkaProducer,
        codec: AvroCodec,
        layout: TopicLayout,
        metrics: VerifyMetrics,
        *,
        connect: Callable[[], psycopg.Connection[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.tenant = settings.tenant
        self.clients = clients
        self.producer = producer
        self.codec = codec
        self.layout = layout
        self.metrics = metrics
        self._connect = connect or self._default_connect

    def _default_connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.settings.postgres_dsn.get_secret_value(), autocommit=True, connect_timeout=10
        )

    def run_cycle(self, on_progress: reading.OnProgress = reading._nothing) -> Report:
        try:
            report = self._cycle(on_progress)
        except BaseException:
            self.metrics.cycles.labels("failed").inc()
            raise
        self.metrics.cycles.labels("ok").inc()
        return report

    def _cycle(self, on_progress: reading.OnProgress) -> Report:
        started_at = utcnow()
        started = time.monotonic()
        cycle_id = uuid.uuid4().hex
        # 1. both systems, before the links (see the module docstring)
        records = reading.read_all(self.clients, on_progress)
        read_counts = Counter(system for system, _, _ in records)
        with self._connect() as conn:
            # 2. the links and what operators already have on their list
            links = store.active_links(conn, self.tenant)
            reviews = store.open_reviews(conn, self.tenant)
            # 3. linked records the listing did not return: confirm one by one
            wanted: dict[Key, str | None] = {}
            for link in links:
                for member in link.members:
                    ref = member.ref
                    if member.active and ref.id is not None:
                        key = (ref.system, ref.resource, ref.id)
                        if key not in records:
                            wanted[key] = ref.parent_id
            if wanted:
                on_progress()
                records.update(reading.confirm_missing(self.clients, wanted.items()))
            # 4. compare
            verdicts = [
                v
                for link in links
                if (v := verify_link(link, records, reviews.get(link.link_id, ()))) is not None
            ]
            # 5. repair through the pipeline, acknowledged before anything is recorded
            repairs, unrepairable = self._repair(verdicts, records)
            # 6. record
            store.save_verdicts(conn, self.tenant, cycle_id, verdicts, repairs, utcnow())
        seconds = time.monotonic() - started
        # 7. export
        self.metrics.publish(verdicts)
        for why in unrepairable.values():
            self.metrics.unrepairable.labels(why).inc()
        for system in ("poweroffice", "wix"):
            self.metrics.records_read.labels(system).set(read_counts[system])
        self.metrics.cycle_seconds.set(seconds)
        self.metrics.last_success.set(time.time())
        report = Report(
            cycle_id, started_at, seconds, dict(read_counts), verdicts, repairs, unrepairable
        )
        log.info(
            "verification cycle done",
            extra={
                "fields": {
                    "cycle_id": cycle_id,
                    "links": len(verdicts),
                    "divergent": len(report.divergent),
                    "repair_events": sum(len(r) for r in repairs.values()),
                    "seconds": round(seconds, 3),
                }
            },
        )
        return report

    def _repair(
        self, verdicts: list[Verdict], records: dict[Key, dict[str, Any]]
    ) -> tuple[dict[str, list[dict[str, str]]], dict[str, str]]:
        repairs: dict[str, list[dict[str, str]]] = {}
        unrepairable: dict[str, str] = {}
        futures = []
        extracted_at = utcnow()
        for verdict in verdicts:
            if verdict.status is not Status.DIVERGENT:
                continue
            if not verdict.repairs:
                unrepairable[verdict.link_id] = "stuck"
                continue
            if not self.settings.verify_repair:
                unrepairable[verdict.link_id] = "repair_off"
                continue
            emitted: list[dict[str, str]] = []
            for repair in verdict.repairs:
                record = records[(repair.system, repair.resource, repair.record_id)]
                try:
                    key, datum = repair_event(
                        self.tenant,
                        repair.system,
                        repair.resource,
                        repair.record_id,
                        record,
                        extracted_at=extracted_at,
                        parent_id=repair.parent_id,
                    )
                    payload = self.codec.encode("ChangeEvent", datum)
                except ContractError as exc:
                    # The extractor dead-letters such a record when it reads it; here the link
                    # stays divergent and visible (metric, explain) with the reason.
                    log.warning(
                        "repair event cannot be encoded",
                        extra={"fields": {"link_id": verdict.link_id, "error": type(exc).__name__}},
                    )
                    unrepairable[verdict.link_id] = "unencodable"
                    continue
                topic = self.layout.changes(repair.system, repair.resource)
                futures.append(self.producer.send(topic, key=key, value=payload))
                self.metrics.repairs.labels(repair.system, repair.resource).inc()
                emitted.append(
                    {
                        "system": repair.system,
                        "resource": repair.resource,
                        "record_id": repair.record_id,
                        "event_id": str(datum["event_id"]),
                    }
                )
            if emitted:
                repairs[verdict.link_id] = emitted
        self.producer.flush(timeout=self.settings.verify_ack_timeout_seconds)
        for future in futures:
            future.get(timeout=self.settings.verify_ack_timeout_seconds)
        return repairs, unrepairable
