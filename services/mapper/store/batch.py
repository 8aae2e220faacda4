"""The set-based store of one batch (the loop's fast path): ``BatchStore``.

A batch's reads are a constant number of statements (all keys locked in one, all candidates in
one, all contact rows in one, ...), the handler's per-input reads are answered from memory (the
rows read, overlaid with the batch's own writes), and every write is buffered and sent at the
end in one pipeline — links, members and link keys as ``unnest`` statements with the version
check inside the ``UPDATE`` (``StaleLinkError`` when a link is missing from its ``RETURNING``),
the contact index, records, reviews, conflicts, outbox and history rows as the ``*_SET`` forms
of their per-row statements (``_SET_FORMS``). See ``BatchStore`` and docs/mapper.md "A batch".
Locks are taken in the per-input order (``links``): keys, then contacts, advisory before row.

Arrays are sent in binary (``%b``): psycopg's text format escapes every element in Python.

Imports: psycopg, the mapper's domain and the other store modules (it is the per-input
``MapperStore`` with its reads and writes batched) — nothing outside the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.mapper.domain import (
    ContactIndexEntry,
    Link,
    LinkStatus,
    MatchKey,
    hub,
    link_match_keys,
)
from services.mapper.store import MapperStore
from services.mapper.store.links import (
    ADVISORY_LOCKS,
    CONTACT_LOCK,
    CONTACT_NOT_OLDER,
    DELETE_CONTACT_KEYS,
    INSERT_CONFLICT,
    INSERT_HISTORY,
    KEY_LOCK,
    LINKS_BY_ID,
    LINKS_FOR_RECORDS,
    RESOLVE_REVIEWS,
    TOMBSTONE_CONTACT,
    UPSERT_CONTACT,
    UPSERT_RECORD,
    UPSERT_REVIEW,
    ContactRecord,
    StaleLinkError,
    json_text,
    not_older,
    split_match_keys,
)
from services.mapper.store.outbox import INSERT_OUTBOX, INSERT_OUTBOX_SET
from services.mapper.store.session import Conn

# -- set-based reads of one batch (each one statement for the whole batch) ----------------------
# Arrays are sent in binary (``%b``): the text format escapes every element (slow in Python
# for thousands of elements and for link states).

BATCH_CANDIDATES = """
WITH w AS MATERIALIZED (
    SELECT DISTINCT * FROM unnest(%b::text[], %b::text[], %b::text[]) AS x(tenant, kind, value)
)
SELECT w.tenant, w.kind, w.value, 'contact', ck.contact_id
FROM w JOIN mapper_contact_keys ck
  ON ck.tenant = w.tenant AND ck.kind = w.kind AND ck.value = w.value
UNION ALL
SELECT w.tenant, w.kind, w.value, 'link', lk.link_id
FROM w JOIN mapper_link_keys lk
  ON lk.tenant = w.tenant AND lk.kind = w.kind AND lk.value = w.value
"""
CONTACT_ROWS = """
SELECT c.tenant, c.contact_id, c.props::text, c.revision, c.source_ts, c.has_other_items,
       c.deleted, c.record::text,
       COALESCE((SELECT json_agg(json_build_array(k.kind, k.value) ORDER BY k.kind, k.value)
                 FROM mapper_contact_keys k
                 WHERE k.tenant = c.tenant AND k.contact_id = c.contact_id), '[]')::text,
       m.link_id
FROM (SELECT DISTINCT * FROM unnest(%b::text[], %b::text[]) AS x(tenant, contact_id)) AS w
JOIN mapper_contacts c ON c.tenant = w.tenant AND c.contact_id = w.contact_id
LEFT JOIN mapper_link_members m
       ON m.tenant = c.tenant AND m.system = %s AND m.resource = %s AND m.record_id = c.contact_id
"""
SELECT_RECORDS = """
SELECT r.tenant, r.system, r.resource, r.record_id, r.record::text, r.source_ts
FROM (SELECT DISTINCT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])
      AS x(tenant, system, resource, record_id)) AS w
JOIN mapper_records r
  ON r.tenant = w.tenant AND r.system = w.system AND r.resource = w.resource
 AND r.record_id = w.record_id
"""

# -- set-based link writes of one batch (version checks inside the statements) -----------------

INSERT_LINKS = """
INSERT INTO mapper_links
    (link_id, tenant, status, hub_record_id, version, state, created_at, updated_at)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::jsonb[],
                     %b::timestamptz[], %b::timestamptz[])
ON CONFLICT (link_id) DO NOTHING
RETURNING link_id
"""
UPDATE_LINKS = """
UPDATE mapper_links AS l
SET status = x.status, hub_record_id = x.hub_record_id, version = x.version, state = x.state,
    updated_at = x.updated_at
FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::jsonb[],
            %b::timestamptz[])
     AS x(link_id, expected, status, hub_record_id, version, state, updated_at)
WHERE l.link_id = x.link_id AND l.version = x.expected
RETURNING l.link_id
"""
#: A NULL link id deletes the row whatever link it names (the batch itself put it there).
DELETE_MEMBERS = """
DELETE FROM mapper_link_members AS m
USING unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
      AS x(tenant, system, resource, record_id, link_id)
WHERE m.tenant = x.tenant AND m.system = x.system AND m.resource = x.resource
  AND m.record_id = x.record_id AND (x.link_id IS NULL OR m.link_id = x.link_id)
"""
UPSERT_MEMBERS = """
INSERT INTO mapper_link_members (tenant, system, resource, record_id, link_id)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
ON CONFLICT (tenant, system, resource, record_id) DO UPDATE SET link_id = EXCLUDED.link_id
"""
DELETE_KEYS_OF_LINKS = "DELETE FROM mapper_link_keys WHERE link_id = ANY(%b::text[])"
INSERT_KEYS_OF_LINKS = """
INSERT INTO mapper_link_keys (tenant, kind, value, link_id)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])
ON CONFLICT DO NOTHING
"""

# -- set forms of the per-row writes (``links``): the same rules over ``unnest`` arrays ----------
# (the outbox's is ``outbox.INSERT_OUTBOX_SET``, next to ``INSERT_OUTBOX``)

#: ``RESOLVE_REVIEWS`` for many records at once (one reasons list; the first resolution of a
#: record wins, as it would one statement after another).
RESOLVE_REVIEWS_SET = """
UPDATE mapper_review_items AS r SET resolved_at = x.at, resolution = x.resolution
FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
     AS x(at, resolution, tenant, system, resource, record_id)
WHERE r.tenant = x.tenant AND r.system = x.system AND r.resource = x.resource
  AND r.record_id = x.record_id AND r.reason = ANY(%b::text[]) AND r.resolved_at IS NULL
"""
#: ``UPSERT_CONTACT`` for many contacts (each at most once: ``BatchStore`` sends a contact's
#: second upsert in the next statement). ``wanted`` holds every upserted contact's keys; the rows
#: the ``WHERE`` turned down are not in ``up``, so their keys stay as they are.
UPSERT_CONTACTS_SET = f"""
WITH x AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::jsonb[], %b::bigint[], %b::timestamptz[],
                         %b::boolean[], %b::jsonb[], %b::timestamptz[])
        AS x(tenant, contact_id, props, revision, source_ts, other, record, now)
), up AS (
    INSERT INTO mapper_contacts AS c
        (tenant, contact_id, props, revision, source_ts, has_other_items, record, deleted,
         updated_at)
    SELECT tenant, contact_id, props, revision, source_ts, other, record, false, now FROM x
{CONTACT_NOT_OLDER}
    RETURNING c.tenant, c.contact_id
), wanted AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])
        AS w(tenant, contact_id, kind, value)
), dropped AS (
    -- NOT IN (a hashed subplan): the kept keys are looked up, never compared pairwise.
    DELETE FROM mapper_contact_keys ck USING up
    WHERE ck.tenant = up.tenant AND ck.contact_id = up.contact_id
      AND (ck.tenant, ck.contact_id, ck.kind, ck.value) NOT IN (
          SELECT tenant, contact_id, kind, value FROM wanted)
)
INSERT INTO mapper_contact_keys (tenant, kind, value, contact_id)
SELECT w.tenant, w.kind, w.value, w.contact_id
FROM wanted w JOIN up ON up.tenant = w.tenant AND up.contact_id = w.contact_id
ON CONFLICT DO NOTHING
"""
#: ``UPSERT_RECORD`` for many records (each at most once per statement).
UPSERT_RECORDS_SET = """
INSERT INTO mapper_records AS r (tenant, system, resource, record_id, record, source_ts, updated_at)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::jsonb[],
                     %b::timestamptz[], %b::timestamptz[])
ON CONFLICT (tenant, system, resource, record_id) DO UPDATE SET
    record = EXCLUDED.record, source_ts = EXCLUDED.source_ts, updated_at = EXCLUDED.updated_at
WHERE r.source_ts IS NULL OR EXCLUDED.source_ts IS NULL OR EXCLUDED.source_ts >= r.source_ts
"""
#: ``UPSERT_REVIEW`` for many review items (each at most once per statement).
UPSERT_REVIEWS_SET = """
INSERT INTO mapper_review_items AS r
    (review_id, tenant, reason, detail, system, resource, record_id, link_id, property,
     candidates, first_seen, last_seen)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                     %b::text[], %b::text[], %b::text[], %b::jsonb[], %b::timestamptz[],
                     %b::timestamptz[])
ON CONFLICT (review_id) DO UPDATE SET
    detail = EXCLUDED.detail, link_id = COALESCE(EXCLUDED.link_id, r.link_id),
    candidates = EXCLUDED.candidates, last_seen = EXCLUDED.last_seen,
    resolved_at = NULL, resolution = NULL
"""
#: ``INSERT_CONFLICT`` for many conflicts.
INSERT_CONFLICTS_SET = """
INSERT INTO mapper_conflicts
    (conflict_id, tenant, link_id, property, kind, rule, winner, losers, cause, at)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                     %b::jsonb[], %b::jsonb[], %b::text[], %b::timestamptz[])
ON CONFLICT (conflict_id) DO NOTHING
"""
#: ``INSERT_HISTORY`` for many rows, ``id`` assigned in the given order.
INSERT_HISTORY_SET = """
INSERT INTO mapper_history
    (tenant, link_id, system, resource, record_id, source, event_id, command_id, decision,
     reason, commands, error_code, error_message, at, fields)
SELECT tenant, link_id, system, resource, record_id, source, event_id, command_id, decision,
       reason, commands, error_code, error_message, at, fields
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
            %b::text[], %b::text[], %b::text[], %b::int[], %b::text[], %b::text[],
            %b::timestamptz[], %b::jsonb[])
     WITH ORDINALITY
     AS x(tenant, link_id, system, resource, record_id, source, event_id, command_id, decision,
          reason, commands, error_code, error_message, at, fields, n)
ORDER BY n
"""


Identity = tuple[str, str, str, str]
KeyRef = tuple[str, str, str]
"""(tenant, kind, value) of a match key."""

#: The table each buffered write goes to: writes to one table keep their order; tables are
#: independent of each other (link rows go first: members and keys reference them).
_TABLE_OF = {
    UPSERT_CONTACT: "contacts",
    TOMBSTONE_CONTACT: "contacts",
    DELETE_CONTACT_KEYS: "contacts",
    UPSERT_RECORD: "records",
    UPSERT_REVIEW: "reviews",
    RESOLVE_REVIEWS: "reviews",
    INSERT_CONFLICT: "conflicts",
    INSERT_OUTBOX: "outbox",
    INSERT_HISTORY: "history",
}


def split_waves(rows: Sequence[Any], key: Callable[[Any], Hashable]) -> list[list[Any]]:
    """Split rows, kept in order, into waves without two rows of one key: a key's first row
    goes to the first wave, its second to the second... Sent wave after wave, the rows of each
    key are applied in their order (rows of different keys are independent), as one statement
    per row would apply them — and an ``ON CONFLICT DO UPDATE`` never meets a row twice. Pure."""
    waves: list[list[Any]] = []
    seen: dict[Hashable, int] = {}
    for row in rows:
        k = key(row)
        wave = seen.get(k, -1) + 1
        seen[k] = wave
        if wave == len(waves):
            waves.append([])
        waves[wave].append(row)
    return waves


@dataclass(frozen=True)
class _SetForm:
    """The set-based form of a per-row statement: ``params`` turns rows (each the per-row
    statement's parameters) into the set statement's; rows with one ``key`` never share a
    statement (``split_waves``); None: the statement inserts and never updates (serials are
    assigned in row order)."""

    statement: str
    params: Callable[[list[Any]], list[Any]]
    key: Callable[[Any], Hashable] | None = None


def _contact_params(rows: list[dict[str, Any]]) -> list[Any]:
    contacts = [
        (
            r["tenant"],
            r["contact_id"],
            r["props"],
            r["revision"],
            r["source_ts"],
            r["other"],
            r["record"],
            r["now"],
        )
        for r in rows
    ]
    keys = [
        (r["tenant"], r["contact_id"], kind, value)
        for r in rows
        for kind, value in zip(r["kinds"], r["values"], strict=True)
    ]
    return [*_columns(contacts, 8), *_columns(keys, 4)]


def _width(width: int) -> Callable[[list[Any]], list[Any]]:
    return lambda rows: _columns(rows, width)


#: Per-row statement -> its set form (the others go as ``executemany``, or ``RESOLVE_REVIEWS_SET``).
_SET_FORMS: dict[str, _SetForm] = {
    UPSERT_CONTACT: _SetForm(
        UPSERT_CONTACTS_SET, _contact_params, lambda r: (r["tenant"], r["contact_id"])
    ),
    UPSERT_RECORD: _SetForm(UPSERT_RECORDS_SET, _width(7), lambda r: tuple(r[:4])),
    UPSERT_REVIEW: _SetForm(UPSERT_REVIEWS_SET, _width(12), lambda r: r[0]),
    INSERT_CONFLICT: _SetForm(INSERT_CONFLICTS_SET, _width(10), lambda r: r[0]),
    INSERT_HISTORY: _SetForm(INSERT_HISTORY_SET, _width(15)),
    INSERT_OUTBOX: _SetForm(INSERT_OUTBOX_SET, _width(13)),
}


@dataclass(frozen=True)
class _Contact:
    """A contact index row as this batch sees it (the stored row, then the batch's writes)."""

    props: dict[str, Any]
    revision: int | None
    source_ts: datetime | None
    other: bool
    deleted: bool
    record: str | None
    keys: tuple[MatchKey, ...]
    """Sorted by (kind, value), as ``CONTACT_ENTRIES`` returns them."""


def _accepts(row: _Contact, entry: ContactIndexEntry) -> bool:
    """``UPSERT_CONTACT``'s "not older" condition, for the batch's in-memory index."""
    if row.deleted:
        return (
            row.source_ts is not None
            and entry.source_ts is not None
            and entry.source_ts > row.source_ts
        )
    if row.revision is not None and entry.revision is not None:
        return entry.revision >= row.revision
    if row.source_ts is not None and entry.source_ts is not None:
        return entry.source_ts >= row.source_ts
    return True


def _greatest(left: datetime | None, right: datetime | None) -> datetime | None:
    """PostgreSQL's ``GREATEST`` (NULLs ignored)."""
    if left is None or right is None:
        return right if left is None else left
    return max(left, right)


def _link_keys(link: Link) -> frozenset[KeyRef]:
    if link.status is LinkStatus.MERGED:
        return frozenset()
    return frozenset((link.tenant, k[0], k[1]) for k in link_match_keys(link))


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


class BatchStore(MapperStore):
    """The store of one batch on the fast path: set-based reads, buffered set-based writes.

    Reads: ``lock_batch`` takes the advisory locks of all the batch's match keys and contacts
    in one statement; ``load_keys``, ``load_contacts``, ``links_for_records``, ``links_by_id``
    and ``load_records`` each read what the whole batch needs in one statement. The handler's
    per-input reads (``candidates_for_keys``, ``contact_entries``, ``link_for_record``,
    ``contact_record``, ``record``, ...) are then answered from memory: the rows as stored,
    overlaid with what this batch wrote before (applying the statements' own rules: a contact
    upsert only when not older, member upsert/delete, link match keys). Something not loaded
    up front is read on demand (correct, one more round trip).

    Writes are buffered and sent by ``flush`` in one pipeline: every saved link once, in its
    final state, by one ``INSERT ... unnest`` and one ``UPDATE ... FROM unnest`` whose
    ``WHERE version = expected`` is the optimistic check (a link missing from ``RETURNING``
    raises ``StaleLinkError``); the member index and link keys as set differences (one
    statement each); the other tables' writes in their original order, each run of one
    statement as its set form (``_SET_FORMS``: the same rules over ``unnest`` arrays; a key met
    twice in a run goes to a second statement, ``split_waves``), else as one ``executemany``.
    A version conflict between two saves of one link within the batch raises
    ``StaleLinkError`` from ``save_link``'s check, as the per-input store would.

    The caller must hold the link rows it saves (``FOR UPDATE``, as the loaders here take
    them) and must not use a ``BatchStore`` for more than one transaction.
    """

    batched = True

    def __init__(self, conn: Conn) -> None:
        super().__init__(conn, defer=True)
        self._ops: list[tuple[str, str, Any]] = []
        self._held: set[tuple[int, str]] = set()
        self._links: dict[str, Link] = {}
        self._absent_links: set[str] = set()
        self._saved: dict[str, tuple[Link | None, Link]] = {}
        """link id -> (the link as stored before the batch or None, its latest state)."""
        self._db_members: dict[Identity, str | None] = {}
        self._members: dict[Identity, str | None] = {}
        self._member_set: set[Identity] = set()
        self._removed_from: dict[Identity, str] = {}
        self._db_keys: dict[KeyRef, tuple[set[str], set[str]]] = {}
        self._db_contacts: dict[tuple[str, str], _Contact | None] = {}
        self._contacts: dict[tuple[str, str], _Contact] = {}
        self._contact_keys: dict[KeyRef, set[str]] = {}
        self._link_keys: dict[KeyRef, set[str]] = {}
        self._keys_of_link: dict[str, frozenset[KeyRef]] = {}
        self._db_records: dict[Identity, tuple[str, datetime | None] | None] = {}
        self._entries: dict[tuple[str, str], tuple[_Contact, ContactIndexEntry]] = {}
        self.statements = 0
        """Statements sent (reads, lock statements, and the flush's: an ``executemany`` counts
        one per row)."""

    def pipeline(self) -> AbstractContextManager[Any]:
        return nullcontext()  # nothing is sent per decision

    def _execute(self, statement: str, params: Any) -> None:
        self._ops.append((_TABLE_OF.get(statement, "other"), statement, params))

    def _write(self, statement: str, params: Any) -> None:
        self._execute(statement, params)

    def _query(self, statement: str, params: Any) -> list[tuple[Any, ...]]:
        self.statements += 1
        return self.conn.execute(statement, params).fetchall()

    # -- locks --------------------------------------------------------------------------------

    def lock_batch(self, keys: Iterable[KeyRef], contacts: Iterable[tuple[str, str]]) -> None:
        """Advisory locks on every key, then every contact, not held yet: one statement."""
        wanted = {(KEY_LOCK, f"{t}\x1f{k}\x1f{v}") for t, k, v in keys}
        wanted |= {(CONTACT_LOCK, f"{t}\x1f{c}") for t, c in contacts}
        wanted -= self._held
        if not wanted:
            return
        todo = sorted(wanted)
        if todo:
            self._query(ADVISORY_LOCKS, ([c for c, _ in todo], [v for _, v in todo]))
            self._held.update(todo)

    def lock(
        self, tenant: str, keys: Iterable[MatchKey] = (), contacts: Iterable[str] = ()
    ) -> None:
        self.lock_batch([(tenant, k[0], k[1]) for k in keys], [(tenant, c) for c in contacts])

    # -- bulk loads ---------------------------------------------------------------------------

    def load_keys(self, keys: Iterable[KeyRef]) -> tuple[set[tuple[str, str]], set[str]]:
        """Contacts and links indexed under these keys as stored (one statement for the keys
        not loaded yet): ``({(tenant, contact_id)}, {link_id})``."""
        keys = set(keys)
        self._ensure_keys(keys)
        contacts: set[tuple[str, str]] = set()
        links: set[str] = set()
        for key in keys:
            stored_contacts, stored_links = self._db_keys[key]
            contacts.update((key[0], c) for c in stored_contacts)
            links.update(stored_links)
        return contacts, links

    def _ensure_keys(self, keys: Iterable[KeyRef]) -> None:
        missing = sorted({k for k in keys if k not in self._db_keys})
        if missing:
            rows = self._query(BATCH_CANDIDATES, _columns(missing, 3))
            for key in missing:
                self._db_keys[key] = (set(), set())
            for tenant, kind, value, what, found in rows:
                entry = self._db_keys[(str(tenant), str(kind), str(value))]
                (entry[0] if what == "contact" else entry[1]).add(str(found))

    def load_contacts(self, contacts: Iterable[tuple[str, str]]) -> None:
        """The stored index rows (tombstones too) and the link holding each (one statement)."""
        missing = sorted({c for c in contacts if c not in self._db_contacts})
        if not missing:
            return
        rows = self._query(CONTACT_ROWS, [*_columns(missing, 2), hub().system, hub().resource])
        for key in missing:
            self._db_contacts[key] = None
        for tenant, cid, props, revision, source_ts, other, deleted, record, keys, owner in rows:
            key = (str(tenant), str(cid))
            self._db_contacts[key] = _Contact(
                props=json.loads(props),
                revision=revision,
                source_ts=source_ts,
                other=bool(other),
                deleted=bool(deleted),
                record=str(record) if record is not None else None,
                keys=tuple(MatchKey(str(k), str(v)) for k, v in json.loads(keys)),
            )
            identity = (key[0], hub().system, hub().resource, key[1])
            self._db_members[identity] = str(owner) if owner is not None else None

    def load_records(self, identities: Iterable[Identity]) -> None:
        """Last observed member records (one statement for those not loaded yet)."""
        missing = sorted({i for i in identities if i not in self._db_records})
        if not missing:
            return
        rows = self._query(SELECT_RECORDS, _columns(missing, 4))
        for identity in missing:
            self._db_records[identity] = None
        for tenant, system, resource, record_id, record, source_ts in rows:
            self._db_records[(str(tenant), str(system), str(resource), str(record_id))] = (
                str(record),
                source_ts,
            )

    def links_for_records(
        self, identities: Iterable[tuple[str, str, str, str]]
    ) -> dict[Identity, Link]:
        wanted = sorted(set(identities))
        missing = [i for i in wanted if i not in self._db_members and i not in self._members]
        if missing:
            rows = self._query(LINKS_FOR_RECORDS, _columns(missing, 4))
            for identity in missing:
                self._db_members[identity] = None
            for tenant, system, resource, record_id, state in rows:
                link = Link.model_validate_json(state)
                self._links.setdefault(link.link_id, link)
                self._db_members[(str(tenant), str(system), str(resource), str(record_id))] = (
                    link.link_id
                )
        out: dict[Identity, Link] = {}
        owners = {i: self._owner(i) for i in wanted}
        self.links_by_id(o for o in owners.values() if o is not None)
        for identity, owner in owners.items():
            if owner is not None and owner in self._links:
                out[identity] = self._links[owner]
        return out

    def links_by_id(self, link_ids: Iterable[str]) -> dict[str, Link]:
        ids = sorted(set(link_ids))
        missing = [i for i in ids if i not in self._links and i not in self._absent_links]
        if missing:
            for (state,) in self._query(LINKS_BY_ID, (missing,)):
                link = Link.model_validate_json(state)
                self._links.setdefault(link.link_id, link)
            self._absent_links.update(i for i in missing if i not in self._links)
        return {i: self._links[i] for i in ids if i in self._links}

    # -- reads answered from memory -----------------------------------------------------------

    def _owner(self, identity: Identity) -> str | None:
        if identity in self._members:
            return self._members[identity]
        if identity not in self._db_members:
            self.links_for_records([identity])
        return self._db_members.get(identity)

    def link_for_record(
        self, tenant: str, system: str, resource: str, record_id: str
    ) -> Link | None:
        owner = self._owner((tenant, system, resource, record_id))
        return self.links_by_id([owner]).get(owner) if owner is not None else None

    def link_id_for_record(
        self, tenant: str, system: str, resource: str, record_id: str
    ) -> str | None:
        return self._owner((tenant, system, resource, record_id))

    def read_link(self, link_id: str) -> Link | None:
        if link_id in self._links:
            return self._links[link_id]
        return super().read_link(link_id)

    def candidates_for_keys(
        self, tenant: str, keys: Sequence[MatchKey]
    ) -> tuple[list[str], list[str]]:
        refs = [(tenant, k, v) for k, v in zip(*split_match_keys(keys), strict=True)]
        if not refs:
            return [], []
        self._ensure_keys(refs)
        contacts: set[str] = set()
        links: set[str] = set()
        for ref in refs:
            stored_contacts, stored_links = self._db_keys[ref]
            contacts.update(c for c in stored_contacts if (tenant, c) not in self._contacts)
            contacts.update(self._contact_keys.get(ref, ()))
            links.update(lid for lid in stored_links if lid not in self._saved)
            links.update(self._link_keys.get(ref, ()))
        return sorted(contacts), sorted(links)

    def _contact(self, key: tuple[str, str]) -> _Contact | None:
        if key in self._contacts:
            return self._contacts[key]
        if key not in self._db_contacts:
            self.load_contacts([key])
        return self._db_contacts[key]

    def contact_entries(
        self, tenant: str, contact_ids: Sequence[str]
    ) -> list[tuple[ContactIndexEntry, str | None]]:
        wanted = sorted(set(contact_ids))
        self.load_contacts((tenant, c) for c in wanted)
        out: list[tuple[ContactIndexEntry, str | None]] = []
        for contact_id in wanted:
            row = self._contact((tenant, contact_id))
            if row is None or row.deleted:
                continue
            out.append(
                (
                    self._entry(tenant, contact_id, row),
                    self._owner((tenant, hub().system, hub().resource, contact_id)),
                )
            )
        return out

    def _entry(self, tenant: str, contact_id: str, row: _Contact) -> ContactIndexEntry:
        cached = self._entries.get((tenant, contact_id))
        if cached is not None and cached[0] is row:
            return cached[1]
        entry = ContactIndexEntry(
            tenant=tenant,
            contact_id=contact_id,
            keys=row.keys,
            props=row.props,
            revision=row.revision,
            source_ts=row.source_ts,
            has_other_items=row.other,
        )
        self._entries[(tenant, contact_id)] = (row, entry)
        return entry

    def contact_record(self, tenant: str, contact_id: str) -> ContactRecord | None:
        row = self._contact((tenant, contact_id))
        if row is None or row.deleted:
            return None
        record = json.loads(row.record) if row.record is not None else None
        return ContactRecord(record=record, revision=row.revision, source_ts=row.source_ts)

    def record(
        self, tenant: str, system: str, resource: str, record_id: str
    ) -> dict[str, Any] | None:
        identity = (tenant, system, resource, record_id)
        if identity not in self._db_records:
            self.load_records([identity])
        stored = self._db_records[identity]
        text = stored[0] if stored is not None else None
        mine = self._records.get(identity)
        if mine is not None and (stored is None or not_older(mine[1], stored[1])):
            text = mine[0]
        if text is None:
            return None
        value = json.loads(text)
        return value if isinstance(value, dict) else None

    # -- writes (buffered; the in-memory view follows them) -----------------------------------

    def save_link(self, link: Link, previous: Link | None) -> Callable[[], None]:
        link_id = link.link_id
        stale = False
        if link_id in self._saved:
            original, latest = self._saved[link_id]
            # What the stored row's version check would say after this batch's earlier saves.
            stale = previous is None or previous.version != latest.version
            self._saved[link_id] = (original, link)
        else:
            self._saved[link_id] = (previous, link)
        self._links[link_id] = link
        refs = {ref.identity for ref in link.member_refs()}
        before = {ref.identity for ref in previous.member_refs()} if previous else set()
        for identity in refs - before:
            assert identity[3] is not None
            member = (identity[0], identity[1], identity[2], identity[3])
            self._members[member] = link_id
            self._member_set.add(member)
        for identity in before - refs:
            assert identity[3] is not None
            member = (identity[0], identity[1], identity[2], identity[3])
            if self._owner(member) == link_id:  # DELETE_MEMBER ... AND link_id = this link
                self._members[member] = None
                self._removed_from[member] = link_id
        keys = _link_keys(link)
        for ref in self._keys_of_link.get(link_id, frozenset()):
            self._link_keys[ref].discard(link_id)
        for ref in keys:
            self._link_keys.setdefault(ref, set()).add(link_id)
        self._keys_of_link[link_id] = keys

        def check() -> None:
            if stale:
                raise StaleLinkError(f"link {link_id} changed concurrently")

        return check

    def _set_contact(self, key: tuple[str, str], row: _Contact) -> None:
        old = self._contacts.get(key)
        if old is not None and not old.deleted:
            for kind, value in old.keys:
                self._contact_keys[(key[0], kind, value)].discard(key[1])
        if not row.deleted:
            for kind, value in row.keys:
                self._contact_keys.setdefault((key[0], kind, value), set()).add(key[1])
        self._contacts[key] = row

    def upsert_contact(
        self, entry: ContactIndexEntry, record: Mapping[str, Any] | None, now: datetime
    ) -> None:
        key = (entry.tenant, entry.contact_id)
        row = self._contact(key)
        if row is None or _accepts(row, entry):
            text = json_text(record) if record is not None else None
            self._set_contact(
                key,
                _Contact(
                    props=dict(entry.props),
                    revision=entry.revision,
                    source_ts=entry.source_ts,
                    other=entry.has_other_items,
                    deleted=False,
                    record=text if text is not None else (row.record if row else None),
                    keys=tuple(
                        MatchKey(k, v) for k, v in zip(*split_match_keys(entry.keys), strict=True)
                    ),
                ),
            )
        super().upsert_contact(entry, record, now)  # sent anyway: the statement decides again

    def delete_contact(
        self, tenant: str, contact_id: str, source_ts: datetime | None, now: datetime
    ) -> None:
        key = (tenant, contact_id)
        row = self._contact(key)
        self._set_contact(
            key,
            _Contact(
                props={},
                revision=None,
                source_ts=_greatest(row.source_ts, source_ts) if row else source_ts,
                other=row.other if row else False,
                deleted=True,
                record=None,
                keys=(),
            ),
        )
        super().delete_contact(tenant, contact_id, source_ts, now)

    # -- flush --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send every buffered write in one pipeline; raise ``StaleLinkError`` when a link's
        stored version was not the one this batch loaded (the caller rolls back)."""
        inserts = [(o, f) for o, f in self._saved.values() if o is None]
        updates = [(o, f) for o, f in self._saved.values() if o is not None]
        checks: list[tuple[set[str], Any]] = []
        runs: list[tuple[str, list[Any]]] = []
        for table in dict.fromkeys(t for t, _, _ in self._ops):
            for _, statement, params in (op for op in self._ops if op[0] == table):
                if runs and runs[-1][0] == statement:
                    runs[-1][1].append(params)
                else:
                    runs.append((statement, [params]))
        if not (inserts or updates or runs):
            return
        with self.conn.pipeline():
            if inserts:
                cursor = self.conn.cursor()
                cursor.execute(INSERT_LINKS, _columns([self._insert_row(f) for _, f in inserts], 8))
                checks.append(({f.link_id for _, f in inserts}, cursor))
            if updates:
                rows = [self._update_row(o, f) for o, f in updates if o is not None]
                cursor = self.conn.cursor()
                cursor.execute(UPDATE_LINKS, _columns(rows, 7))
                checks.append(({f.link_id for _, f in updates}, cursor))
            self._send_members_and_keys()
            with self.conn.cursor() as cursor:
                sent = sum(self._send_run(cursor, statement, params) for statement, params in runs)
        self.statements += len(checks) + sent + 1
        for expected, cursor in checks:
            written = {str(r[0]) for r in cursor.fetchall()}
            if expected - written:
                raise StaleLinkError(f"{len(expected - written)} link(s) changed concurrently")
        self._ops.clear()
        self._saved.clear()
        self._records.clear()

    @staticmethod
    def _send_run(cursor: Any, statement: str, params: list[Any]) -> int:
        """One run of one statement, in order: set-based statements where the statement has a
        set form (``_SET_FORMS``; one per wave of distinct keys), else an ``executemany``
        (pipelined). Returns the number of statements sent."""
        form = _SET_FORMS.get(statement)
        if form is not None and len(params) > 1:
            waves = split_waves(params, form.key) if form.key is not None else [params]
            for wave in waves:
                cursor.execute(form.statement, form.params(wave))
            return len(waves)
        if (
            len(params) > 1
            and statement == RESOLVE_REVIEWS
            and len({tuple(p[6]) for p in params}) == 1
        ):
            first: dict[tuple[Any, ...], tuple[Any, ...]] = {}
            for row in params:
                first.setdefault(tuple(row[2:6]), tuple(row[:6]))
            cursor.execute(
                RESOLVE_REVIEWS_SET, [*_columns(list(first.values()), 6), list(params[0][6])]
            )
            return 1
        cursor.executemany(statement, params)
        return len(params)

    @staticmethod
    def _insert_row(link: Link) -> tuple[Any, ...]:
        return (
            link.link_id,
            link.tenant,
            link.status.value,
            link.hub_record_id,
            link.version,
            link.model_dump_json(),
            link.created_at,
            link.updated_at,
        )

    @staticmethod
    def _update_row(previous: Link, link: Link) -> tuple[Any, ...]:
        return (
            link.link_id,
            previous.version,
            link.status.value,
            link.hub_record_id,
            link.version,
            link.model_dump_json(),
            link.updated_at,
        )

    def _send_members_and_keys(self) -> None:
        deletes: list[tuple[str, str, str, str, str | None]] = []
        upserts: list[tuple[str, str, str, str, str]] = []
        for identity, owner in sorted(self._members.items()):
            if owner is not None:
                upserts.append((*identity, owner))
            elif identity in self._member_set:  # this batch put it in a link: it is gone now
                deletes.append((*identity, None))
            else:
                deletes.append((*identity, self._removed_from[identity]))
        if deletes:
            self.conn.execute(
                DELETE_MEMBERS,
                _columns(deletes, 5),
            )
        if upserts:
            self.conn.execute(UPSERT_MEMBERS, _columns(upserts, 5))
        changed: list[str] = []
        rows: list[tuple[str, str, str, str]] = []
        for link_id, (original, _) in self._saved.items():
            keys = self._keys_of_link[link_id]
            if original is not None:
                if keys == _link_keys(original):
                    continue
                changed.append(link_id)
            rows += [(t, k, v, link_id) for t, k, v in sorted(keys)]
        if changed:
            self.conn.execute(DELETE_KEYS_OF_LINKS, (changed,))
        if rows:
            self.conn.execute(INSERT_KEYS_OF_LINKS, _columns(rows, 4))
