"""Replay benchmark (not a test): ``tether replay stage mapper --earliest --execute`` of N change
events with the link table warm, and the mapper's speed reprocessing them.

    .venv/bin/python bench/replay.py [--events 1000000] [--edits 10] [--seed 42]
                                     [--partitions 3] [--timeout 14400] [--stall-seconds 180]

Needs Kafka and PostgreSQL (``scripts/infra.py up``; TETHER_KAFKA_BOOTSTRAP_SERVERS and
TETHER_POSTGRES_DSN). Honest durability: run it against ``TETHER_POSTGRES_DURABLE=1`` infra
(fsync and synchronous_commit on). Uses its own topic prefix and a throw-away database.

How:

1. **Produce.** ``seed.generate`` records (Wix contacts that exist before the first sync, then
   PowerOffice employees, customers, contact persons) each get ``--edits`` versions: version 0
   is the record as seeded, version k changes one synced property (a person's last name, a
   company's phone, a Wix contact's last name; newer stamp/revision). Versions are produced round
   by round until ``--events`` ChangeEvents are on the change topics. Message keys are encoded
   once per record and reused for every version; the producer batches large (linger, 1 MiB
   batches) — the figure printed is the producer's rate, not the mapper's.
2. **Warm-up.** The real ``Mapper`` loop (as ``bench/mapper.py`` runs it: poll, decide + persist
   in PostgreSQL, produce the outbox, commit) handles every event. A stand-in loader in the same
   thread answers each command on the command topics with an Outcome (CREATE -> CREATED with a
   new target id, UPDATE/DELETE -> APPLIED), so creates complete, held edits are released and
   the link table ends up like a synced deployment's: every record linked to its counterpart.
   Done when the mapper has consumed every change event and every outcome, every command has
   been answered and the outbox is empty.
3. **Replay.** The mapper is stopped (its group leaves), then the real command runs as a
   separate process: ``tether replay stage mapper --earliest --execute --json`` (it resets the
   mapper group's committed offsets AND rewinds the mapper's tracking rows to the earliest
   offsets: every change event and outcome is reprocessed, nothing is skipped as processed).
4. **Reprocess (the timed figure).** A fresh ``Mapper`` runs from its first poll until it has
   consumed every message the replay plan listed and the outbox is empty.

Prints: events, produce rate, warm-up rate, replay command time, reprocess time and events/s,
and replay safety: new outbox rows (commands) caused by the reprocess (expected 0: a replay of
history the engine has already applied decides nothing new; re-derived commands keep their
deterministic ids and are not sent again) and messages added to the command topics.

It never hangs: when a phase makes no progress for ``--stall-seconds`` or the run exceeds
``--timeout`` it exits with status 1 and says where it stood.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from benchkit import Watchdog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from psycopg import sql

from services.connectors import registry
from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.seed import generate
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.core.codec import AvroCodec
from services.core.kafka import commit_offsets, layout_from, next_offsets, provision_topics
from services.core.metrics import CoreMetrics
from services.core.records import wrap_record
from services.core.runtime import ServiceRuntime
from services.core.service import ServiceContext
from services.core.topics import TopicLayout, record_key
from services.loader.messages import decode_command, outcome_datum
from services.loader.plan import (
    Action,
    LoaderCommand,
    Result,
    Status,
    create_values,
    field_values,
    guarded_patch,
)
from services.mapper.loop import Mapper
from services.mapper.settings import MapperSettings

TENANT = "default"
CONTACTS = WIX.resource("contacts")
T0 = datetime(2025, 1, 1, tzinfo=UTC)
PROGRESS_EVERY_SECONDS = 15.0


# -- the events ---------------------------------------------------------------------------------


def _po_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _wix_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


Source = tuple[str, str, str, dict[str, Any], str | None]  # system, resource, id, record, parent


def sources(records: int, seed: int) -> list[Source]:
    """The seeded records, each with its identity (ids as ``bench/mapper.py`` assigns them)."""
    data = generate(records, seed)
    out: list[Source] = []
    for i, info in enumerate(data.wix_contacts):
        out.append(("wix", "contacts", f"w-{i}", {"id": f"w-{i}", "info": info}, None))
    for i, emp in enumerate(data.employees):
        out.append(("poweroffice", "employees", str(1 + i), {**emp, "Id": 1 + i}, None))
    for i, cust in enumerate(data.customers):
        record_id = 100_000_000 + i
        out.append(("poweroffice", "customers", str(record_id), {**cust, "Id": record_id}, None))
    for i, (parent, person) in enumerate(data.contact_persons):
        record_id, parent_id = 500_000_000 + i, 100_000_000 + parent
        record = {**person, "Id": record_id, "ContactId": parent_id}
        out.append(("poweroffice", "contact_persons", str(record_id), record, str(parent_id)))
    return out


def version(source: Source, k: int, i: int) -> tuple[dict[str, Any], datetime, str]:
    """Version ``k`` of the ``i``-th record: the record, its change time, its source version.

    Version 0 is the record as seeded; version k changes one synced property that is not a
    match key (so a link stays a link): a person's last name, a company customer's phone."""
    system, _resource, _record_id, base, _parent = source
    at = T0 + timedelta(hours=k, microseconds=i)
    if system == "wix":
        info = base["info"]
        if k:
            name = dict(info.get("name") or {})
            name["last"] = f"{name.get('last') or 'Navn'}-{k}"
            info = {**info, "name": name}
        record = {
            **base,
            "info": info,
            "revision": k + 1,
            "createdDate": _wix_stamp(T0),
            "updatedDate": _wix_stamp(at),
        }
        return record, at, str(k + 1)
    record = dict(base)
    if k:
        if record.get("IsPerson") is False:  # a company: no person name is synced
            record["PhoneNumber"] = f"+47 2{k % 10}{i % 1_000_000:06d}"
        else:
            record["LastName"] = f"{record.get('LastName') or 'Navn'}-{k}"
    stamp = _po_stamp(at)
    record["LastChangedDateTimeOffset"] = stamp
    return record, at, stamp


#: The API fields a version changes (``version``), copied into the converted record.
_PO_CHANGED = ("LastName", "PhoneNumber", "LastChangedDateTimeOffset")
_CHECKED = 200  # versions per resource also converted in full, to prove the shortcut exact


def _avro_version(system: str, base: Any, record: dict[str, Any]) -> Any:
    """The Avro datum of a version, from the converted version 0 (``base``) and the fields
    ``version`` changes — or None when the shortcut does not apply (convert in full)."""
    type_name, datum = base
    if system == "poweroffice":
        return type_name, {**datum, **{f: record.get(f) for f in _PO_CHANGED}}
    info = datum.get("info")
    if not info or not info.get("name"):
        return None
    name = {**info["name"], "last": (record["info"].get("name") or {}).get("last")}
    patched = {**datum, "revision": record["revision"], "updatedDate": record["updatedDate"]}
    patched["info"] = {**info, "name": name}
    return type_name, patched


def encoded_events(
    codec: AvroCodec, layout: TopicLayout, records: list[Source], edits: int, total: int
) -> Iterator[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of up to ``total`` ChangeEvents, version by version.

    Produced fast: topics and keys are encoded once per record; each record is converted to its
    Avro form once (version 0) and later versions patch the fields they change into a copy of
    it (the first versions of each resource are also converted in full and must be equal)."""
    topics = [layout.changes(s[0], s[1]) for s in records]
    keys = [record_key(TENANT, s[0], s[1], s[2]) for s in records]  # encoded once, reused
    bases: list[Any] = [None] * len(records)
    checked: dict[str, int] = {}
    count = 0
    for k in range(edits):
        for i, source in enumerate(records):
            if count >= total:
                return
            system, resource, record_id, _base, parent = source
            record, at, source_version = version(source, k, i)
            converted = None if k == 0 else _avro_version(system, bases[i], record)
            if converted is None:
                converted = wrap_record(system, resource, record)
                if k == 0:
                    bases[i] = converted
            elif checked.setdefault(resource, 0) < _CHECKED:
                checked[resource] += 1
                if converted != wrap_record(system, resource, record):
                    raise AssertionError(f"bench/replay.py: Avro shortcut wrong for {resource}")
            datum = {
                "event_id": f"bench-{system}-{resource}-{record_id}-v{k}",
                "tenant": TENANT,
                "system": system,
                "resource": resource,
                "record_id": record_id,
                "operation": "UPSERT",
                "origin": "POLL",
                "source_timestamp": at,
                "source_version": source_version,
                "extracted_at": at,
                "record": converted,
                "merged_ids": [],
                "parent_id": parent,
            }
            yield topics[i], keys[i], codec.encode("ChangeEvent", datum)
            count += 1


# -- the stand-in loader --------------------------------------------------------------------------


class AnsweringLoader:
    """Stands in for the loader and the SaaS APIs: answers every command with the Outcome the
    real loader would send after a successful write (``services.loader.messages.outcome_datum``),
    carrying the target record *after* the write — the command's ``target_record`` with its
    fields applied (the loader's own ``guarded_patch``/``create_values``/``field_values``
    rules), stamped with the time of the write (now: after every change already on the topics,
    as a real write is) and, for Wix, the next revision. Guards are not checked: every write
    applies. Runs in the caller's thread, one short poll per call."""

    def __init__(self, bootstrap: str, layout: TopicLayout, codec: AvroCodec, group: str) -> None:
        self.layout = layout
        self.codec = codec
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=2000,
        )
        self.consumer.subscribe(layout.all_commands())
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=1 << 20
        )
        self.answered = 0
        self._ids = itertools.count(1)
        self._last = datetime.now(UTC)

    def run_once(self, timeout_ms: int = 0) -> int:
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        records = [r for batch in polled.values() for r in batch]
        for record in records:
            command = decode_command(self.codec, record.value)
            outcome = outcome_datum(command, self.result(command), attempts=1)
            self.producer.send(
                self.layout.outcomes, key=record.key, value=self.codec.encode("Outcome", outcome)
            )
        if records:
            self.producer.flush()
            commit_offsets(self.consumer, next_offsets(records))
            self.answered += len(records)
        return len(records)

    def result(self, command: LoaderCommand) -> Result:
        base = dict(command.target_record or {})
        written = self._last = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        if command.action is Action.DELETE:
            return Result(Status.APPLIED, command.target_id)
        created = command.action is Action.CREATE
        n = next(self._ids)
        if command.system == "wix":
            target_id = f"bench-created-{n}" if created else command.target_id
            # The contact's next revision: after the one the mapper expects (the real loader
            # reads the contact when target_record is older than expected_revision).
            current = max(int(base.get("revision") or 1), command.expected_revision or 0)
            revision = 1 if created else current + 1
            contact = _wix_written(base, field_values(command, CONTACTS.fields).values)
            contact.update(
                {
                    "id": target_id,
                    "revision": revision,
                    "createdDate": base.get("createdDate") or _wix_stamp(written),
                    "updatedDate": _wix_stamp(written),
                }
            )
            status = Status.CREATED if created else Status.APPLIED
            return Result(status, target_id, contact, str(revision))
        resource = POWEROFFICE.resource(command.resource)
        if created:
            values, _reference = create_values(command, resource)
            target_id = str(900_000_000 + n)
            record = {**values, "Id": int(target_id)}
            if command.parent_id is not None:
                record["ContactId"] = int(command.parent_id)
        else:
            target_id = command.target_id
            record = {**base, **guarded_patch(command, resource).changes}
        record["LastChangedDateTimeOffset"] = _po_stamp(written)
        return Result(Status.CREATED if created else Status.APPLIED, target_id, record)

    def close(self) -> None:
        self.consumer.close(autocommit=False)
        self.producer.close()


def _wix_written(contact: dict[str, Any], values: Mapping[str, str | None]) -> dict[str, Any]:
    """``contact`` with the command's name/primary e-mail/primary phone written (what Wix
    returns after the update); a new contact when ``contact`` is empty."""
    info = dict(contact.get("info") or {})
    name = dict(info.get("name") or {})
    for path, key in (("info.name.first", "first"), ("info.name.last", "last")):
        if path in values:
            name[key] = values[path]
    info["name"] = name
    for prop, kind, tag in (("email", "emails", "MAIN"), ("phone", "phones", "MOBILE")):
        path = f"info.{kind}[primary].{prop}"
        if path not in values:
            continue
        items = [dict(i) for i in ((info.get(kind) or {}).get("items") or [])]
        primary = next((i for i in items if i.get("primary")), None)
        if values[path] is None:
            items = [i for i in items if i is not primary]
        elif primary is not None:
            primary[prop] = values[path]
        else:
            items.insert(0, {"tag": tag, prop: values[path], "primary": True})
        info[kind] = {"items": items}
    return {**contact, "info": info, "primaryInfo": None}


# -- helpers ------------------------------------------------------------------------------------


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


def _mapper_state(mapper: Mapper, target: int) -> str:
    parts = [f"{mapper.consumed} of {target} consumed"]
    if mapper.gate is not None:
        parts.append(f"wix-first holding={mapper.gate.holding}")
    return "; ".join(parts)


def _query(dsn: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text).fetchall()  # type: ignore[arg-type]


def _scalar(dsn: str, text: str) -> int:
    return int(_query(dsn, text)[0][0] or 0)


def _end_total(consumer: KafkaConsumer, topics: list[str]) -> int:
    parts = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    return int(sum(consumer.end_offsets(parts).values()))


def _group_empty(bootstrap: str, group: str, watch: Watchdog) -> None:
    """Wait until the mapper's group has no members (the replay refuses an active group)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        while True:
            info = admin.describe_groups([group]).get(group, {})
            state = str(info.get("group_state") or "Dead")
            watch.check("waiting for the mapper group to empty", 0, lambda s=state: s)
            if state in ("Empty", "Dead") and not info.get("members"):
                return
            time.sleep(0.5)
    finally:
        admin.close()


def _run_until_done(
    mapper: Mapper,
    loader: AnsweringLoader,
    phase: str,
    target: Callable[[], int],
    dsn: str,
    watch: Watchdog,
    done_extra: Callable[[], bool],
) -> float | None:
    """Run the mapper and the answering loader until the mapper consumed ``target()`` messages,
    the outbox is empty and ``done_extra()``; returns when the mapper first consumed anything."""
    first: float | None = None
    while True:
        goal = target()
        watch.check(phase, mapper.consumed, lambda g=goal: _mapper_state(mapper, g))
        began = time.perf_counter()
        if mapper.run_once() and first is None:
            first = began
        loader.run_once()
        if mapper.consumed >= target():
            backlog = _scalar(dsn, "SELECT count(*) FROM mapper_outbox WHERE produced_at IS NULL")
            quiet = not backlog and loader.run_once(timeout_ms=200) == 0
            if quiet and done_extra() and mapper.consumed >= target():
                return first


def main() -> None:
    registry.install()  # core's topics and record types, as the tether command does
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="ChangeEvents to replay")
    parser.add_argument(
        "--edits", type=int, default=10, help="versions per record (records = events / edits)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=14_400.0, help="exit 1 after this long")
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=180.0,
        help="exit 1 when a phase made no progress for this long",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and topics (to inspect them)"
    )
    args = parser.parse_args()
    watch = Watchdog("bench/replay.py", args.timeout, args.stall_seconds, PROGRESS_EVERY_SECONDS)

    bootstrap = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    admin_dsn = os.environ.get("TETHER_POSTGRES_DSN", "postgresql://tether@127.0.0.1:15432/tether")
    prefix = f"benchreplay{uuid.uuid4().hex[:8]}"
    database = f"{prefix}_mapper"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        durability = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit")
        }
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
    provision_topics(settings)
    layout = layout_from(settings)
    codec = AvroCodec()
    report: dict[str, Any] = {
        "events": args.events,
        "edits_per_record": args.edits,
        "partitions": args.partitions,
        "postgres": durability,
        "mapper_batch": settings.max_poll_records,
    }
    mapper: Mapper | None = None
    loader: AnsweringLoader | None = None
    try:
        # 1. produce
        records = sources(max(1, -(-args.events // args.edits)), args.seed)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=50,
            batch_size=1 << 20,
            max_request_size=8 << 20,
        )
        started = time.perf_counter()
        produced = 0
        for topic, key, value in encoded_events(codec, layout, records, args.edits, args.events):
            producer.send(topic, key=key, value=value)
            produced += 1
            if produced % 50_000 == 0:
                watch.check("producing", produced, lambda n=produced: f"{n} produced")
        producer.flush()
        producer.close()
        report["events"] = produced
        report["records"] = min(len(records), produced)
        report["produce_events_per_s"] = round(produced / (time.perf_counter() - started))
        del records

        # 2. warm-up: the mapper handles every event; the stand-in loader answers its commands
        mapper = Mapper(context(settings), settings)
        mapper.start()
        loader = AnsweringLoader(bootstrap, layout, codec, f"{prefix}-answering-loader")
        probe = KafkaConsumer(bootstrap_servers=bootstrap)
        commands = layout.all_commands()
        the_loader = loader

        def answered_all() -> bool:
            return the_loader.answered >= _end_total(probe, commands)

        started = time.perf_counter()
        first = _run_until_done(
            mapper,
            loader,
            "warm-up",
            lambda: produced + the_loader.answered,
            dsn,
            watch,
            answered_all,
        )
        warm_seconds = time.perf_counter() - (first or started)
        report["warmup"] = {
            "messages": mapper.consumed,
            "outcomes": loader.answered,
            "seconds": round(warm_seconds, 1),
            "messages_per_s": round(mapper.consumed / warm_seconds),
            "links": _scalar(dsn, "SELECT count(*) FROM mapper_links"),
        }
        mapper.close()
        mapper = None
        print(f"warm-up done: {json.dumps(report['warmup'])}", file=sys.stderr, flush=True)

        # 3. the replay command, as an operator runs it (the stage is stopped first)
        _group_empty(bootstrap, settings.group_id, watch)
        outbox_before = _scalar(dsn, "SELECT count(*) FROM mapper_outbox")
        reviews_before = _scalar(dsn, "SELECT count(*) FROM mapper_review_items")
        history_before = _scalar(dsn, "SELECT coalesce(max(id), 0) FROM mapper_history")
        command_messages_before = _end_total(probe, commands)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env.update(
            {
                "TETHER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "TETHER_POSTGRES_DSN": dsn,
                "TETHER_TOPIC_PREFIX": prefix,
                "TETHER_TOPIC_PARTITIONS": str(args.partitions),
            }
        )
        argv = [sys.executable, "-m", "services.cli", "replay", "stage", "mapper"]
        argv += ["--earliest", "--execute", "--json"]
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        replay_command_seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(
                f"bench/replay.py: the replay command failed ({done.returncode}): {done.stderr}"
            )
        plan = json.loads(done.stdout)
        to_replay = int(plan["messages"])

        # 4. reprocess: a fresh mapper from its first poll to the last message of the plan
        mapper = Mapper(context(settings), settings)
        mapper.start()
        started = time.perf_counter()
        first = _run_until_done(
            mapper, loader, "reprocess", lambda: to_replay, dsn, watch, lambda: True
        )
        seconds = time.perf_counter() - (first or started)
        decisions = _query(
            dsn,
            f"SELECT decision, count(*) FROM mapper_history WHERE id > {history_before} GROUP BY 1",
        )
        report["replay"] = {
            "command": " ".join(argv[2:]),
            "command_seconds": round(replay_command_seconds, 2),
            "messages": to_replay,
            "change_events": produced,
            "outcomes": to_replay - produced,
            "seconds": round(seconds, 1),
            "events_per_s": round(to_replay / seconds),
            "replayed_results": mapper.replayed,
            "new_commands": _scalar(dsn, "SELECT count(*) FROM mapper_outbox") - outbox_before,
            "command_topic_messages_added": _end_total(probe, commands) - command_messages_before,
            "review_items_added": _scalar(dsn, "SELECT count(*) FROM mapper_review_items")
            - reviews_before,
            "decisions": dict(sorted((str(k), int(n)) for k, n in decisions)),
        }
        probe.close()
        print(json.dumps(report, indent=2), flush=True)
        if report["replay"]["new_commands"] or report["replay"]["command_topic_messages_added"]:
            sys.exit("bench/replay.py: the replay produced new commands (replay is not safe)")
    finally:
        if mapper is not None:
            mapper.close()
        if loader is not None:
            loader.close()
        if args.keep:
            print(f"kept: database {database}, topics {prefix}.*", file=sys.stderr)
        else:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
            _delete_topics(bootstrap, prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete this run's topics (a long benchmark leaves gigabytes otherwise)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    except Exception as exc:  # clean-up must not hide the result
        print(f"bench/replay.py: topics not deleted: {exc}", file=sys.stderr)
    finally:
        admin.close()


if __name__ == "__main__":
    main()
