"""The link repository, one input at a time: links, members, link keys, the hub-record index,
last-known records, and the read-model rows decisions leave (reviews, conflicts, history).

Every statement is a named constant below; the tables are created by ``migrations``.
``LinkRepository`` sends each read and write at once (write statements return no rows, so a
decision's writes go in one pipeline); ``batch.BatchStore`` is its set-based form for a whole
batch and reuses these statements; their ``*_SET`` forms (in ``batch``) apply the same rules
(a change to one is a change to both).

Locking (several replicas may run): a record's link row is read ``FOR UPDATE``; before matching,
transaction-scoped advisory locks are taken on the match keys (class ``KEY_LOCK``; a batch: all
of its keys and hub records in one statement) and then on the candidate hub records (class
``CONTACT_LOCK``) — always keys before contacts, each set in sorted order, and advisory locks
before row locks — so that two new records with one key cannot both create a hub record, and a
hub edit cannot slip past a record that is linking to that hub record. (The tracking rows are
locked before all of these: ``tracking``.)

Imports: psycopg (via ``session``) and the mapper's domain (for the row <-> model conversions)
only — not the tracking rows, the outbox nor ``batch``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.core.errors import TetherError
from services.mapper.domain import (
    Conflict,
    ContactIndexEntry,
    Link,
    LinkStatus,
    MatchKey,
    RecordRef,
    ReviewItem,
    hub,
    link_match_keys,
)
from services.mapper.store.session import StoreSession

#: Advisory lock classes (two-int key space; the first int is the class).
KEY_LOCK = 0x7E7_0001
CONTACT_LOCK = 0x7E7_0002


class StaleLinkError(TetherError):
    """A link row changed under a decision (its version is not the one that was loaded)."""


ADVISORY_LOCKS = """
SELECT pg_advisory_xact_lock(c, h) FROM (
    SELECT DISTINCT c, hashtext(v) AS h FROM unnest(%b::int[], %b::text[]) AS x(c, v)
    ORDER BY c, h
) AS l
"""

LINK_FOR_RECORD = """
SELECT l.state::text FROM mapper_link_members m JOIN mapper_links l USING (link_id)
WHERE m.tenant = %s AND m.system = %s AND m.resource = %s AND m.record_id = %s
FOR UPDATE OF l
"""
LINKS_FOR_RECORDS = """
SELECT m.tenant, m.system, m.resource, m.record_id, l.state::text
FROM mapper_link_members m JOIN mapper_links l USING (link_id)
WHERE (m.tenant, m.system, m.resource, m.record_id) IN (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]))
ORDER BY l.link_id
FOR UPDATE OF l
"""
LINK_ID_FOR_RECORD = """
SELECT link_id FROM mapper_link_members
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
"""
LINKS_BY_ID = """
SELECT state::text FROM mapper_links WHERE link_id = ANY(%b::text[]) ORDER BY link_id FOR UPDATE
"""
LINK_BY_ID_READ = "SELECT state::text FROM mapper_links WHERE link_id = %s"
INSERT_LINK = """
INSERT INTO mapper_links
    (link_id, tenant, status, hub_record_id, version, state, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)
ON CONFLICT (link_id) DO NOTHING
"""
UPDATE_LINK = """
UPDATE mapper_links
SET status = %s, hub_record_id = %s, version = %s, state = %s::jsonb, updated_at = %s
WHERE link_id = %s AND version = %s
"""
UPSERT_MEMBER = """
INSERT INTO mapper_link_members (tenant, system, resource, record_id, link_id)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (tenant, system, resource, record_id) DO UPDATE SET link_id = EXCLUDED.link_id
"""
DELETE_MEMBER = """
DELETE FROM mapper_link_members
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s AND link_id = %s
"""
DELETE_LINK_KEYS = "DELETE FROM mapper_link_keys WHERE link_id = %s"
INSERT_LINK_KEYS = """
INSERT INTO mapper_link_keys (tenant, kind, value, link_id)
SELECT %s, k, v, %s FROM unnest(%s::text[], %s::text[]) AS x(k, v)
ON CONFLICT DO NOTHING
"""
CANDIDATES_FOR_KEYS = """
SELECT 'contact', ck.contact_id FROM mapper_contact_keys ck
JOIN unnest(%(kinds)s::text[], %(values)s::text[]) AS w(kind, value)
  ON ck.kind = w.kind AND ck.value = w.value
WHERE ck.tenant = %(tenant)s
UNION
SELECT 'link', lk.link_id FROM mapper_link_keys lk
JOIN unnest(%(kinds)s::text[], %(values)s::text[]) AS w(kind, value)
  ON lk.kind = w.kind AND lk.value = w.value
WHERE lk.tenant = %(tenant)s
"""
CONTACT_ENTRIES = """
SELECT c.contact_id, c.props::text, c.revision, c.source_ts, c.has_other_items,
       COALESCE((SELECT json_agg(json_build_array(k.kind, k.value) ORDER BY k.kind, k.value)
                 FROM mapper_contact_keys k
                 WHERE k.tenant = c.tenant AND k.contact_id = c.contact_id), '[]')::text,
       m.link_id
FROM mapper_contacts c
LEFT JOIN mapper_link_members m
       ON m.tenant = c.tenant AND m.system = %s AND m.resource = %s AND m.record_id = c.contact_id
WHERE c.tenant = %s AND c.contact_id = ANY(%s) AND NOT c.deleted
ORDER BY c.contact_id
"""
# "Not older": by revision when both are known, else by source timestamp, else accepted. A
# tombstone is only replaced by a strictly newer state. One statement (no result to fetch, so
# it pipelines): the row, then its keys — stale keys dropped, new ones added.
# A hub record's index row is replaced only by a state that is not older: a revision when both
# have one, else the source time; a tombstone only by a strictly newer state. Shared by the
# per-row and the set-based upsert (``batch.UPSERT_CONTACTS_SET``).
CONTACT_NOT_OLDER = """    ON CONFLICT (tenant, contact_id) DO UPDATE SET
        props = EXCLUDED.props, revision = EXCLUDED.revision, source_ts = EXCLUDED.source_ts,
        has_other_items = EXCLUDED.has_other_items, record = COALESCE(EXCLUDED.record, c.record),
        deleted = false, updated_at = EXCLUDED.updated_at
    WHERE CASE
        WHEN c.deleted THEN c.source_ts IS NOT NULL AND EXCLUDED.source_ts IS NOT NULL
                            AND EXCLUDED.source_ts > c.source_ts
        WHEN c.revision IS NOT NULL AND EXCLUDED.revision IS NOT NULL
            THEN EXCLUDED.revision >= c.revision
        WHEN c.source_ts IS NOT NULL AND EXCLUDED.source_ts IS NOT NULL
            THEN EXCLUDED.source_ts >= c.source_ts
        ELSE true
    END"""

UPSERT_CONTACT = f"""
WITH up AS (
    INSERT INTO mapper_contacts AS c
        (tenant, contact_id, props, revision, source_ts, has_other_items, record, deleted,
         updated_at)
    VALUES (%(tenant)s, %(contact_id)s, %(props)s::jsonb, %(revision)s, %(source_ts)s,
            %(other)s, %(record)s::jsonb, false, %(now)s)
{CONTACT_NOT_OLDER}
    RETURNING c.tenant, c.contact_id
), wanted AS (
    SELECT k, v FROM unnest(%(kinds)s::text[], %(values)s::text[]) AS x(k, v)
), dropped AS (
    DELETE FROM mapper_contact_keys ck USING up
    WHERE ck.tenant = up.tenant AND ck.contact_id = up.contact_id
      AND (ck.kind, ck.value) NOT IN (SELECT k, v FROM wanted)
)
INSERT INTO mapper_contact_keys (tenant, kind, value, contact_id)
SELECT up.tenant, wanted.k, wanted.v, up.contact_id FROM up, wanted
ON CONFLICT DO NOTHING
"""
DELETE_CONTACT_KEYS = "DELETE FROM mapper_contact_keys WHERE tenant = %s AND contact_id = %s"
TOMBSTONE_CONTACT = """
INSERT INTO mapper_contacts AS c (tenant, contact_id, props, source_ts, deleted, updated_at)
VALUES (%s, %s, '{}'::jsonb, %s, true, %s)
ON CONFLICT (tenant, contact_id) DO UPDATE SET
    deleted = true, props = '{}'::jsonb, record = NULL, revision = NULL,
    source_ts = GREATEST(c.source_ts, EXCLUDED.source_ts), updated_at = EXCLUDED.updated_at
"""
CONTACT_RECORD = """
SELECT record::text, revision, source_ts FROM mapper_contacts
WHERE tenant = %s AND contact_id = %s AND NOT deleted
"""
UPSERT_RECORD = """
INSERT INTO mapper_records AS r (tenant, system, resource, record_id, record, source_ts, updated_at)
VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)
ON CONFLICT (tenant, system, resource, record_id) DO UPDATE SET
    record = EXCLUDED.record, source_ts = EXCLUDED.source_ts, updated_at = EXCLUDED.updated_at
WHERE r.source_ts IS NULL OR EXCLUDED.source_ts IS NULL OR EXCLUDED.source_ts >= r.source_ts
"""
SELECT_RECORD = """
SELECT record::text, source_ts FROM mapper_records
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
"""
UPSERT_REVIEW = """
INSERT INTO mapper_review_items AS r
    (review_id, tenant, reason, detail, system, resource, record_id, link_id, property,
     candidates, first_seen, last_seen)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)
ON CONFLICT (review_id) DO UPDATE SET
    detail = EXCLUDED.detail, link_id = COALESCE(EXCLUDED.link_id, r.link_id),
    candidates = EXCLUDED.candidates, last_seen = EXCLUDED.last_seen,
    resolved_at = NULL, resolution = NULL
"""
RESOLVE_REVIEWS = """
UPDATE mapper_review_items SET resolved_at = %s, resolution = %s
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
  AND reason = ANY(%s) AND resolved_at IS NULL
"""
INSERT_CONFLICT = """
INSERT INTO mapper_conflicts
    (conflict_id, tenant, link_id, property, kind, rule, winner, losers, cause, at)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)
ON CONFLICT (conflict_id) DO NOTHING
"""
INSERT_HISTORY = """
INSERT INTO mapper_history
    (tenant, link_id, system, resource, record_id, source, event_id, command_id, decision,
     reason, commands, error_code, error_message, at, fields)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
"""
# The gauges' counts, every tenant in one grouped query.
LINK_STATES = """
SELECT tenant,
       CASE WHEN status = 'active' AND hub_record_id IS NULL THEN 'creating' ELSE status END,
       count(*)
FROM mapper_links GROUP BY 1, 2
"""
OPEN_REVIEWS = """
SELECT tenant, reason, count(*) FROM mapper_review_items
WHERE resolved_at IS NULL GROUP BY 1, 2
"""
TRIM_HISTORY = """
DELETE FROM mapper_history h USING (
    SELECT id, row_number() OVER (
        PARTITION BY COALESCE(
            link_id, tenant || '/' || system || '/' || resource || '/' || record_id
        )
        ORDER BY id DESC) AS n
    FROM mapper_history
) AS ranked
WHERE h.id = ranked.id AND ranked.n > %s
"""


@dataclass(frozen=True)
class ContactRecord:
    """The full last-known hub record of the index (the loader's ``target_record``)."""

    record: dict[str, Any] | None
    revision: int | None
    source_ts: datetime | None


def split_match_keys(keys: Iterable[MatchKey]) -> tuple[list[str], list[str]]:
    """Distinct match keys in sorted order, as the (kinds, values) arrays statements take."""
    pairs = sorted({(k[0], k[1]) for k in keys})
    return [k for k, _ in pairs], [v for _, v in pairs]


def not_older(candidate: datetime | None, known: datetime | None) -> bool:
    """``UPSERT_RECORD``'s rule: a source time replaces another unless it is older (None: yes)."""
    return candidate is None or known is None or candidate >= known


_JSON_TEXT_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS  # 1 -> "1", as json.dumps
    | orjson.OPT_PASSTHROUGH_DATETIME  # str(datetime), as json.dumps(default=str)
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def json_text(value: Any) -> str:
    """The JSON text a ``jsonb`` parameter is sent as (keys sorted, so equal values are equal).

    orjson (8x faster on a contact record; this runs for every record the mapper remembers);
    what it cannot encode (an integer beyond 64 bits) goes through ``json``, with the same
    meaning.
    """
    try:
        return orjson.dumps(value, default=str, option=_JSON_TEXT_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class LinkRepository(StoreSession):
    """The link state and its indexes on the transaction's connection, one input at a time."""

    # -- locks --------------------------------------------------------------------------------

    def lock(
        self, tenant: str, keys: Iterable[MatchKey] = (), contacts: Iterable[str] = ()
    ) -> None:
        """Advisory locks on match keys, then contacts (one statement, in global order)."""
        classes: list[int] = []
        values: list[str] = []
        for kind, value in sorted({(k[0], k[1]) for k in keys}):
            classes.append(KEY_LOCK)
            values.append(f"{tenant}\x1f{kind}\x1f{value}")
        for contact_id in sorted(set(contacts)):
            classes.append(CONTACT_LOCK)
            values.append(f"{tenant}\x1f{contact_id}")
        if classes:
            self.conn.execute(ADVISORY_LOCKS, (classes, values))

    # -- links --------------------------------------------------------------------------------

    def link_for_record(
        self, tenant: str, system: str, resource: str, record_id: str
    ) -> Link | None:
        """The link holding a record, locked for this transaction.

        A link found merged once its lock was granted was merged while we waited: the record
        now belongs to the surviving link, so it is looked up again."""
        for _ in range(3):
            row = self.conn.execute(
                LINK_FOR_RECORD, (tenant, system, resource, record_id)
            ).fetchone()
            link = Link.model_validate_json(row[0]) if row else None
            if link is None or link.status is not LinkStatus.MERGED:
                return link
        return link

    def links_for_records(
        self, identities: Iterable[tuple[str, str, str, str]]
    ) -> dict[tuple[str, str, str, str], Link]:
        """The links holding these records (one statement, locked in link id order); records
        without a link are absent."""
        wanted = sorted(set(identities))
        if not wanted:
            return {}
        columns = [[w[i] for w in wanted] for i in range(4)]
        rows = self.conn.execute(LINKS_FOR_RECORDS, columns).fetchall()
        parsed: dict[str, Link] = {}
        out: dict[tuple[str, str, str, str], Link] = {}
        for tenant, system, resource, record_id, state in rows:
            link = Link.model_validate_json(state)
            link = parsed.setdefault(link.link_id, link)
            out[(str(tenant), str(system), str(resource), str(record_id))] = link
        return out

    def link_id_for_record(
        self, tenant: str, system: str, resource: str, record_id: str
    ) -> str | None:
        row = self.conn.execute(
            LINK_ID_FOR_RECORD, (tenant, system, resource, record_id)
        ).fetchone()
        return str(row[0]) if row else None

    def links_by_id(self, link_ids: Iterable[str]) -> dict[str, Link]:
        """Links by id, locked for this transaction (in id order)."""
        ids = sorted(set(link_ids))
        if not ids:
            return {}
        links = [Link.model_validate_json(r[0]) for r in self.conn.execute(LINKS_BY_ID, (ids,))]
        return {link.link_id: link for link in links}

    def read_link(self, link_id: str) -> Link | None:
        row = self.conn.execute(LINK_BY_ID_READ, (link_id,)).fetchone()
        return Link.model_validate_json(row[0]) if row else None

    def save_link(self, link: Link, previous: Link | None) -> Callable[[], None]:
        """Insert or update a link (optimistic check against the version loaded), keeping the
        member index and the link's match keys (``link_match_keys``) in step with it.

        Returns the version check: call it once the statements' results are in (after the
        pipeline they were sent in); it raises ``StaleLinkError`` when no row was written."""
        state = link.model_dump_json()
        if previous is None:
            cursor = self.conn.execute(
                INSERT_LINK,
                (
                    link.link_id,
                    link.tenant,
                    link.status.value,
                    link.hub_record_id,
                    link.version,
                    state,
                    link.created_at,
                    link.updated_at,
                ),
            )
        else:
            cursor = self.conn.execute(
                UPDATE_LINK,
                (
                    link.status.value,
                    link.hub_record_id,
                    link.version,
                    state,
                    link.updated_at,
                    link.link_id,
                    previous.version,
                ),
            )
        refs = {ref.identity for ref in link.member_refs()}
        before = {ref.identity for ref in previous.member_refs()} if previous else set()
        for tenant, system, resource, record_id in sorted(refs - before, key=str):
            self.conn.execute(UPSERT_MEMBER, (tenant, system, resource, record_id, link.link_id))
        for tenant, system, resource, record_id in sorted(before - refs, key=str):
            self.conn.execute(DELETE_MEMBER, (tenant, system, resource, record_id, link.link_id))
        keys = set(link_match_keys(link)) if link.status is not LinkStatus.MERGED else set()
        if previous is None or keys != set(link_match_keys(previous)):
            if previous is not None:
                self.conn.execute(DELETE_LINK_KEYS, (link.link_id,))
            kinds, values = split_match_keys(keys)
            if kinds:
                self.conn.execute(INSERT_LINK_KEYS, (link.tenant, link.link_id, kinds, values))

        def check() -> None:
            if cursor.rowcount != 1:
                raise StaleLinkError(f"link {link.link_id} changed concurrently")

        return check

    # -- candidates ---------------------------------------------------------------------------

    def candidates_for_keys(
        self, tenant: str, keys: Sequence[MatchKey]
    ) -> tuple[list[str], list[str]]:
        """Contact ids indexed under any of ``keys``, and links (``link_match_keys``)."""
        kinds, values = split_match_keys(keys)
        if not kinds:
            return [], []
        rows = self.conn.execute(
            CANDIDATES_FOR_KEYS, {"kinds": kinds, "values": values, "tenant": tenant}
        ).fetchall()
        contacts = sorted(str(i) for kind, i in rows if kind == "contact")
        links = sorted(str(i) for kind, i in rows if kind == "link")
        return contacts, links

    def contact_entries(
        self, tenant: str, contact_ids: Sequence[str]
    ) -> list[tuple[ContactIndexEntry, str | None]]:
        """Index entries of live contacts, each with the id of the link holding it (if any)."""
        if not contact_ids:
            return []
        rows = self.conn.execute(
            CONTACT_ENTRIES, (hub().system, hub().resource, tenant, list(contact_ids))
        ).fetchall()
        out: list[tuple[ContactIndexEntry, str | None]] = []
        for contact_id, props, revision, source_ts, other, keys, link_id in rows:
            entry = ContactIndexEntry(
                tenant=tenant,
                contact_id=contact_id,
                keys=tuple(MatchKey(str(k), str(v)) for k, v in json.loads(keys)),
                props=json.loads(props),
                revision=revision,
                source_ts=source_ts,
                has_other_items=bool(other),
            )
            out.append((entry, str(link_id) if link_id is not None else None))
        return out

    # -- the contact index and last-known records ---------------------------------------------

    def upsert_contact(
        self, entry: ContactIndexEntry, record: Mapping[str, Any] | None, now: datetime
    ) -> None:
        """Upsert an index entry and its keys unless it is older than the stored one."""
        kinds, values = split_match_keys(entry.keys)
        self._execute(
            UPSERT_CONTACT,
            {
                "tenant": entry.tenant,
                "contact_id": entry.contact_id,
                "props": json_text(entry.props),
                "revision": entry.revision,
                "source_ts": entry.source_ts,
                "other": entry.has_other_items,
                "record": json_text(record) if record is not None else None,
                "now": now,
                "kinds": kinds,
                "values": values,
            },
        )

    def delete_contact(
        self, tenant: str, contact_id: str, source_ts: datetime | None, now: datetime
    ) -> None:
        """Drop a contact from the index, leaving a tombstone (see ``UPSERT_CONTACT``)."""
        self._execute(TOMBSTONE_CONTACT, (tenant, contact_id, source_ts, now))
        self._execute(DELETE_CONTACT_KEYS, (tenant, contact_id))

    def contact_record(self, tenant: str, contact_id: str) -> ContactRecord | None:
        row = self.conn.execute(CONTACT_RECORD, (tenant, contact_id)).fetchone()
        if row is None:
            return None
        record = json.loads(row[0]) if row[0] is not None else None
        return ContactRecord(record=record, revision=row[1], source_ts=row[2])

    def upsert_record(
        self,
        ref: RecordRef,
        record: Mapping[str, Any],
        source_ts: datetime | None,
        now: datetime,
    ) -> None:
        """Remember the last observed full record (not replaced by an older one)."""
        assert ref.id is not None
        text = json_text(record)
        if self.defer:
            identity = (ref.tenant, ref.system, ref.resource, ref.id)
            known = self._records.get(identity)
            if known is None or not_older(source_ts, known[1]):
                self._records[identity] = (text, source_ts)
        self._write(
            UPSERT_RECORD, (ref.tenant, ref.system, ref.resource, ref.id, text, source_ts, now)
        )

    def record(
        self, tenant: str, system: str, resource: str, record_id: str
    ) -> dict[str, Any] | None:
        """The last observed full record (a deferred one if it is not older than the stored)."""
        row = self.conn.execute(SELECT_RECORD, (tenant, system, resource, record_id)).fetchone()
        text = str(row[0]) if row is not None else None
        mine = self._records.get((tenant, system, resource, record_id))
        if mine is not None and (row is None or not_older(mine[1], row[1])):
            text = mine[0]
        if text is None:
            return None
        value = json.loads(text)
        return value if isinstance(value, dict) else None

    # -- decision outputs ---------------------------------------------------------------------

    def upsert_review(self, item: ReviewItem) -> None:
        ref = item.record
        self._execute(
            UPSERT_REVIEW,
            (
                item.review_id,
                item.tenant,
                item.reason.value,
                item.detail,
                ref.system if ref else None,
                ref.resource if ref else None,
                ref.id if ref else None,
                item.link_id,
                item.property,
                json_text(list(item.candidates)),
                item.at,
                item.at,
            ),
        )

    def add_review(
        self,
        review_id: str,
        tenant: str,
        reason: str,
        detail: str,
        ref: RecordRef | None,
        link_id: str | None,
        at: datetime,
    ) -> None:
        """A review row raised by the shell itself (e.g. the mass-delete breaker)."""
        self._execute(
            UPSERT_REVIEW,
            (
                review_id,
                tenant,
                reason,
                detail,
                ref.system if ref else None,
                ref.resource if ref else None,
                ref.id if ref else None,
                link_id,
                None,
                "[]",
                at,
                at,
            ),
        )

    def resolve_reviews(
        self, ref: RecordRef, reasons: Sequence[str], resolution: str, now: datetime
    ) -> None:
        self._write(
            RESOLVE_REVIEWS,
            (now, resolution, ref.tenant, ref.system, ref.resource, ref.id, list(reasons)),
        )

    def insert_conflict(self, conflict: Conflict) -> None:
        self._execute(
            INSERT_CONFLICT,
            (
                conflict.conflict_id,
                conflict.tenant,
                conflict.link_id,
                conflict.property,
                conflict.kind,
                conflict.rule,
                conflict.winner.model_dump_json(),
                json_text([side.model_dump(mode="json") for side in conflict.losers]),
                f"{conflict.cause.kind}:{conflict.cause.id}",
                conflict.at,
            ),
        )

    def add_history(
        self,
        *,
        tenant: str,
        link_id: str | None,
        ref: tuple[str, str, str | None] | None,
        source: str,
        event_id: str | None,
        command_id: str | None,
        decision: str,
        reason: str | None,
        commands: int,
        error_code: str | None,
        error_message: str | None,
        at: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """A history row; ``fields``: property -> {before, after} of what the decision changed
        (personal data: read by the authenticated console only, never logged)."""
        system, resource, record_id = ref if ref is not None else (None, None, None)
        self._write(
            INSERT_HISTORY,
            (
                tenant,
                link_id,
                system,
                resource,
                record_id,
                source,
                event_id,
                command_id,
                decision,
                reason,
                commands,
                error_code,
                # an error text may quote input: PostgreSQL text cannot hold NUL (NUL rule)
                error_message.replace("\x00", "")[:500] if error_message else None,
                at,
                json_text(fields) if fields else None,
            ),
        )

    # -- maintenance / gauges -----------------------------------------------------------------

    def link_states(self) -> dict[tuple[str, str], int]:
        """(tenant, link state) -> links, every tenant (``creating``: active without hub)."""
        rows = self.conn.execute(LINK_STATES).fetchall()
        return {(str(t), str(s)): int(n) for t, s, n in rows}

    def open_reviews(self) -> dict[tuple[str, str], int]:
        """(tenant, reason) -> open review items, every tenant."""
        rows = self.conn.execute(OPEN_REVIEWS).fetchall()
        return {(str(t), str(r)): int(n) for t, r, n in rows}

    def trim_history(self, keep: int) -> int:
        return self.conn.execute(TRIM_HISTORY, (keep,)).rowcount
