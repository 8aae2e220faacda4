"""Explainability: "why is record X (not) synced?" — a read model over the mapper's PostgreSQL.

``explain_record(conn, tenant, system, resource, record_id)`` answers with a JSON-ready dict:

* ``status`` — ``unknown`` (never seen), ``linked``, ``syncing`` (a write in flight),
  ``creating`` (the other side's record is being created), ``in_review``, ``error`` (a failed
  create or write), ``unlinked``, ``not_linked`` (seen, but not synced: an indexed hub record, a
  skipped/archived record...) — and a one-line ``summary``;
* ``link`` — the link and every member: last observed and last written values, the write in
  flight, refused values, last error;
* ``pending_commands`` — the writes in flight (issued, no outcome yet; ``produced_at`` null:
  still in the outbox); ``recent_commands`` — the link's latest outbox rows;
* ``history`` — the last decisions, outcomes and dead letters for the record and its link;
* ``review_items`` and ``conflicts``;
* ``verification`` — the link's latest verdict of ``tether verify`` (``mapper_verification``:
  agree / divergent / repairing / in_review / in_flux / missing, the divergent property names and
  the repair events emitted), or null when it was never verified.

The answer holds the personal data of the record the operator asked for (and of the records
linked to it: the same person); nothing is logged. Connection strings are never printed.

Served on the mapper's HTTP port (``GET /explain?system=&resource=&id=[&tenant=]``, see
``services.mapper.http``) **without personal data** (``public_view``: that route has no
authentication; operators see the values in the console), and in full as a CLI reading
PostgreSQL directly (its caller holds the database credentials already)::

    tether explain --system SYSTEM --resource RESOURCE --id ID [--tenant default]

Exit codes: 0 the record is known, 1 unknown record, 2 usage or database error.

Imports: psycopg, the mapper's settings/store/wiring and the domain only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from services.core.deadletters import fix_hint_for
from services.core.topics import RESOURCES
from services.mapper.domain import (
    ErrorInfo,
    Link,
    LinkStatus,
    Member,
    RecordRef,
    hub,
    is_hub,
    read_hub,
    read_member,
)
from services.mapper.settings import MapperSettings
from services.mapper.store import MapperStore
from services.mapper.wiring import RECORDS

RECENT = 20

EXPLAIN_HISTORY = """
SELECT at, source, decision, reason, commands, event_id, command_id, error_code, error_message,
       system, resource, record_id
FROM mapper_history
WHERE (tenant = %s AND system = %s AND resource = %s AND record_id = %s)
   OR (link_id IS NOT NULL AND link_id = %s)
ORDER BY id DESC LIMIT %s
"""
EXPLAIN_OUTBOX = """
SELECT command_id, target_system, target_resource, target_id, action, caused_by, created_at,
       produced_at
FROM mapper_outbox WHERE link_id = %s ORDER BY seq DESC LIMIT %s
"""
EXPLAIN_COMMANDS_BY_ID = """
SELECT command_id, created_at, produced_at FROM mapper_outbox WHERE command_id = ANY(%s)
"""
EXPLAIN_REVIEWS = """
SELECT review_id, reason, detail, system, resource, record_id, link_id, property, candidates,
       first_seen, last_seen, resolved_at, resolution
FROM mapper_review_items
WHERE (tenant = %s AND system = %s AND resource = %s AND record_id = %s)
   OR (link_id IS NOT NULL AND link_id = %s)
ORDER BY last_seen DESC LIMIT %s
"""
EXPLAIN_CONFLICTS = """
SELECT conflict_id, property, kind, rule, winner, losers, cause, at
FROM mapper_conflicts WHERE link_id = %s ORDER BY at DESC LIMIT %s
"""
EXPLAIN_VERIFICATION = """
SELECT status, properties, detail, repairs, cycle_id, divergent_since, verified_at
FROM mapper_verification WHERE link_id = %s
"""
EXPLAIN_CONTACT = """
SELECT props, revision, source_ts, deleted FROM mapper_contacts
WHERE tenant = %s AND contact_id = %s
"""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _member(member: Member) -> dict[str, Any]:
    observed = member.observed
    return {
        "key": member.key,
        "system": member.ref.system,
        "resource": member.ref.resource,
        "id": member.ref.id,
        "parent_id": member.ref.parent_id,
        "flow": member.flow,
        "status": member.status.value,
        "status_reason": member.status_reason,
        "created_by_engine": member.created_by_engine,
        "observed": None
        if observed is None
        else {
            "props": observed.props,
            "source_ts": _iso(observed.source_ts),
            "revision": observed.revision,
            "origin": observed.origin.value,
        },
        "written": None
        if member.written is None
        else {
            "props": member.written.props,
            "command_id": member.written.command_id,
            "at": _iso(member.written.at),
        },
        "pending": None
        if member.pending is None
        else {
            "command_id": member.pending.command_id,
            "action": member.pending.action.value,
            "props": member.pending.props,
            "against_revision": member.pending.against_revision,
            "issued_at": _iso(member.pending.issued_at),
        },
        "rejected": member.rejected,
        "reverted": list(member.reverted),
        "last_error": None
        if member.last_error is None
        else member.last_error.model_dump(mode="json"),
    }


def _link(link: Link) -> dict[str, Any]:
    return {
        "link_id": link.link_id,
        "status": link.status.value,
        "status_reason": link.status_reason,
        "merged_into": link.merged_into,
        "version": link.version,
        "hub_record_id": link.hub_record_id,
        "base": link.base,
        "created_at": _iso(link.created_at),
        "updated_at": _iso(link.updated_at),
        "members": [_member(m) for m in link.members],
    }


def _rows(cursor: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cursor.description or ()]
    return [{n: _iso(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _status(
    ref: RecordRef, link: Link | None, reviews: list[dict[str, Any]], history: list[dict[str, Any]]
) -> tuple[str, str]:
    open_reviews = [
        r
        for r in reviews
        if r["resolved_at"] is None
        and (r["system"], r["resource"], r["record_id"]) == (ref.system, ref.resource, ref.id)
    ]
    if link is None:
        if open_reviews:
            reasons = sorted({r["reason"] for r in open_reviews})
            return "in_review", f"not synced: waiting for an operator ({', '.join(reasons)})"
        if history:
            last = history[0]
            why = last["reason"] or last["decision"]
            summary = f"seen, not linked (last decision: {last['decision']}, {why})"
            if last["decision"] == "dead_letter":
                hint = fix_hint_for(last["error_code"], last["error_message"] or "", ref.system)
                summary += f"; its input was dead-lettered. Fix: {hint}" if hint else ""
            return "not_linked", summary
        return "unknown", "the mapper has never seen this record"
    member = link.member_for(ref)
    if link.status is LinkStatus.MERGED:
        return "unlinked", f"its link was merged into {link.merged_into}"
    if member is None or not member.active:
        reason = member.status_reason if member is not None else link.status_reason
        return "unlinked", f"unlinked ({reason or link.status.value}): no longer synced"
    if link.status is LinkStatus.UNLINKED:
        return "unlinked", f"link unlinked ({link.status_reason}): no longer synced"
    if link.status is LinkStatus.ERROR:
        return "error", create_failed_summary(link.status_reason, _last_error(link))
    if link.pending_create:
        return "creating", "linked; the other side's record is being created"
    if any(m.pending is not None for m in link.members if m.active):
        return "syncing", "linked; a write is in flight"
    if member.last_error is not None:
        return "error", write_failed_summary(member.last_error)
    if open_reviews:
        return "in_review", "linked, with open review items"
    return "linked", "linked and in sync (no write in flight)"


#: Codes of failures that repeat until someone changes a permission, a credential or the data.
_PERMISSION_CODES = frozenset({"PERMISSION_DENIED", "PermissionDeniedError", "Forbidden"})
_CREDENTIAL_CODES = frozenset({"UNAUTHENTICATED", "AuthenticationError"})
#: Transient causes: the same command may well succeed later.
_TRANSIENT_CODES = frozenset(
    {
        "ServerError",
        "TransportError",
        "RateLimitedError",
        "RESOURCE_EXHAUSTED",
        "RequestNotSentError",
    }
)


def _last_error(link: Link) -> ErrorInfo | None:
    errors = [m.last_error for m in link.members if m.last_error is not None]
    return max(errors, key=lambda e: e.at) if errors else None


def write_failed_summary(error: ErrorInfo) -> str:
    """The one-line answer for a linked member whose last write did not apply. Pure.

    Names the fix where the cause is known (``fix_hint_for``); a retry is promised only for a
    transient cause.
    """
    what = f"linked; the last write {error.outcome}" + (f" ({error.code})" if error.code else "")
    hint = fix_hint_for(error.code, error.message or "")
    if hint is None and error.outcome == "rejected":
        hint = fix_hint_for("ValidationError")
    return f"{what}. Fix: {hint}" if hint else f"{what}: see link.members[].last_error"


def create_failed_summary(reason: str | None, error: ErrorInfo | None) -> str:
    """The one-line answer for a link whose create failed: its cause and the fix. Pure.

    A retry is promised only for a transient cause; a refusal that will repeat (a permission,
    credentials, values the target refuses) names what must change first.
    """
    code = error.code if error is not None else None
    message = (error.message or "") if error is not None else ""
    what = f"the create failed ({reason or 'error'}{', ' + code if code else ''})"
    if code == "KEYLESS_CREATE_AMBIGUOUS" or (
        code in _PERMISSION_CODES and "extended_field" in message
    ):
        the_hub = hub()
        system = RECORDS[the_hub.system].display_name
        return (
            f"{what}: extended fields permission missing — Tether cannot mark a contact with "
            "neither e-mail nor phone with its tether-link-id field"
            + (
                f" and several name-only {system} {the_hub.resource} match it"
                if "AMBIGUOUS" in (code or "")
                else ""
            )
            + f". Fix: give the {system} API key (or app) the permission to manage extended "
            "fields, or "
            "add an e-mail/phone to the record; then re-drive the dead letter (a retry before "
            "that fails the same way)"
        )
    if code in _PERMISSION_CODES:
        return (
            f"{what}: permission missing at the target. Fix: grant the API key/app that "
            "permission, then re-drive the dead letter (a retry before that fails the same way)"
        )
    if code in _CREDENTIAL_CODES:
        return (
            f"{what}: the target refused the credentials. Fix the credentials, then re-drive "
            "the dead letter (a retry before that fails the same way)"
        )
    if code in _TRANSIENT_CODES or message.startswith("gave up after"):
        return f"{what}: a transient failure; the next change or a re-drive retries it"
    if error is not None and error.outcome == "rejected":
        return (
            f"{what}: the target refused these values; fix the record at its source (its next "
            "change is tried again) or resolve the review item"
        )
    return (
        f"{what}: it fails the same way until its cause is fixed — see link.members[].last_error "
        "and the dead letter, then re-drive"
    )


def explain_record(
    conn: psycopg.Connection[Any],
    tenant: str,
    system: str,
    resource: str,
    record_id: str,
    *,
    recent: int = RECENT,
) -> dict[str, Any]:
    """The explain answer for one record (see the module docstring)."""
    store = MapperStore(conn)
    ref = RecordRef(tenant=tenant, system=system, resource=resource, id=record_id)
    link_id = store.link_id_for_record(tenant, system, resource, record_id)
    link = store.read_link(link_id) if link_id is not None else None
    key = (tenant, system, resource, record_id, link_id, recent)
    history = _rows(conn.execute(EXPLAIN_HISTORY, key))
    reviews = _rows(conn.execute(EXPLAIN_REVIEWS, key))
    conflicts: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    verification: list[dict[str, Any]] = []
    if link_id is not None:
        conflicts = _rows(conn.execute(EXPLAIN_CONFLICTS, (link_id, recent)))
        commands = _rows(conn.execute(EXPLAIN_OUTBOX, (link_id, recent)))
        verification = _rows(conn.execute(EXPLAIN_VERIFICATION, (link_id,)))
    status, summary = _status(ref, link, reviews, history)
    answer: dict[str, Any] = {
        "record": {"tenant": tenant, "system": system, "resource": resource, "id": record_id},
        "status": status,
        "summary": summary,
        "observed": _observed(conn, store, ref),
        "link": _link(link) if link is not None else None,
        "pending_commands": _pending(conn, link),
        "recent_commands": commands,
        "last_outcome": next((h for h in history if h["source"] == "outcome"), None),
        "last_error": next(
            (h for h in history if h["error_code"] or h["decision"] == "dead_letter"), None
        ),
        "history": history,
        "review_items": reviews,
        "conflicts": conflicts,
        "verification": verification[0] if verification else None,
    }
    return answer


def _keep(row: Any, keys: Sequence[str]) -> dict[str, Any] | None:
    if not isinstance(row, dict):
        return None
    return {k: row[k] for k in keys if k in row}


def _names(props: Any) -> list[str]:
    return sorted(props) if isinstance(props, dict) else []


_MEMBER_KEYS = (
    "key",
    "system",
    "resource",
    "id",
    "parent_id",
    "flow",
    "status",
    "status_reason",
    "created_by_engine",
)
_HISTORY_KEYS = (
    "source",
    "event_id",
    "command_id",
    "decision",
    "reason",
    "commands",
    "error_code",
    "at",
)
_LINK_KEYS = (
    "link_id",
    "status",
    "status_reason",
    "merged_into",
    "version",
    "hub_record_id",
    "created_at",
    "updated_at",
)
_REVIEW_KEYS = (
    "review_id",
    "reason",
    "system",
    "resource",
    "record_id",
    "link_id",
    "property",
    "candidates",
    "first_seen",
    "last_seen",
    "resolved_at",
    "resolution",
)


def _public_member(member: dict[str, Any]) -> dict[str, Any]:
    out = _keep(member, _MEMBER_KEYS) or {}
    for part in ("observed", "written", "pending"):
        value = member.get(part)
        out[part] = (
            None
            if not isinstance(value, dict)
            else {k: v for k, v in value.items() if k != "props"}
            | {"properties": _names(value.get("props"))}
        )
    out["rejected"] = _names(member.get("rejected"))
    error = member.get("last_error")
    out["last_error"] = _keep(error, ("outcome", "command_id", "code", "at"))
    return out


def public_view(answer: dict[str, Any]) -> dict[str, Any]:
    """The explain answer without personal data, for an unauthenticated caller. Pure.

    Built from an **allow-list** (it fails closed: a key added to the answer later stays hidden
    until it is added here): record ids, statuses, the summary, decisions, reasons, error codes,
    command ids, property *names* and timestamps stay; property values (names, e-mails, phones),
    error messages (they may quote a value), the link's merge base and conflict values go. The
    full answer is for callers who already hold the database credentials (``tether explain``)
    and for authenticated operators (the console: ``/api/v1/links/{id}`` and its timeline).
    """
    link = answer.get("link")
    verification = answer.get("verification")
    return {
        "record": answer.get("record"),
        "status": answer.get("status"),
        "summary": answer.get("summary"),
        "personal_data": "hidden: use the console (authenticated) or `tether explain`",
        "observed": None
        if not isinstance(answer.get("observed"), dict)
        else {
            "properties": _names(answer["observed"].get("props")),
            "source_ts": answer["observed"].get("source_ts"),
        },
        "link": None
        if not isinstance(link, dict)
        else (_keep(link, _LINK_KEYS) or {})
        | {"members": [_public_member(m) for m in link.get("members") or []]},
        "pending_commands": [
            (
                _keep(
                    c, ("command_id", "target", "action", "issued_at", "in_outbox", "produced_at")
                )
                or {}
            )
            | {"properties": _names(c.get("props"))}
            for c in answer.get("pending_commands") or []
        ],
        "history": [_keep(h, _HISTORY_KEYS) for h in answer.get("history") or []],
        "review_items": [_keep(r, _REVIEW_KEYS) for r in answer.get("review_items") or []],
        "conflicts": [
            _keep(c, ("conflict_id", "property", "kind", "rule", "cause", "at"))
            for c in answer.get("conflicts") or []
        ],
        "verification": _keep(
            verification, ("status", "properties", "cycle_id", "divergent_since", "verified_at")
        ),
    }


def _pending(conn: psycopg.Connection[Any], link: Link | None) -> list[dict[str, Any]]:
    """The writes in flight (issued, no outcome yet); ``produced_at`` null = still in the
    outbox, not yet on the command topic."""
    if link is None:
        return []
    pending = [(m, m.pending) for m in link.members if m.pending is not None]
    ids = [p.command_id for _, p in pending]
    rows = {
        str(r[0]): (r[1], r[2]) for r in conn.execute(EXPLAIN_COMMANDS_BY_ID, (ids,)).fetchall()
    }
    out = []
    for member, write in pending:
        produced = rows.get(write.command_id, (None, None))[1]
        out.append(
            {
                "command_id": write.command_id,
                "target": member.key,
                "action": write.action.value,
                "props": write.props,
                "issued_at": _iso(write.issued_at),
                "in_outbox": write.command_id in rows,
                "produced_at": _iso(produced),
            }
        )
    return out


def _observed(
    conn: psycopg.Connection[Any], store: MapperStore, ref: RecordRef
) -> dict[str, Any] | None:
    """What the mapper last saw of the record itself (mapped properties only)."""
    assert ref.id is not None
    if is_hub(ref.system, ref.resource):
        row = conn.execute(EXPLAIN_CONTACT, (ref.tenant, ref.id)).fetchone()
        if row is None:
            return None
        props, revision, source_ts, deleted = row
        known = store.contact_record(ref.tenant, ref.id)
        if known is not None and known.record is not None:
            props = read_hub(known.record)
        return {
            "props": props,
            "revision": revision,
            "source_ts": _iso(source_ts),
            "deleted": deleted,
        }
    record = store.record(ref.tenant, ref.system, ref.resource, ref.id)
    if record is None:
        return None
    try:
        props = read_member(ref.resource, record)
    except Exception:  # a resource without a flow: show nothing rather than fail
        props = {}
    conventions = RECORDS.get(ref.system)
    changed_at = record.get(conventions.changed_at_field) if conventions is not None else None
    return {"props": props, "source_ts": changed_at}


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    systems = sorted(RESOURCES)
    resources = sorted({r for rs in RESOURCES.values() for r in rs})
    parser = argparse.ArgumentParser(
        prog="tether explain",
        description="Why is a record (not) synced? Reads the mapper's PostgreSQL "
        "(TETHER_POSTGRES_DSN) and prints JSON.",
    )
    parser.add_argument("--system", required=True, choices=systems)
    parser.add_argument("--resource", required=True, choices=resources)
    parser.add_argument("--id", required=True, dest="record_id")
    parser.add_argument("--tenant", default=None, help="default: TETHER_TENANT")
    parser.add_argument("--recent", type=int, default=RECENT, help="history rows to show")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.resource not in RESOURCES[args.system]:
        sys.stderr.write(f"tether explain: {args.system} has no resource {args.resource!r}\n")
        return 2
    settings = MapperSettings.load()
    tenant = args.tenant or settings.tenant
    try:
        with psycopg.connect(
            settings.postgres_dsn.get_secret_value(), autocommit=True, connect_timeout=10
        ) as conn:
            answer = explain_record(
                conn, tenant, args.system, args.resource, args.record_id, recent=args.recent
            )
    except psycopg.Error as exc:
        # Never echo the DSN: the error class is enough to act on.
        sys.stderr.write(f"tether explain: PostgreSQL error ({type(exc).__name__})\n")
        return 2
    sys.stdout.write(json.dumps(answer, indent=2, ensure_ascii=False, default=str) + "\n")
    return 1 if answer["status"] == "unknown" else 0


if __name__ == "__main__":
    sys.exit(main())
