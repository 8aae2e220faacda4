"""Mapper benchmark (not a test): ChangeEvents/s through the mapper with PostgreSQL, and its ratio
to a bare kafka-python consume -> produce -> commit loop over the same topics in the same run.

    .venv/bin/python bench/mapper.py [--events 5000] [--seed 42] [--partitions 3]
                                     [--preload 0] [--timeout 600] [--stall-seconds 60]

Needs the local Kafka and PostgreSQL (``python3 scripts/infra.py up``;
TETHER_KAFKA_BOOTSTRAP_SERVERS and TETHER_POSTGRES_DSN, defaults as printed by infra.py). Uses its
own topic prefix and a throw-away database.

How: ``seed.generate`` data become ChangeEvents (the pre-existing Wix contacts plus PowerOffice
employees, customers and contact persons). Both consumers join their groups first; then every
event is produced, and each loop is timed from its first poll to its last commit:

* baseline — poll, re-produce every message to another topic, flush, commit offsets;
* mapper — ``Mapper.run_once`` (poll, decide + persist in one PostgreSQL transaction per batch,
  produce the outbox, flush, mark, commit offsets) until every event is consumed and the outbox
  is empty.

``--preload N`` first bulk-loads N links (each with a Wix contact and a PowerOffice employee
member, a link match key, the contact's index row and key) by COPY into the bench database, then
ANALYZEs, so that the per-event cost can be compared between an empty state and e.g. 1M links.
Their keys and ids cannot match the seed data (``@preload.invalid`` e-mails).

Durability is part of the cost: the report says whether the server runs with ``fsync`` and
``synchronous_commit`` on (``SHOW``) and warns when not — start a durable server for figures
that count (``TETHER_POSTGRES_DURABLE=1 python3 scripts/infra.py up``).

The report also prints the mapper's cost per event (``mapper_ms_per_event``) and its CPU time
per event (this process), and the batches it committed.

It never hangs: when a loop makes no progress for ``--stall-seconds`` (or the run exceeds
``--timeout``) it stops with exit status 1 and says where it stood (messages consumed, the
mapper's Wix-first hold, paused partitions, per-partition positions and end offsets).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from benchkit import Watchdog
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry
from psycopg import sql

from services.connectors import registry
from services.connectors.seed import generate
from services.core.codec import AvroCodec
from services.core.kafka import commit_offsets, layout_from, next_offsets, provision_topics
from services.core.metrics import CoreMetrics
from services.core.records import wrap_record
from services.core.runtime import ServiceRuntime
from services.core.service import ServiceContext
from services.core.topics import record_key
from services.mapper.domain import Link, Member, RecordRef
from services.mapper.loop import Mapper
from services.mapper.settings import MapperSettings

# The shipped dataflow's hub system and resource, and a member resource.
WIX, CONTACTS, EMPLOYEES = "wix", "contacts", "employees"

TENANT = "default"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def events(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` ChangeEvent datums from seed data (Wix contacts first, then PowerOffice)."""
    data = generate(count, seed)
    out: list[dict[str, Any]] = []

    def add(system: str, resource: str, record_id: str, record: dict[str, Any], n: int) -> None:
        at = T0 + timedelta(seconds=n)
        out.append(
            {
                "event_id": f"bench-{system}-{resource}-{record_id}",
                "tenant": TENANT,
                "system": system,
                "resource": resource,
                "record_id": record_id,
                "operation": "UPSERT",
                "origin": "POLL",
                "source_timestamp": at,
                "source_version": "1" if system == "wix" else None,
                "extracted_at": at,
                "record": wrap_record(system, resource, record),
                "merged_ids": [],
                "parent_id": str(record["ContactId"]) if "ContactId" in record else None,
            }
        )

    for i, info in enumerate(data.wix_contacts):
        contact = {"id": f"w-{i}", "revision": 1, "info": info}
        add("wix", "contacts", contact["id"], contact, i)
    for i, emp in enumerate(data.employees):
        add("poweroffice", "employees", str(1 + i), {**emp, "Id": 1 + i}, i)
    for i, cust in enumerate(data.customers):
        add("poweroffice", "customers", str(100_000 + i), {**cust, "Id": 100_000 + i}, i)
    for i, (parent, person) in enumerate(data.contact_persons):
        record = {**person, "Id": 500_000 + i, "ContactId": 100_000 + parent}
        add("poweroffice", "contact_persons", str(500_000 + i), record, i)
    return out[:count]


def context(settings: MapperSettings) -> ServiceContext:
    registry = CollectorRegistry()
    return ServiceContext(
        name="mapper",
        settings=settings,
        registry=registry,
        metrics=CoreMetrics(registry, "mapper"),
        codec=AvroCodec(),
        layout=layout_from(settings),
        runtime=ServiceRuntime("mapper", registry, "127.0.0.1", 0),
    )


def main() -> None:
    registry.install()  # core's topics and record types, as the tether command does
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        help="bulk-load this many links (COPY) into the bench database before the run",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up (exit 1) after this many seconds"
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=60.0,
        help="give up (exit 1) when a loop consumed nothing new for this long",
    )
    args = parser.parse_args()
    watch = Watchdog("bench/mapper.py", args.timeout, args.stall_seconds)

    bootstrap = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    admin_dsn = os.environ.get("TETHER_POSTGRES_DSN", "postgresql://tether@127.0.0.1:15432/tether")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    database = f"{prefix}_mapper"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    dsn = f"{admin_dsn.rpartition('/')[0]}/{database}"
    settings = MapperSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        topic_partitions=args.partitions,
        postgres_dsn=dsn,
        poll_timeout_ms=100,
        mapper_provision_topics=False,
        mapper_maintenance_interval_seconds=3600,
    )
    sink = settings.model_copy(update={"topic_prefix": f"{prefix}sink"})
    provision_topics(settings)
    provision_topics(sink)
    layout = layout_from(settings)
    codec = AvroCodec()
    mapper = Mapper(context(settings), settings)
    try:
        # Both consumers join (no data yet), then the backlog is produced.
        mapper.start()
        durability = _durability(dsn)
        if durability != {"fsync": "on", "synchronous_commit": "on"}:
            print(
                f"bench/mapper.py: WARNING: PostgreSQL is not durable ({durability}): the "
                "figures understate the cost of a commit",
                file=sys.stderr,
            )
        preload_seconds = preload(dsn, args.preload) if args.preload else 0.0
        while not mapper.consumer or not mapper.consumer.assignment():
            watch.check("mapper joining its group", 0, lambda: _mapper_state(mapper))
            mapper.run_once()
        baseline = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=f"{prefix}-baseline",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
        )
        baseline.subscribe(layout.all_changes())
        while not baseline.assignment():
            watch.check("baseline joining its group", 0, lambda: "")
            baseline.poll(timeout_ms=100)

        data = events(args.events, args.seed)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        started = time.perf_counter()
        for datum in data:
            producer.send(
                layout.changes(datum["system"], datum["resource"]),
                key=record_key(TENANT, datum["system"], datum["resource"], datum["record_id"]),
                value=codec.encode("ChangeEvent", datum),
            )
        producer.flush()
        produce_seconds = time.perf_counter() - started
        out_topic = layout_from(sink).commands("wix", "contacts")

        # Baseline: consume -> produce -> flush -> commit.
        consumed = 0
        first: float | None = None
        while consumed < len(data):
            watch.check("baseline", consumed, f"{consumed} of {len(data)} consumed".strip)
            began = time.perf_counter()
            records = [r for b in baseline.poll(timeout_ms=100).values() for r in b]
            if not records:
                continue
            first = first if first is not None else began
            for record in records:
                producer.send(out_topic, key=record.key, value=record.value)
            producer.flush()
            commit_offsets(baseline, next_offsets(records))
            consumed += len(records)
        baseline_seconds = time.perf_counter() - (first or 0.0)
        baseline.close()

        # The mapper: poll -> decide + persist -> produce outbox -> commit.
        first = None
        cpu = 0.0
        batches = 0
        while mapper.consumed < len(data):
            watch.check("mapper", mapper.consumed, lambda: _mapper_state(mapper, len(data)))
            began = time.perf_counter()
            if first is None:
                cpu = time.process_time()
            if mapper.run_once():
                batches += 1
                if first is None:
                    first = began
        while mapper.run_once() or (backlog := _backlog(dsn)):
            watch.check("mapper relay", -backlog, lambda: f"{backlog} outbox rows unproduced")
        mapper_seconds = time.perf_counter() - (first or 0.0)
        cpu = time.process_time() - cpu
        decisions = _query(dsn, "SELECT decision, count(*) FROM mapper_history GROUP BY 1")
        report = {
            "events": len(data),
            "partitions": args.partitions,
            "produce_events_per_s": round(len(data) / produce_seconds),
            "baseline_events_per_s": round(len(data) / baseline_seconds),
            "mapper_events_per_s": round(len(data) / mapper_seconds),
            "mapper_to_baseline": round(baseline_seconds / mapper_seconds, 3),
            "mapper_seconds": round(mapper_seconds, 2),
            "mapper_ms_per_event": round(1000 * mapper_seconds / len(data), 3),
            "mapper_cpu_ms_per_event": round(1000 * cpu / len(data), 3),
            "batches": batches,
            "preloaded_links": args.preload,
            "preload_seconds": round(preload_seconds, 1),
            "postgres": durability,
            "commands": _query(dsn, "SELECT count(*) FROM mapper_outbox")[0][0],
            "decisions": dict(sorted((str(k), int(n)) for k, n in decisions)),
        }
        print(json.dumps(report, indent=2))
        producer.close()
    finally:
        mapper.close()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def _mapper_state(mapper: Mapper, total: int | None = None) -> str:
    """Where the mapper stands, for the watchdog's message."""
    consumer = mapper.consumer
    parts = [f"{mapper.consumed} of {total} consumed" if total is not None else ""]
    if mapper.gate is not None:
        parts.append(f"wix-first holding={mapper.gate.holding}")
    if consumer is not None:
        parts.append(f"paused={sorted(f'{tp.topic}-{tp.partition}' for tp in consumer.paused())}")
    if mapper.lag.progress is not None:
        lagging = {
            f"{topic}-{partition}": f"{state.position}/{state.end}"
            + (" STALLED" if state.stalled else "")
            for (topic, partition), state in sorted(mapper.lag.progress.snapshot().items())
            if state.lag
        }
        parts.append(f"lagging partitions (position/end)={lagging}")
    return "; ".join(p for p in parts if p)


def preload(dsn: str, count: int, chunk: int = 50_000) -> float:
    """COPY ``count`` links (Wix contact + employee member, one e-mail key each, the contact's
    index row and key) into the mapper's tables, then ANALYZE; returns the seconds it took.
    The link state is a real ``Link`` document (a template with the ids substituted)."""
    started = time.perf_counter()
    template = Link(
        link_id="@L@",
        tenant=TENANT,
        members=(
            Member(
                ref=RecordRef(tenant=TENANT, system="poweroffice", resource=EMPLOYEES, id="@P@"),
                flow=EMPLOYEES,
                joined_at=T0,
                match_keys=(("email", "@E@"),),
            ),
            Member(
                ref=RecordRef(tenant=TENANT, system=WIX, resource=CONTACTS, id="@C@"),
                flow=WIX,
                joined_at=T0,
            ),
        ),
        base={"first_name": "Pre", "last_name": "Loaded", "email": "@E@"},
        version=1,
        created_at=T0,
        updated_at=T0,
    ).model_dump_json()
    copies = {
        "mapper_links": "COPY mapper_links (link_id, tenant, status, hub_record_id, version, "
        "state, created_at, updated_at) FROM STDIN",
        "mapper_link_members": "COPY mapper_link_members (tenant, system, resource, record_id, "
        "link_id) FROM STDIN",
        "mapper_link_keys": "COPY mapper_link_keys (tenant, kind, value, link_id) FROM STDIN",
        "mapper_contacts": "COPY mapper_contacts (tenant, contact_id, props, revision, "
        "source_ts, has_other_items, deleted, updated_at) FROM STDIN",
        "mapper_contact_keys": "COPY mapper_contact_keys (tenant, kind, value, contact_id) "
        "FROM STDIN",
    }
    at = T0.isoformat()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for low in range(0, count, chunk):
            ids = range(low, min(low + chunk, count))
            with conn.transaction(), conn.cursor() as cursor:
                for table, statement in copies.items():
                    with cursor.copy(statement) as copy:
                        for i in ids:
                            link, contact, email = (
                                f"pre-{i}",
                                f"pre-c{i}",
                                f"pre{i}@preload.invalid",
                            )
                            if table == "mapper_links":
                                state = (
                                    template.replace("@L@", link)
                                    .replace("@P@", str(i))
                                    .replace("@C@", contact)
                                    .replace("@E@", email)
                                )
                                copy.write_row((link, TENANT, "active", contact, 1, state, at, at))
                            elif table == "mapper_link_members":
                                copy.write_row((TENANT, "poweroffice", EMPLOYEES, f"pre-{i}", link))
                                copy.write_row((TENANT, WIX, CONTACTS, contact, link))
                            elif table == "mapper_link_keys":
                                copy.write_row((TENANT, "email", email, link))
                            elif table == "mapper_contacts":
                                props = json.dumps({"email": email, "first_name": "Pre"})
                                copy.write_row((TENANT, contact, props, 1, at, False, False, at))
                            else:
                                copy.write_row((TENANT, "email", email, contact))
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def _durability(dsn: str) -> dict[str, str]:
    """The server's fsync and synchronous_commit settings (SHOW)."""
    return {
        name: str(_query(dsn, f"SHOW {name}")[0][0]) for name in ("fsync", "synchronous_commit")
    }


def _query(dsn: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text).fetchall()  # type: ignore[arg-type]


def _backlog(dsn: str) -> int:
    return int(_query(dsn, "SELECT count(*) FROM mapper_outbox WHERE produced_at IS NULL")[0][0])


if __name__ == "__main__":
    main()
