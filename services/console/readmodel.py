"""The console's read model: SQL over the mapper's PostgreSQL tables, shaped for the API.

Everything here reads; nothing writes (an operator's change is an ``OperatorAction`` event the
mapper applies — ``services.console.actions``). The console uses its own SQL rather than the
mapper's store: the store is the mapper's write path and may change shape; the tables and their
columns (``services/mapper/migrations``) are the contract.

* :func:`overview` — per tenant: links by status, records per flow (PowerOffice resource) and
  link status, open review items by reason, conflicts (total, last 24 h), commands waiting in the
  outbox, links with a failed write or create, divergent links (``mapper_verification``), the
  mapper's consumed positions. Kafka-only figures (dead letters, lag, last poll) are added by
  ``services.console.kafkaview``.
* :func:`review_items`, :func:`conflicts`, :func:`links` — one page of a filtered list with
  **keyset pagination** (``cursor`` = the last row's sort key, opaque to callers): a page costs
  the same at row 100,000 as at row 1, and rows inserted meanwhile never shift pages.
* :func:`link_page` — one link: its members (observed / written / pending values), open review
  items, recent conflicts, commands, verification verdict;
* :func:`timeline` — the per-link timeline: every change seen from either side and the decision
  taken for it (with its reason and, when the mapper recorded them in ``mapper_history.fields``,
  the field-level before/after values), every command and its outcome, conflicts, review items
  opened and resolved, operator actions (with their audit row), the latest verification verdict
  — newest first, keyset-paginated.

Rows come back as JSON-ready dicts **with** personal data; ``services.console.privacy`` strips
it for callers without the operator role. Nothing here logs.

Search (:func:`links` ``q``): a link id or record id (any system) exactly, an e-mail or phone
number through the mapper's match-key index (``mapper_link_keys``: normalized exactly as the
mapper does), or a name: a case-insensitive substring of "first last" (served by the trigram
index of migrations 6 and 8 when it exists; a sequential scan otherwise).

The link's hub record id (``mapper_links.hub_record_id`` since migration 7; with the shipped
dataflow, the Wix contact) is still served as the API field ``wix_contact_id``: the API, the CLI
and their documentation (docs/console.md) keep their names.

Imports: standard library, psycopg, the core topics module and the mapper's pure domain
(normalization and property reading: ``services.mapper.domain``) only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from services.core.topics import RESOURCES
from services.mapper.domain.mappings import read_hub, read_member
from services.mapper.domain.normalize import normalize_email, normalize_phone

MAX_PAGE = 500
DEFAULT_PAGE = 50

#: What the name search (and its trigram index) is over: the link's agreed first and last name,
#: lower-cased — the column PostgreSQL generates from the link state (mapper migration 8).
NAME_EXPR = "l.search_name"

REVIEW_STATES = ("open", "resolved", "all")
LINK_STATES = ("active", "unlinked", "error", "merged")


class BadRequestError(ValueError):
    """A filter or cursor the read model cannot use (the API answers 400 with the message)."""


# ------------------------------------------------------------------------------------------------
# Cursors and pages
# ------------------------------------------------------------------------------------------------


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque keyset cursor: the last row's sort key."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kinds: Sequence[type]) -> list[Any] | None:
    """The sort key of ``cursor``, typed by ``kinds`` (``datetime``, ``str``, ``int``)."""
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("shape")
        out: list[Any] = []
        for value, kind in zip(raw, kinds, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(str(value)))
            elif kind is int:
                out.append(int(value))
            else:
                out.append(str(value))
        return out
    except (ValueError, TypeError) as exc:
        raise BadRequestError("invalid cursor") from exc


def page_size(limit: int | str | None, default: int = DEFAULT_PAGE) -> int:
    if limit in (None, ""):
        return default
    try:
        value = int(limit)
    except (TypeError, ValueError) as exc:
        raise BadRequestError("limit must be a number") from exc
    if not 1 <= value <= MAX_PAGE:
        raise BadRequestError(f"limit must be 1..{MAX_PAGE}")
    return value


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    limit: int

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor, "limit": self.limit}


def iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return None
    return value


def _rows(cursor: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: iso(v) for k, v in row.items()}


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def column_exists(conn: psycopg.Connection[Any], table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s)",
        (table, column),
    ).fetchone()
    return bool(row and row[0])


# ------------------------------------------------------------------------------------------------
# Overview
# ------------------------------------------------------------------------------------------------

OV_LINKS = "SELECT status, count(*) FROM mapper_links WHERE tenant = %s GROUP BY status"
OV_RECORDS = """
SELECT system, resource, count(*) FROM mapper_link_members WHERE tenant = %s
GROUP BY system, resource
"""
#: Only links not ``active`` are joined (few, through the status index); active = the rest.
OV_RECORDS_NOT_ACTIVE = """
SELECT m.system, m.resource, l.status, count(*)
FROM mapper_links l JOIN mapper_link_members m USING (link_id)
WHERE l.tenant = %s AND l.status = ANY(%s) GROUP BY m.system, m.resource, l.status
"""
OV_UNLINKED_RECORDS = """
SELECT system, resource, count(*) FROM mapper_records r WHERE tenant = %s
  AND NOT EXISTS (SELECT 1 FROM mapper_link_members m WHERE m.tenant = r.tenant
                  AND m.system = r.system AND m.resource = r.resource
                  AND m.record_id = r.record_id)
GROUP BY system, resource
"""
OV_REVIEWS = """
SELECT reason, count(*) FROM mapper_review_items
WHERE tenant = %s AND resolved_at IS NULL GROUP BY reason
"""
OV_CONFLICTS = """
SELECT count(*), count(*) FILTER (WHERE at >= %s) FROM mapper_conflicts WHERE tenant = %s
"""
OV_OUTBOX = """
SELECT count(*), min(created_at) FROM mapper_outbox
WHERE produced_at IS NULL AND tenant = %s
"""
# ``failed`` and ``in_flight``: columns generated from the link state, with partial indexes
# (mapper migration 8).
OV_FAILED = """
SELECT count(*) FROM (
    SELECT link_id FROM mapper_links WHERE tenant = %s AND status = 'error'
    UNION
    SELECT link_id FROM mapper_links WHERE tenant = %s AND status = 'active'
      AND failed
) failed
"""
OV_IN_FLIGHT = """
SELECT count(*) FROM mapper_links WHERE tenant = %s AND status = 'active' AND in_flight
"""
OV_VERIFICATION = """
SELECT status, count(*), max(verified_at) FROM mapper_verification
WHERE tenant = %s GROUP BY status
"""
OV_POSITIONS = """
SELECT group_id, topic, partition, next_offset, updated_at FROM mapper_positions
ORDER BY group_id, topic, partition
"""


def overview(
    conn: psycopg.Connection[Any], tenant: str, now: datetime | None = None
) -> dict[str, Any]:
    """The sync's state for one tenant from PostgreSQL (see the module docstring)."""
    now = now or datetime.now(UTC)
    links = {str(s): int(n) for s, n in conn.execute(OV_LINKS, (tenant,)).fetchall()}
    flows: dict[str, dict[str, Any]] = {}
    for system, resource, count in conn.execute(OV_RECORDS, (tenant,)).fetchall():
        flows[f"{system}/{resource}"] = {
            "system": system,
            "resource": resource,
            "records": int(count),
            "by_link_status": {"active": int(count)},
        }
    not_active = [s for s in LINK_STATES if s != "active"]
    for system, resource, status, count in conn.execute(
        OV_RECORDS_NOT_ACTIVE, (tenant, not_active)
    ).fetchall():
        entry = flows.get(f"{system}/{resource}")
        if entry is not None:
            entry["by_link_status"][str(status)] = int(count)
            entry["by_link_status"]["active"] -= int(count)
    for system, resource, count in conn.execute(OV_UNLINKED_RECORDS, (tenant,)).fetchall():
        entry = flows.setdefault(
            f"{system}/{resource}",
            {"system": system, "resource": resource, "records": 0, "by_link_status": {}},
        )
        entry["not_linked"] = int(count)
    reviews = {str(r): int(n) for r, n in conn.execute(OV_REVIEWS, (tenant,)).fetchall()}
    total_conflicts, recent_conflicts = conn.execute(
        OV_CONFLICTS, (now - timedelta(hours=24), tenant)
    ).fetchone() or (0, 0)
    outbox_count, oldest = conn.execute(OV_OUTBOX, (tenant,)).fetchone() or (0, None)
    failed = conn.execute(OV_FAILED, (tenant, tenant)).fetchone()
    in_flight = conn.execute(OV_IN_FLIGHT, (tenant,)).fetchone()
    verification: dict[str, int] = {}
    last_verified = None
    for status, count, at in conn.execute(OV_VERIFICATION, (tenant,)).fetchall():
        verification[str(status)] = int(count)
        last_verified = (
            at if last_verified is None or (at and at > last_verified) else last_verified
        )
    positions = [_json_row(r) for r in _rows(conn.execute(OV_POSITIONS))]
    return {
        "tenant": tenant,
        "at": now.isoformat(),
        "links": {"total": sum(links.values()), "by_status": links},
        "flows": sorted(flows.values(), key=lambda f: (f["system"], f["resource"])),
        "review_items": {"open": sum(reviews.values()), "by_reason": reviews},
        "conflicts": {"total": int(total_conflicts or 0), "last_24h": int(recent_conflicts or 0)},
        "commands": {
            "in_outbox": int(outbox_count or 0),
            "oldest_in_outbox": iso(oldest),
            "links_with_write_in_flight": int(in_flight[0]) if in_flight else 0,
            "links_failed": int(failed[0]) if failed else 0,
        },
        "verification": {
            "by_status": verification,
            "divergent": verification.get("divergent", 0),
            "last_verified_at": iso(last_verified),
        },
        "mapper_positions": positions,
    }


# ------------------------------------------------------------------------------------------------
# Review items
# ------------------------------------------------------------------------------------------------

REVIEW_COLUMNS = """review_id, tenant, reason, detail, system, resource, record_id, link_id,
    property, candidates, first_seen, last_seen, resolved_at, resolution"""


def review_items(
    conn: psycopg.Connection[Any],
    tenant: str,
    *,
    state: str = "open",
    reason: str | None = None,
    system: str | None = None,
    resource: str | None = None,
    q: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Page:
    """Review items, most recently seen first. ``q``: a record id, link id or review id."""
    if state not in REVIEW_STATES:
        raise BadRequestError(f"state must be one of {', '.join(REVIEW_STATES)}")
    where: list[sql.Composable] = [sql.SQL("tenant = %s")]
    args: list[Any] = [tenant]
    if state == "open":
        where.append(sql.SQL("resolved_at IS NULL"))
    elif state == "resolved":
        where.append(sql.SQL("resolved_at IS NOT NULL"))
    for column, value in (("reason", reason), ("system", system), ("resource", resource)):
        if value:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            args.append(value)
    if q:
        where.append(sql.SQL("(record_id = %s OR link_id = %s OR review_id = %s)"))
        args += [q, q, q]
    after = decode_cursor(cursor, (datetime, str))
    if after is not None:
        where.append(sql.SQL("(last_seen, review_id) < (%s, %s)"))
        args += after
    query = sql.SQL(
        "SELECT {cols} FROM mapper_review_items WHERE {where} "
        "ORDER BY last_seen DESC, review_id DESC LIMIT %s"
    ).format(cols=sql.SQL(REVIEW_COLUMNS), where=sql.SQL(" AND ").join(where))
    rows = _rows(conn.execute(query, [*args, limit + 1]))
    return _page(rows, limit, lambda r: (r["last_seen"], r["review_id"]), _review)


def _review(row: Mapping[str, Any]) -> dict[str, Any]:
    item = _json_row(row)
    item["status"] = "resolved" if row["resolved_at"] is not None else "open"
    return item


def review_item(
    conn: psycopg.Connection[Any], tenant: str, review_id: str
) -> dict[str, Any] | None:
    """One review item with its candidates' contacts (what the mapper knows of each)."""
    rows = _rows(
        conn.execute(
            f"SELECT {REVIEW_COLUMNS} FROM mapper_review_items "
            "WHERE tenant = %s AND review_id = %s",
            (tenant, review_id),
        )
    )
    if not rows:
        return None
    item = _review(rows[0])
    candidates = [str(c) for c in rows[0]["candidates"] or []]
    contacts = {
        str(r["contact_id"]): r
        for r in _rows(
            conn.execute(
                "SELECT c.contact_id, c.props, c.deleted, c.updated_at, l.link_id, l.status "
                "FROM mapper_contacts c LEFT JOIN mapper_links l "
                "ON l.tenant = c.tenant AND l.hub_record_id = c.contact_id "
                "AND l.status <> 'merged' "
                "WHERE c.tenant = %s AND c.contact_id = ANY(%s)",
                (tenant, candidates),
            )
        )
    }
    item["candidate_contacts"] = [
        {
            "contact_id": cid,
            "known": cid in contacts,
            "props": (contacts[cid]["props"] or {}) if cid in contacts else {},
            "deleted": bool(contacts[cid]["deleted"]) if cid in contacts else None,
            "link_id": contacts[cid]["link_id"] if cid in contacts else None,
            "link_status": contacts[cid]["status"] if cid in contacts else None,
        }
        for cid in candidates
    ]
    record = None
    if item["system"] and item["record_id"]:
        found = conn.execute(
            "SELECT record, source_ts FROM mapper_records "
            "WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s",
            (tenant, item["system"], item["resource"], item["record_id"]),
        ).fetchone()
        if found is not None:
            record = {
                "record": found[0],
                "source_ts": iso(found[1]),
                "props": _props_of(str(item["system"]), str(item["resource"]), found[0]),
            }
    item["record"] = record
    return item


def _props_of(system: str, resource: str, record: Any) -> dict[str, Any]:
    """The mapped properties of a raw record (what the mapper compares), {} when unreadable."""
    try:
        if system == "wix":
            return dict(read_hub(record))
        return dict(read_member(resource, record))
    except Exception:  # a resource without a flow, a malformed record: show the raw record only
        return {}


# ------------------------------------------------------------------------------------------------
# Conflicts
# ------------------------------------------------------------------------------------------------


def conflicts(
    conn: psycopg.Connection[Any],
    tenant: str,
    *,
    property_name: str | None = None,
    kind: str | None = None,
    link_id: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Page:
    """Conflicts, newest first."""
    where: list[sql.Composable] = [sql.SQL("tenant = %s")]
    args: list[Any] = [tenant]
    for column, value in (("property", property_name), ("kind", kind), ("link_id", link_id)):
        if value:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            args.append(value)
    after = decode_cursor(cursor, (datetime, str))
    if after is not None:
        where.append(sql.SQL("(at, conflict_id) < (%s, %s)"))
        args += after
    query = sql.SQL(
        "SELECT conflict_id, tenant, link_id, property, kind, rule, winner, losers, cause, at "
        "FROM mapper_conflicts WHERE {where} ORDER BY at DESC, conflict_id DESC LIMIT %s"
    ).format(where=sql.SQL(" AND ").join(where))
    rows = _rows(conn.execute(query, [*args, limit + 1]))
    return _page(rows, limit, lambda r: (r["at"], r["conflict_id"]), _json_row)


# ------------------------------------------------------------------------------------------------
# Links
# ------------------------------------------------------------------------------------------------

LINK_LIST = """
SELECT l.link_id, l.status, l.hub_record_id AS wix_contact_id, l.version, l.created_at,
       l.updated_at,
       l.state->'base' AS base,
       (SELECT count(*) FROM jsonb_array_elements(l.state->'members') m
        WHERE m->'ref'->>'system' <> 'wix') AS poweroffice_members,
       l.in_flight, l.failed,
       v.status AS verification
FROM {source} LEFT JOIN mapper_verification v ON v.link_id = l.link_id
WHERE {where} ORDER BY l.link_id LIMIT %s
"""
_DIGITS = re.compile(r"\d")
_PHONEISH = re.compile(r"^\+?[\d\s().-]{6,}$")


def search_kind(q: str) -> str:
    """How ``links`` reads a query: ``email``, ``phone`` or ``text`` (id or name). Pure."""
    text = q.strip()
    if "@" in text:
        return "email"
    if _PHONEISH.match(text) and len(_DIGITS.findall(text)) >= 8:
        return "phone"
    return "text"


def links(
    conn: psycopg.Connection[Any],
    tenant: str,
    *,
    status: str | None = None,
    verification: str | None = None,
    flow: str | None = None,
    q: str | None = None,
    personal_search: bool = True,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Page:
    """Links by id. ``q`` (see the module docstring); ``personal_search`` False restricts it to
    ids (a read-only caller must not learn whether an e-mail, phone or name is known)."""
    where: list[sql.Composable] = [sql.SQL("l.tenant = %s")]
    args: list[Any] = [tenant]
    if status:
        if status not in LINK_STATES:
            raise BadRequestError(f"status must be one of {', '.join(LINK_STATES)}")
        where.append(sql.SQL("l.status = %s"))
        args.append(status)
    if verification:
        where.append(sql.SQL("v.status = %s"))
        args.append(verification)
    if flow:
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM mapper_link_members f WHERE f.link_id = l.link_id "
                "AND f.system = 'poweroffice' AND f.resource = %s)"
            )
        )
        args.append(flow)
    source: sql.Composable = sql.SQL("mapper_links l")
    source_args: list[Any] = []
    if q and q.strip():
        # The matches drive the query (a join on the primary key), not a scan of every link.
        source, source_args = _search(q.strip(), tenant, personal_search)
    elif verification:
        # Few links have a given verdict (divergent, missing...): the verification index drives.
        source = sql.SQL(
            "(SELECT link_id FROM mapper_verification WHERE tenant = %s AND status = %s) "
            "AS hit (link_id) JOIN mapper_links l USING (link_id)"
        )
        source_args = [tenant, verification]
    after = decode_cursor(cursor, (str,))
    if after is not None:
        where.append(sql.SQL("l.link_id > %s"))
        args += after
    query = sql.SQL(LINK_LIST).format(source=source, where=sql.SQL(" AND ").join(where))
    rows = _rows(conn.execute(query, [*source_args, *args, limit + 1]))
    return _page(rows, limit, lambda r: (r["link_id"],), _link_row)


def _search(q: str, tenant: str, personal: bool) -> tuple[sql.Composable, list[Any]]:
    """The links matching ``q``: a union of index lookups (the link id; a record id of each
    system, Wix contact ids included, through the member index's primary key; the match keys;
    the trigram name index)."""
    branches = [
        "SELECT %s::text",
        "SELECT link_id FROM mapper_link_members WHERE (tenant, system, resource, record_id) "
        "IN (SELECT %s, s, r, %s FROM unnest(%s::text[], %s::text[]) AS x(s, r))",
    ]
    systems = [s for s, rs in RESOURCES.items() for _ in rs]
    resources = [r for rs in RESOURCES.values() for r in rs]
    args: list[Any] = [q, tenant, q, systems, resources]
    if personal:
        kind = search_kind(q)
        if kind in ("email", "phone"):
            value = normalize_email(q) if kind == "email" else normalize_phone(q)
            branches.append(
                "SELECT link_id FROM mapper_link_keys WHERE tenant = %s AND kind = %s "
                "AND value = %s"
            )
            args += [tenant, kind, value]
        else:
            pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%")
            pattern = pattern.replace("_", "\\_") + "%"
            branches.append(
                f"SELECT l.link_id FROM mapper_links l WHERE l.tenant = %s AND {NAME_EXPR} LIKE %s"
            )
            args += [tenant, pattern]
    union = " UNION ".join(branches)
    return sql.SQL(f"({union}) AS hit (link_id) JOIN mapper_links l USING (link_id)"), args


def _link_row(row: Mapping[str, Any]) -> dict[str, Any]:
    base = row.get("base") or {}
    out = _json_row({k: v for k, v in row.items() if k != "base"})
    out["name"] = " ".join(p for p in (base.get("first_name"), base.get("last_name")) if p) or None
    out["email"] = base.get("email")
    out["phone"] = base.get("phone")
    return out


def link_page(
    conn: psycopg.Connection[Any], tenant: str, link_id: str, recent: int = 20
) -> dict[str, Any] | None:
    """One link: its state document shaped for reading, plus what surrounds it."""
    row = conn.execute(
        "SELECT link_id, status, hub_record_id, version, state, created_at, updated_at "
        "FROM mapper_links WHERE tenant = %s AND link_id = %s",
        (tenant, link_id),
    ).fetchone()
    if row is None:
        return None
    _, status, contact_id, version, state, created_at, updated_at = row
    members = [_member(m) for m in state.get("members") or []]
    refs = [(m["system"], m["resource"], m["id"]) for m in members if m["id"] is not None]
    reviews = _rows(
        conn.execute(
            f"SELECT {REVIEW_COLUMNS} FROM mapper_review_items WHERE tenant = %s AND "
            "(link_id = %s OR (system, resource, record_id) IN (SELECT * FROM unnest("
            "%s::text[], %s::text[], %s::text[]))) ORDER BY last_seen DESC LIMIT %s",
            (
                tenant,
                link_id,
                [r[0] for r in refs],
                [r[1] for r in refs],
                [r[2] for r in refs],
                recent,
            ),
        )
    )
    conflict_rows = _rows(
        conn.execute(
            "SELECT conflict_id, property, kind, rule, winner, losers, cause, at "
            "FROM mapper_conflicts WHERE link_id = %s ORDER BY at DESC LIMIT %s",
            (link_id, recent),
        )
    )
    commands = _rows(
        conn.execute(
            "SELECT command_id, target_system, target_resource, target_id, action, caused_by, "
            "created_at, produced_at FROM mapper_outbox WHERE link_id = %s "
            "ORDER BY seq DESC LIMIT %s",
            (link_id, recent),
        )
    )
    verification = _rows(
        conn.execute(
            "SELECT status, properties, detail, cycle_id, divergent_since, verified_at "
            "FROM mapper_verification WHERE link_id = %s",
            (link_id,),
        )
    )
    base = state.get("base") or {}
    return {
        "link_id": link_id,
        "tenant": tenant,
        "status": status,
        "status_reason": state.get("status_reason"),
        "merged_into": state.get("merged_into"),
        "wix_contact_id": contact_id,
        "version": version,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
        "name": " ".join(p for p in (base.get("first_name"), base.get("last_name")) if p) or None,
        "base": base,
        "members": members,
        "review_items": [_review(r) for r in reviews],
        "conflicts": [_json_row(r) for r in conflict_rows],
        "recent_commands": [_json_row(r) for r in commands],
        "verification": _json_row(verification[0]) if verification else None,
    }


def _member(member: Mapping[str, Any]) -> dict[str, Any]:
    ref = member.get("ref") or {}
    system, resource, record_id = ref.get("system"), ref.get("resource"), ref.get("id")
    observed = member.get("observed")
    written = member.get("written")
    pending = member.get("pending")
    return {
        "key": f"{system}:{resource}:{record_id if record_id is not None else '(new)'}",
        "system": system,
        "resource": resource,
        "id": record_id,
        "parent_id": ref.get("parent_id"),
        "flow": member.get("flow"),
        "status": member.get("status", "active"),
        "status_reason": member.get("status_reason"),
        "created_by_engine": bool(member.get("created_by_engine")),
        "observed": None
        if not observed
        else {
            "props": observed.get("props") or {},
            "source_ts": observed.get("source_ts"),
            "revision": observed.get("revision"),
            "origin": observed.get("origin"),
        },
        "written": None
        if not written
        else {
            "props": written.get("props") or {},
            "command_id": written.get("command_id"),
            "at": written.get("at"),
        },
        "pending": None
        if not pending
        else {
            "command_id": pending.get("command_id"),
            "action": pending.get("action"),
            "props": pending.get("props") or {},
            "issued_at": pending.get("issued_at"),
        },
        "rejected": member.get("rejected") or {},
        "last_error": member.get("last_error"),
    }


# ------------------------------------------------------------------------------------------------
# Timeline
# ------------------------------------------------------------------------------------------------

#: Entry kinds in the order entries of the same instant are listed (newest first: reversed).
TIMELINE_KINDS = ("decision", "command", "conflict", "review", "action", "verification")
#: ``mapper_history.source`` -> timeline kind (a change's decision is the default).
HISTORY_KINDS = {"outcome": "outcome", "operator_action": "action", "dead_letter": "dead_letter"}
_RANK = {k: i for i, k in enumerate(TIMELINE_KINDS)}


def _fields(value: Any) -> list[dict[str, Any]]:
    """Field-level changes from ``mapper_history.fields``, as ``[{property, before, after}]``.

    Accepts ``{"prop": {"before": x, "after": y}}``, ``{"before": {...}, "after": {...}}`` and
    ``[{"property"|"name": p, "before": x, "after": y}]``. Pure."""
    if not value:
        return []
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):
                name = item.get("property", item.get("name"))
                out.append(
                    {"property": name, "before": item.get("before"), "after": item.get("after")}
                )
        return out
    if isinstance(value, dict):
        if set(value) <= {"before", "after"} and any(isinstance(v, dict) for v in value.values()):
            before = value.get("before") or {}
            after = value.get("after") or {}
            names = sorted(set(before) | set(after))
            return [
                {"property": n, "before": before.get(n), "after": after.get(n)}
                for n in names
                if before.get(n) != after.get(n)
            ]
        return [
            {
                "property": name,
                "before": change.get("before") if isinstance(change, dict) else None,
                "after": change.get("after") if isinstance(change, dict) else change,
            }
            for name, change in sorted(value.items())
        ]
    return []


def timeline(
    conn: psycopg.Connection[Any],
    tenant: str,
    link_id: str,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> Page | None:
    """The link's timeline, newest first (None: no such link)."""
    found = conn.execute(
        "SELECT state FROM mapper_links WHERE tenant = %s AND link_id = %s", (tenant, link_id)
    ).fetchone()
    if found is None:
        return None
    refs = [
        (m["ref"]["system"], m["ref"]["resource"], m["ref"]["id"])
        for m in found[0].get("members") or []
        if m.get("ref", {}).get("id") is not None
    ]
    before = decode_cursor(cursor, (datetime, int, int))
    entries: list[dict[str, Any]] = []
    for source in _timeline_sources(conn, tenant, link_id, refs):
        entries += source(before, limit + 1)
    entries.sort(key=lambda e: (e["_at"], e["_rank"], e["_seq"]), reverse=True)
    if before is not None:
        key = tuple(before)
        entries = [e for e in entries if (e["_at"], e["_rank"], e["_seq"]) < key]
    page = entries[: limit + 1]
    has_more = len(page) > limit
    page = page[:limit]
    next_cursor = (
        encode_cursor([page[-1]["_at"], page[-1]["_rank"], page[-1]["_seq"]]) if has_more else None
    )
    _enrich_actions(conn, page)
    for entry in page:
        entry["at"] = iso(entry.pop("_at"))
        entry.pop("_rank")
        entry.pop("_seq")
    return Page(page, next_cursor, limit)


Source = Any  # (before, n) -> list of entries
#: Sources a link has few rows in (review items, conflicts, actions) are read whole up to this.
PER_LINK_CAP = 1000


def stable_seq(text: str) -> int:
    """A deterministic tie-breaker for rows keyed by text ids (timeline cursor). Pure."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def _timeline_sources(
    conn: psycopg.Connection[Any],
    tenant: str,
    link_id: str,
    refs: Sequence[tuple[str, str, str]],
) -> list[Source]:
    systems = [r[0] for r in refs]
    resources = [r[1] for r in refs]
    ids = [r[2] for r in refs]
    has_fields = column_exists(conn, "mapper_history", "fields")
    has_actions = table_exists(conn, "mapper_operator_actions")
    has_actor = column_exists(conn, "mapper_history", "actor")

    def bound(column: str, rank: int, seq: str, before: list[Any] | None) -> tuple[str, list[Any]]:
        # Rows strictly older than the cursor by (time, kind rank, sequence); the rank is a
        # constant per source, so the row comparison stays index-friendly per source.
        if before is None:
            return "", []
        return (f" AND ({column}, {rank}, {seq}) < (%s, %s, %s)", list(before))

    def history(before: list[Any] | None, n: int) -> list[dict[str, Any]]:
        extra, args = bound("at", _RANK["decision"], "id", before)
        cols = (
            "id, at, source, system, resource, record_id, event_id, command_id, decision, "
            "reason, commands, error_code, error_message"
            + (", fields" if has_fields else ", NULL::jsonb AS fields")
            + (", actor, action_kind" if has_actor else ", NULL AS actor, NULL AS action_kind")
        )
        rows = _rows(
            conn.execute(
                f"SELECT * FROM (SELECT {cols} FROM mapper_history WHERE link_id = %s{extra} "
                f"UNION SELECT {cols} FROM mapper_history WHERE link_id IS NULL AND tenant = %s "
                "AND (system, resource, record_id) IN (SELECT * FROM unnest("
                f"%s::text[], %s::text[], %s::text[])){extra}) h "
                "ORDER BY at DESC, id DESC LIMIT %s",
                [link_id, *args, tenant, systems, resources, ids, *args, n],
            )
        )
        out = []
        for r in rows:
            entry: dict[str, Any] = {
                "_at": r["at"],
                "_rank": _RANK["decision"],
                "_seq": int(r["id"]),
                "kind": HISTORY_KINDS.get(str(r["source"]), "decision"),
                "source": r["source"],
                "record": _record_key(r["system"], r["resource"], r["record_id"]),
                "decision": r["decision"],
                "reason": r["reason"],
                "commands": r["commands"],
                "event_id": r["event_id"],
                "command_id": r["command_id"],
                "error_code": r["error_code"],
                "error_message": r["error_message"],
                "fields": _fields(r["fields"]),
            }
            if entry["kind"] == "action":
                entry["action_id"] = r["event_id"]
                entry["actor"] = r["actor"]
                entry["action_kind"] = r["action_kind"]
            out.append(entry)
        return out

    def commands(before: list[Any] | None, n: int) -> list[dict[str, Any]]:
        extra, args = bound("created_at", _RANK["command"], "seq", before)
        rows = _rows(
            conn.execute(
                "SELECT seq, command_id, target_system, target_resource, target_id, action, "
                "caused_by, created_at, produced_at FROM mapper_outbox WHERE link_id = %s"
                + extra
                + " ORDER BY created_at DESC, seq DESC LIMIT %s",
                [link_id, *args, n],
            )
        )
        return [
            {
                "_at": r["created_at"],
                "_rank": _RANK["command"],
                "_seq": int(r["seq"]),
                "kind": "command",
                "command_id": r["command_id"],
                "action": r["action"],
                "target": _record_key(r["target_system"], r["target_resource"], r["target_id"]),
                "caused_by": r["caused_by"],
                "produced_at": iso(r["produced_at"]),
            }
            for r in rows
        ]

    def conflict_rows(before: list[Any] | None, n: int) -> list[dict[str, Any]]:
        # A link has few conflicts: read them all (newest first, capped); the caller merges
        # and applies the cursor.
        rows = _rows(
            conn.execute(
                "SELECT conflict_id, property, kind, rule, winner, losers, cause, at "
                "FROM mapper_conflicts WHERE link_id = %s ORDER BY at DESC LIMIT %s",
                [link_id, max(n, PER_LINK_CAP)],
            )
        )
        return [
            {
                "_at": r["at"],
                "_rank": _RANK["conflict"],
                "_seq": stable_seq(r["conflict_id"]),
                "kind": "conflict",
                "conflict_id": r["conflict_id"],
                "property": r["property"],
                "conflict_kind": r["kind"],
                "rule": r["rule"],
                "winner": r["winner"],
                "losers": r["losers"],
                "cause": r["cause"],
            }
            for r in rows
        ]

    def reviews(before: list[Any] | None, n: int) -> list[dict[str, Any]]:
        rows = _rows(
            conn.execute(
                f"SELECT {REVIEW_COLUMNS} FROM mapper_review_items WHERE tenant = %s AND "
                "(link_id = %s OR (system, resource, record_id) IN (SELECT * FROM unnest("
                "%s::text[], %s::text[], %s::text[]))) ORDER BY first_seen DESC LIMIT %s",
                [tenant, link_id, systems, resources, ids, max(n, PER_LINK_CAP)],
            )
        )
        out = []
        for r in rows:
            seq = stable_seq(r["review_id"]) * 2
            base = {
                "kind": "review",
                "review_id": r["review_id"],
                "reason": r["reason"],
                "detail": r["detail"],
                "record": _record_key(r["system"], r["resource"], r["record_id"]),
                "candidates": r["candidates"],
            }
            out.append(
                {
                    **base,
                    "_at": r["first_seen"],
                    "_rank": _RANK["review"],
                    "_seq": seq,
                    "event": "opened",
                }
            )
            if r["resolved_at"] is not None:
                out.append(
                    {
                        **base,
                        "_at": r["resolved_at"],
                        "_rank": _RANK["review"],
                        "_seq": seq + 1,
                        "event": "resolved",
                        "resolution": r["resolution"],
                    }
                )
        return out

    def actions(before: list[Any] | None, n: int) -> list[dict[str, Any]]:
        # Actions are in the history too (source operator_action) with their field changes;
        # the audit table adds those whose history row was trimmed away (it is never trimmed).
        if not has_actions:
            return []
        in_history = {
            str(r[0])
            for r in conn.execute(
                "SELECT event_id FROM mapper_history WHERE link_id = %s "
                "AND source = 'operator_action'",
                (link_id,),
            ).fetchall()
        }
        return [
            {**a, "_rank": _RANK["action"], "_seq": stable_seq(str(a.get("action_id")))}
            for a in operator_actions_for_link(conn, tenant, link_id, max(n, PER_LINK_CAP))
            if str(a.get("action_id")) not in in_history
        ]

    def verification(before: list[Any] | None, n: int) -> list[dict[str, Any]]:
        rows = _rows(
            conn.execute(
                "SELECT status, properties, detail, cycle_id, divergent_since, verified_at "
                "FROM mapper_verification WHERE link_id = %s",
                (link_id,),
            )
        )
        return [
            {
                "_at": r["verified_at"],
                "_rank": _RANK["verification"],
                "_seq": stable_seq(str(r["cycle_id"])),
                "kind": "verification",
                "status": r["status"],
                "properties": list(r["properties"] or []),
                "detail": r["detail"],
                "divergent_since": iso(r["divergent_since"]),
            }
            for r in rows
        ]

    return [history, commands, conflict_rows, reviews, actions, verification]


def _enrich_actions(conn: psycopg.Connection[Any], entries: list[dict[str, Any]]) -> None:
    """Add the audit row's outcome (status, result, the operator's reason) to action entries."""
    wanted = [e["action_id"] for e in entries if e["kind"] == "action" and "status" not in e]
    if not wanted or not table_exists(conn, "mapper_operator_actions"):
        return
    audit = {
        str(r["action_id"]): r
        for r in _rows(
            conn.execute(
                "SELECT * FROM mapper_operator_actions WHERE action_id = ANY(%s)", (wanted,)
            )
        )
    }
    for entry in entries:
        row = audit.get(str(entry.get("action_id")))
        if entry["kind"] != "action" or row is None:
            continue
        for key in ("status", "result", "detail", "actor", "applied_at", "command_ids"):
            if key in row and entry.get(key) is None:
                entry[key] = iso(row[key])
        entry["action_kind"] = entry.get("action_kind") or row.get("kind")
        entry["why"] = row.get("reason")


def _record_key(system: Any, resource: Any, record_id: Any) -> str | None:
    if not system:
        return None
    return f"{system}:{resource}:{record_id if record_id is not None else '(new)'}"


# ------------------------------------------------------------------------------------------------
# Operator actions (the audit table of the mapper, migration by the actions work)
# ------------------------------------------------------------------------------------------------


def operator_actions_for_link(
    conn: psycopg.Connection[Any], tenant: str, link_id: str, n: int
) -> list[dict[str, Any]]:
    """The operator actions that concern a link (newest first); ``_at`` is their time."""
    rows = _rows(
        conn.execute(
            "SELECT * FROM mapper_operator_actions WHERE tenant = %s AND link_id = %s "
            "ORDER BY at DESC LIMIT %s",
            (tenant, link_id, n),
        )
    )
    return [_action_entry(r) for r in rows]


def _action_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    entry = {k: iso(v) for k, v in row.items() if k not in ("action", "reason")}
    entry["kind"] = "action"
    entry["action_kind"] = row.get("kind")
    entry["why"] = row.get("reason")
    entry["fields"] = []
    entry["_at"] = row.get("applied_at") or row.get("at")
    return entry


def operator_actions(
    conn: psycopg.Connection[Any],
    tenant: str,
    *,
    kind: str | None = None,
    actor: str | None = None,
    status: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Page:
    """The audit trail: applied and rejected operator actions, newest first."""
    if not table_exists(conn, "mapper_operator_actions"):
        return Page([], None, limit)
    where: list[sql.Composable] = [sql.SQL("tenant = %s")]
    args: list[Any] = [tenant]
    for column, value in (("kind", kind), ("actor", actor), ("status", status)):
        if value:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            args.append(value)
    after = decode_cursor(cursor, (datetime, str))
    if after is not None:
        where.append(sql.SQL("(applied_at, action_id) < (%s, %s)"))
        args += after
    query = sql.SQL(
        "SELECT action_id, tenant, kind, actor, role, reason, at, applied_at, status, result, "
        "detail, link_id, review_id, system, resource, record_id, contact_id, command_ids "
        "FROM mapper_operator_actions WHERE {where} "
        "ORDER BY applied_at DESC, action_id DESC LIMIT %s"
    ).format(where=sql.SQL(" AND ").join(where))
    rows = _rows(conn.execute(query, [*args, limit + 1]))
    return _page(rows, limit, lambda r: (r["applied_at"], r["action_id"]), _json_row)


def ignored_records(
    conn: psycopg.Connection[Any],
    tenant: str,
    *,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Page:
    """Records an operator chose never to sync (``IGNORE_RECORD``; ``UNIGNORE_RECORD`` undoes)."""
    if not table_exists(conn, "mapper_ignored_records"):
        return Page([], None, limit)
    after = decode_cursor(cursor, (str, str, str))
    bound = ""
    args: list[Any] = [tenant]
    if after is not None:
        bound = " AND (i.system, i.resource, i.record_id) > (%s, %s, %s)"
        args += after
    rows = _rows(
        conn.execute(
            "SELECT i.tenant, i.system, i.resource, i.record_id, i.action_id, i.actor, i.at, "
            "m.link_id FROM mapper_ignored_records i LEFT JOIN mapper_link_members m "
            "USING (tenant, system, resource, record_id) WHERE i.tenant = %s"
            + bound
            + " ORDER BY i.system, i.resource, i.record_id LIMIT %s",
            [*args, limit + 1],
        )
    )
    return _page(rows, limit, lambda r: (r["system"], r["resource"], r["record_id"]), _json_row)


def action_result(conn: psycopg.Connection[Any], action_id: str) -> dict[str, Any] | None:
    """The audit row of one operator action (None: not applied yet, or unknown)."""
    if not table_exists(conn, "mapper_operator_actions"):
        return None
    rows = _rows(
        conn.execute("SELECT * FROM mapper_operator_actions WHERE action_id = %s", (action_id,))
    )
    return _json_row(rows[0]) if rows else None


# ------------------------------------------------------------------------------------------------


def _page(
    rows: list[dict[str, Any]],
    limit: int,
    key: Any,
    shape: Any,
) -> Page:
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(list(key(rows[-1]))) if has_more and rows else None
    return Page([shape(r) for r in rows], next_cursor, limit)
