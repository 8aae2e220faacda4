"""``tether preview``: what the first real run would do, computed read-only before it happens.

1. **Read both systems in full** with the unchanged production clients, within this process's
   budget share: every Wix contact (Query Contacts, raw, as the extractor reads them) and every
   PowerOffice employee, customer and contact person (a contact person whose parent is not a
   customer is a supplier's, as the extractor's ``parents`` rule says). Nothing is written to
   either system.
2. **Turn them into change events exactly as the extractor does** (``services.extractor.changes``
   builders), encoded to Avro and decoded again, so the mapper sees the bytes it would see. A
   record the extractor would dead-letter (no id, no stamp) is counted with its reason.
3. **Run the mapper's own handler** (``services.mapper.handler.Handler`` with the real
   ``MapperStore``) against a **scratch schema** in the configured PostgreSQL: a fresh schema
   ``tether_preview_<random>``, the mapper's migrations applied there (``search_path`` set to it
   alone), Wix contacts first and then PowerOffice records — the order the mapper's Wix-first
   gate enforces (``services.mapper.gate``). No Kafka: the commands the handler writes to the
   outbox are collected, never produced. Because it is the mapper's handler and store, the
   prediction cannot drift from what the mapper decides.
4. **Report**: PowerOffice records to link to existing Wix contacts (and how many contacts),
   contacts to create, records to review with reasons, and the property changes the first run
   would write to existing contacts (and to PowerOffice records): counts per property and a
   sample, e-mails and phones masked.
5. **Drop the scratch schema** (always, also on failure).

The scratch schema needs the right to create a schema in the configured database. Outcomes never
arrive in a preview, so links to contacts being created stay pending; records sharing a key
still join the one pending contact, exactly as in the pipeline (``mapper_link_keys``).

Imports: psycopg, the connectors' clients and record readers, the core codec/topics/settings,
the extractor's pure change builders, the mapper's handler/store/migrations/settings/domain, and
this package's wiring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.poweroffice.stream import API_RESOURCE, PowerOfficeRecords
from services.connectors.wix.client import MAX_PAGE, WixClient, last_page
from services.connectors.wix.stream import WixContacts
from services.core.codec import AvroCodec, default_codec
from services.core.errors import ConfigurationError, ContractError, TetherError
from services.core.runtime import mask_personal_data
from services.core.topics import TopicLayout
from services.extractor.changes import Change as ExtractedChange
from services.extractor.changes import ChangeMaker, Origin
from services.extractor.settings import ExtractorSettings
from services.mapper.domain import Command, CommandAction, Policy
from services.mapper.handler import Handler
from services.mapper.migrations import apply_migrations
from services.mapper.settings import MapperSettings
from services.mapper.store import MapperStore
from services.onboarding.checks import describe
from services.onboarding.wiring import poweroffice_client, wix_client

#: (extractor resource, API resource), in the order the mapper gets them after the Wix contacts.
PO_RESOURCES = tuple(API_RESOURCE.items())
PAGE_SIZE = 5000
BATCH = 500  # inputs per transaction (the mapper's loop also commits per batch)
SAMPLE = 20
SCHEMA_PREFIX = "tether_preview_"

LINKS_SUMMARY = """
SELECT count(*) FILTER (WHERE l.hub_record_id IS NOT NULL),
       count(DISTINCT l.hub_record_id),
       count(*) FILTER (WHERE l.hub_record_id IS NULL),
       count(DISTINCT l.link_id) FILTER (WHERE l.hub_record_id IS NULL)
FROM mapper_link_members m JOIN mapper_links l USING (link_id)
WHERE m.system = 'poweroffice' AND l.status = 'active'
"""
LINKED_BY_RESOURCE = """
SELECT m.resource, count(*) FROM mapper_link_members m JOIN mapper_links l USING (link_id)
WHERE m.system = 'poweroffice' AND l.status = 'active' GROUP BY m.resource
"""
OPEN_REVIEWS = """
SELECT reason, system, resource, record_id, detail FROM mapper_review_items
WHERE resolved_at IS NULL ORDER BY reason, system, resource, record_id
"""


# ------------------------------------------------------------------------------------------------
# 1. reading
# ------------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Both systems as read: raw wire records."""

    wix_contacts: list[dict[str, Any]] = field(default_factory=list)
    poweroffice: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"wix_contacts": len(self.wix_contacts)} | {
            resource: len(records) for resource, records in self.poweroffice.items()
        }


def read_wix(client: WixClient) -> list[dict[str, Any]]:
    """Every contact, raw, paged as the client's ``iter_query`` pages (ids de-duplicated)."""
    contacts: list[dict[str, Any]] = []
    seen: set[str] = set()
    offset = 0
    while True:
        page = client.query_page_raw(limit=MAX_PAGE, offset=offset)
        for raw in page.contacts:
            contact_id = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(contact_id, str) and contact_id in seen:
                continue
            if isinstance(contact_id, str):
                seen.add(contact_id)
            contacts.append(raw)
        offset += len(page.contacts)
        if last_page(len(page.contacts), offset, page.total):
            return contacts


def read_poweroffice(client: PowerOfficeClient) -> dict[str, list[dict[str, Any]]]:
    return {
        resource: list(client.resource(api).list_wire(page_size=PAGE_SIZE))
        for resource, api in PO_RESOURCES
    }


# ------------------------------------------------------------------------------------------------
# 2. change events, as the extractor builds them
# ------------------------------------------------------------------------------------------------


@dataclass
class Events:
    data: list[bytes] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)


def change_events(snapshot: Snapshot, codec: AvroCodec, tenant: str) -> Events:
    """The encoded ChangeEvents the extractor's first snapshot would produce: Wix first."""
    extracted_at = datetime.now(UTC)
    events = Events()

    def add(build: Any, source: str) -> None:
        try:
            change: ExtractedChange = build()
        except ContractError as exc:  # the extractor dead-letters it: counted, with its reason
            events.unreadable.append({"source": source, "reason": str(exc)})
            return
        events.data.append(codec.encode("ChangeEvent", change.to_datum(tenant, extracted_at)))

    contacts = ChangeMaker("wix", "contacts", WixContacts())
    for raw in snapshot.wix_contacts:

        def build_contact(raw: Any = raw) -> ExtractedChange:
            return contacts.upsert(raw, contacts.reader.observe(raw), Origin.POLL)

        add(build_contact, "wix/contacts")
    customers = {
        str(r.get("Id")) for r in snapshot.poweroffice.get("customers", []) if isinstance(r, dict)
    }
    for resource, _ in PO_RESOURCES:
        for raw in snapshot.poweroffice.get(resource, []):

            def build(raw: Any = raw, resource: str = resource) -> ExtractedChange:
                maker = ChangeMaker("poweroffice", resource, PowerOfficeRecords(resource))
                observed = maker.reader.observe(raw)
                parent_id = observed.key.parent_id
                kind = None
                if resource == "contact_persons" and parent_id is not None:
                    kind = "customer" if parent_id in customers else "supplier"
                return maker.upsert(raw, observed, Origin.POLL, parent_kind=kind)

            add(build, f"poweroffice/{resource}")
    return events


# ------------------------------------------------------------------------------------------------
# 3. the mapper's handler on a scratch schema
# ------------------------------------------------------------------------------------------------


class CollectingStore(MapperStore):
    """The mapper's store, keeping every command the handler writes to the outbox."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        super().__init__(conn)
        self.commands: list[Command] = []

    def insert_outbox(self, command: Command, **kwargs: Any) -> None:
        super().insert_outbox(command, **kwargs)
        self.commands.append(command)


@dataclass
class Decided:
    commands: list[Command]
    results: Counter[str]
    dead_letters: list[dict[str, str]]
    links: dict[str, Any]
    reviews: list[tuple[str, str, str, str, str]]


class ScratchSchema:
    """A fresh schema with the mapper's tables; the connection's ``search_path`` is it alone."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = SCHEMA_PREFIX + uuid.uuid4().hex[:12]
        self.conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        self.conn = conn
        try:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.name)))
            # Only the scratch schema: unqualified names can never reach the live tables.
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.name)))
            apply_migrations(conn)
        except BaseException:
            self._drop()
            raise
        return conn

    def __exit__(self, *exc: object) -> None:
        self._drop()

    def _drop(self) -> None:
        conn = self.conn
        self.conn = None
        if conn is None:
            return
        try:
            if conn.closed or conn.broken:
                conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.name))
            )
        finally:
            conn.close()


def decide(
    events: Sequence[bytes],
    conn: psycopg.Connection[Any],
    *,
    codec: AvroCodec,
    layout: TopicLayout,
    policy: Policy,
    max_deletes_per_hour: int,
) -> Decided:
    """Feed ``events`` (in order) through the mapper's handler; what it decided."""
    store = CollectingStore(conn)
    results: Counter[str] = Counter()
    dead: list[dict[str, str]] = []
    stream_starts: dict[tuple[str, str, str], datetime] = {}
    for start in range(0, len(events), BATCH):
        handler = Handler(
            store,
            codec,
            layout,
            policy,
            max_deletes_per_hour=max_deletes_per_hour,
            stream_starts=stream_starts,
        )
        with conn.transaction():
            for payload in events[start : start + BATCH]:
                collected = len(store.commands)
                try:
                    with conn.transaction():  # a savepoint per input, as the loop's careful mode
                        datum = codec.decode(payload, "ChangeEvent")
                        handled = handler.change(datum, datetime.now(UTC))
                    results.update(h.result for h in handled)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise  # the database went away: the preview fails, visibly
                except Exception as exc:
                    if isinstance(exc, TetherError) and exc.retriable:
                        raise
                    del store.commands[collected:]  # rolled back with the savepoint
                    results["dead_letter"] += 1
                    dead.append({"error": type(exc).__name__})
    row = conn.execute(LINKS_SUMMARY).fetchone()
    matched_records, matched_contacts, pending_records, pending_links = row or (0, 0, 0, 0)
    by_resource = dict(conn.execute(LINKED_BY_RESOURCE).fetchall())
    return Decided(
        commands=store.commands,
        results=results,
        dead_letters=dead,
        links={
            "matched_records": int(matched_records),
            "matched_contacts": int(matched_contacts),
            "records_linked_to_new_contacts": int(pending_records),
            "new_contact_links": int(pending_links),
            "linked_by_resource": {str(k): int(v) for k, v in by_resource.items()},
        },
        reviews=[tuple(str(v) for v in r) for r in conn.execute(OPEN_REVIEWS).fetchall()],  # type: ignore[misc]
    )


# ------------------------------------------------------------------------------------------------
# 4. the report (pure)
# ------------------------------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    """A value as the report shows it: e-mails and phone numbers masked."""
    return mask_personal_data(value) if isinstance(value, str) else value


def summarize(snapshot: Snapshot, events: Events, decided: Decided) -> dict[str, Any]:
    """The prediction, in the demo's terms (``seed.generate``'s ``expectations``)."""
    actions: Counter[str] = Counter()
    creates = 0
    updates: dict[str, list[Command]] = {"wix": [], "poweroffice": []}
    for command in decided.commands:
        target = command.target
        actions[f"{target.system}/{target.resource} {command.action.value}"] += 1
        if command.action is CommandAction.CREATE and target.system == "wix":
            creates += 1
        elif command.action is CommandAction.UPDATE and target.id is not None:
            updates.setdefault(target.system, []).append(command)
    reasons = Counter(r[0] for r in decided.reviews)
    records_in_review = {(r[1], r[2], r[3]) for r in decided.reviews if r[1] == "poweroffice"}
    links = decided.links
    linked_records = links["matched_records"] + links["records_linked_to_new_contacts"]
    return {
        "read": snapshot.counts(),
        "unreadable_records": events.unreadable,
        "created_contacts": creates,
        "matched_existing_contacts": links["matched_contacts"],
        "matched_existing_records": links["matched_records"],
        "linked_records": linked_records,
        "linked_by_resource": links["linked_by_resource"],
        "review_items": len(decided.reviews),
        "review_reasons": dict(sorted(reasons.items())),
        "records_in_review": len(records_in_review),
        "review_sample": [
            {"reason": r[0], "record": f"{r[1]}/{r[2]}/{r[3]}", "detail": _shown(r[4])}
            for r in decided.reviews[:SAMPLE]
        ],
        "commands": dict(sorted(actions.items())),
        "changes_to_existing": {
            system: _changes(commands) for system, commands in sorted(updates.items())
        },
        "decisions": dict(sorted(decided.results.items())),
        "dead_letters": len(decided.dead_letters) + len(events.unreadable),
    }


def _changes(commands: list[Command]) -> dict[str, Any]:
    per_property: Counter[str] = Counter()
    records: set[str] = set()
    for command in commands:
        records.add(command.target.key)
        per_property.update(command.fields.keys())
    return {
        "records": len(records),
        "writes": len(commands),
        "properties": dict(sorted(per_property.items())),
        "sample": [
            {
                "record": command.target.key,
                "changes": {
                    name: {"from": _shown(command.expected.get(name)), "to": _shown(value)}
                    for name, value in sorted(command.fields.items())
                },
            }
            for command in commands[:SAMPLE]
        ],
    }


def render(report: Mapping[str, Any]) -> str:
    read = report["read"]
    lines = [
        "=== Preview: what the first run would do (nothing was written) ===",
        "  read: " + ", ".join(f"{k} {v}" for k, v in read.items()),
        f"  link to existing Wix contacts: {report['matched_existing_records']} records -> "
        f"{report['matched_existing_contacts']} contacts",
        f"  create in Wix:                 {report['created_contacts']} contacts",
        f"  linked after the first run:    {report['linked_records']} records "
        + json.dumps(report["linked_by_resource"], sort_keys=True),
        f"  to review:                     {report['review_items']} items "
        + json.dumps(report["review_reasons"], sort_keys=True),
    ]
    for item in report["review_sample"][:10]:
        lines.append(f"      {item['reason']}: {item['record']}  {item['detail']}")
    for system, changes in report["changes_to_existing"].items():
        lines.append(
            f"  writes to existing {system} records: {changes['writes']} on "
            f"{changes['records']} records, per property "
            + json.dumps(changes["properties"], sort_keys=True)
        )
        for item in changes["sample"][:5]:
            shown = ", ".join(
                f"{name}: {change['from']!r} -> {change['to']!r}"
                for name, change in item["changes"].items()
            )
            lines.append(f"      {item['record']}  {shown}")
    lines.append("  commands: " + json.dumps(report["commands"], sort_keys=True))
    if report["dead_letters"]:
        lines.append(f"  would be dead letters: {report['dead_letters']} (see --json)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# the whole run
# ------------------------------------------------------------------------------------------------


def preview(
    settings: MapperSettings, wix: WixClient, poweroffice: PowerOfficeClient
) -> dict[str, Any]:
    """Read both systems, decide on a scratch schema, report; the schema is always dropped."""
    started = time.monotonic()
    snapshot = Snapshot(wix_contacts=read_wix(wix), poweroffice=read_poweroffice(poweroffice))
    read_seconds = time.monotonic() - started
    codec = default_codec()
    events = change_events(snapshot, codec, settings.tenant)
    layout = TopicLayout(prefix=settings.topic_prefix, partitions=settings.topic_partitions)
    with ScratchSchema(settings.postgres_dsn.get_secret_value()) as conn:
        decided = decide(
            events.data,
            conn,
            codec=codec,
            layout=layout,
            policy=settings.install_dataflow(),
            max_deletes_per_hour=settings.mapper_max_deletes_per_hour,
        )
    report = summarize(snapshot, events, decided)
    report["seconds"] = {
        "read": round(read_seconds, 2),
        "total": round(time.monotonic() - started, 2),
    }
    return report


def run() -> dict[str, Any]:
    """A preview with the settings of this environment (the extractor's credentials, the
    mapper's database, policy and tenant)."""
    extractor = ExtractorSettings.load()
    mapper = MapperSettings.load()
    with wix_client(extractor) as wix, poweroffice_client(extractor) as poweroffice:
        return preview(mapper, wix, poweroffice)


def predict(env: Mapping[str, str], timeout: float = 600.0) -> str:
    """One line for the demo: ``tether preview --json`` run with ``env`` (a service's
    environment), before the services start."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "preview", "--json"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        return f"tether preview failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    report = json.loads(done.stdout)
    return (
        f"tether preview predicts: link {report['matched_existing_records']} records to "
        f"{report['matched_existing_contacts']} existing contacts, create "
        f"{report['created_contacts']} contacts, {report['review_items']} to review, "
        f"{report['linked_records']} records linked"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether preview",
        description="Read both systems and report what the first sync would do — links to "
        "existing contacts, contacts to create, review items, property changes — without "
        "writing to either system (the mapper's own decisions on a scratch PostgreSQL schema).",
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    try:
        report = run()
    except ConfigurationError:
        raise  # the CLI names the setting
    except TetherError as exc:
        system = getattr(exc, "system", None) or "an API"
        print(
            f"tether preview: reading {system} failed: {describe(exc)}; run `tether doctor`",
            file=sys.stderr,
        )
        return 1
    except psycopg.errors.InsufficientPrivilege:
        print(
            "tether preview: the database role may not create the scratch schema: grant it "
            "CREATE on the database (GRANT CREATE ON DATABASE ... TO ...)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render(report))
    sys.stdout.flush()
    return 0
