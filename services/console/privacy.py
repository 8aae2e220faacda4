"""What a caller without the operator role may see: counts, ids, states and reasons only.

Each function takes a read-model answer (``services.console.readmodel``) and returns a copy built
from an **allow-list** of keys: names, e-mail addresses, phone numbers, field values (observed,
written, pending, base, conflict sides, before/after), error messages (they may quote a value),
dead-letter messages, raw records and operators' free-text reasons are left out; property names,
ids, statuses, reasons, error codes and timestamps stay. An allow-list fails closed: a key added
to the read model later stays hidden until it is added here.

Pure. Imports: standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

HIDDEN = "hidden"


def _keep(row: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: row[k] for k in keys if k in row}


REVIEW_KEYS = (
    "review_id",
    "tenant",
    "reason",
    "detail",
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
    "status",
)


def review(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _keep(row, REVIEW_KEYS)
    if "candidate_contacts" in row:
        out["candidate_contacts"] = [
            _keep(c, ("contact_id", "known", "deleted", "link_id", "link_status"))
            for c in row["candidate_contacts"]
        ]
    return out


def conflict(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _keep(
        row, ("conflict_id", "tenant", "link_id", "property", "kind", "rule", "cause", "at")
    )
    for side in ("winner", "losers"):
        value = row.get(side)
        if isinstance(value, dict):
            out[side] = _keep(value, ("member", "changed_at"))
        elif isinstance(value, list):
            out[side] = [_keep(v, ("member", "changed_at")) for v in value if isinstance(v, dict)]
    return out


LINK_ROW_KEYS = (
    "link_id",
    "status",
    "wix_contact_id",
    "version",
    "created_at",
    "updated_at",
    "poweroffice_members",
    "in_flight",
    "failed",
    "verification",
)


def link_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return _keep(row, LINK_ROW_KEYS)


def _props_names(props: Any) -> list[str]:
    return sorted(props) if isinstance(props, dict) else []


def member(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _keep(
        row,
        (
            "key",
            "system",
            "resource",
            "id",
            "parent_id",
            "flow",
            "status",
            "status_reason",
            "created_by_engine",
        ),
    )
    observed = row.get("observed")
    out["observed"] = (
        None
        if not observed
        else {
            "properties": _props_names(observed.get("props")),
            "source_ts": observed.get("source_ts"),
            "revision": observed.get("revision"),
            "origin": observed.get("origin"),
        }
    )
    written = row.get("written")
    out["written"] = (
        None
        if not written
        else {"properties": _props_names(written.get("props")), "at": written.get("at")}
        | {"command_id": written.get("command_id")}
    )
    pending = row.get("pending")
    out["pending"] = (
        None
        if not pending
        else {
            "command_id": pending.get("command_id"),
            "action": pending.get("action"),
            "properties": _props_names(pending.get("props")),
            "issued_at": pending.get("issued_at"),
        }
    )
    out["rejected"] = _props_names(row.get("rejected"))
    error = row.get("last_error")
    out["last_error"] = None if not error else _keep(error, ("outcome", "command_id", "code", "at"))
    return out


def link(page: Mapping[str, Any]) -> dict[str, Any]:
    out = _keep(
        page,
        (
            "link_id",
            "tenant",
            "status",
            "status_reason",
            "merged_into",
            "wix_contact_id",
            "version",
            "created_at",
            "updated_at",
            "recent_commands",
            "verification",
        ),
    )
    out["members"] = [member(m) for m in page.get("members") or []]
    out["review_items"] = [review(r) for r in page.get("review_items") or []]
    out["conflicts"] = [conflict(c) for c in page.get("conflicts") or []]
    return out


TIMELINE_KEYS = (
    "at",
    "kind",
    "source",
    "record",
    "decision",
    "reason",
    "commands",
    "event_id",
    "command_id",
    "error_code",
    "action",
    "target",
    "caused_by",
    "produced_at",
    "conflict_id",
    "property",
    "conflict_kind",
    "rule",
    "cause",
    "review_id",
    "event",
    "resolution",
    "candidates",
    "detail",
    "action_id",
    "action_kind",
    "actor",
    "status",
    "result",
    "applied_at",
    "link_id",
    "command_ids",
    "properties",
    "divergent_since",
)


def timeline_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = _keep(entry, TIMELINE_KEYS)
    if entry.get("kind") == "action":
        # The operator's free text may quote personal data; the result's detail does not.
        out.pop("reason", None)
    if "fields" in entry:
        out["fields"] = [{"property": f.get("property")} for f in entry["fields"] or []]
    for side in ("winner", "losers"):
        if side in entry:
            value = entry[side]
            out[side] = (
                _keep(value, ("member", "changed_at"))
                if isinstance(value, dict)
                else [_keep(v, ("member", "changed_at")) for v in value or []]
            )
    return out


def dead_letter(row: Mapping[str, Any]) -> dict[str, Any]:
    return _keep(
        row,
        (
            "stage",
            "partition",
            "offset",
            "dead_letter_id",
            "source_topic",
            "source_partition",
            "source_offset",
            "error_class",
            "first_seen",
            "redrivable",
            "record",
        ),
    )


def action(row: Mapping[str, Any]) -> dict[str, Any]:
    return _keep(
        row,
        (
            "action_id",
            "tenant",
            "kind",
            "actor",
            "role",
            "at",
            "applied_at",
            "status",
            "result",
            "detail",
            "link_id",
            "review_id",
            "system",
            "resource",
            "record_id",
            "contact_id",
            "command_ids",
            "state",
        ),
    )
