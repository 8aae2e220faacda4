"""Applying operator actions inside the mapper's batch transaction (the shell around
``services.mapper.domain.actions``).

The loop hands every decoded ``OperatorAction`` of a batch to ``ActionApplier.apply`` after the
batch's changes and outcomes are handled and flushed (so what it reads is current), each in a
savepoint of the batch's transaction — the same transaction that advances the tracking row:

1. the audit row ``mapper_operator_actions`` is looked up: an action id already there is a
   no-op (a retried request, a re-published or replayed message);
2. what the action names is loaded and locked in the store's order — advisory locks on the
   record's match keys and the chosen contact, then link rows ``FOR UPDATE``: the review item,
   the link, the link holding the record, the record's last known state (``mapper_records`` /
   the contact index), the chosen candidate, the held deletes;
3. the pure ``decide_action`` decides; an action that cannot apply is *rejected* with a reason
   (recorded, never raised);
4. the decision is persisted like a change's: links (version-checked), review items, conflicts,
   commands into the outbox (``caused_by`` = the action id; the operator reviewed them, so the
   mass-delete breaker does not hold them), review items resolved (``operator:<kind>``), the
   ignore row added or removed, a history row (``source = 'operator_action'``, with the actor
   and the field-level before/after values) and the audit row with the result;
5. UNIGNORE_RECORD then feeds the record's last known state through the ordinary change path
   (``Handler.change``), so it rejoins its link, is matched, or goes to review again.

An unexpected error propagates to the loop (which parks the message as a dead letter without an
audit row, so a re-drive after the fix applies it). ``skip_ignored`` is the other half of
IGNORE_RECORD: the loop hands it the changes of ignored records (``ignored_among``), which are
recorded as ``ignored`` (and their state remembered for a later UNIGNORE) instead of decided.

The operator's ``reason`` and the history's ``fields`` may hold personal data: they are stored
for the authenticated console only and never logged.

Imports: psycopg, the core codec/records/topics/operator_actions modules, the mapper's store,
handler, convert and domain.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from pydantic import ValidationError

from services.core.codec import AvroCodec
from services.core.errors import ContractError
from services.core.operator_actions import ActionKind
from services.core.records import wrap_record
from services.core.topics import TopicLayout, link_key
from services.mapper.convert import changes_from_event, command_datum
from services.mapper.domain import (
    Candidate,
    Command,
    CommandAction,
    Decision,
    DecisionKind,
    Link,
    Policy,
    RecordRef,
    ReviewItem,
    ReviewReason,
    flow_for,
    hub,
    is_hub,
    match_keys,
)
from services.mapper.domain.actions import (
    ActionInputs,
    ActionResult,
    ActionStatus,
    HeldDelete,
    OperatorAction,
    decide_action,
    known_state_change,
    subject_of,
)
from services.mapper.domain.timeline import field_changes
from services.mapper.handler import MASS_DELETE_REASON, MATCH_REVIEWS, Handled, Handler
from services.mapper.store import MapperStore

log = logging.getLogger("tether.mapper.actions")

SOURCE = "operator_action"

# ------------------------------------------------------------------------------------------------
# SQL (tables: migration v005)
# ------------------------------------------------------------------------------------------------

SELECT_ACTION = "SELECT status FROM mapper_operator_actions WHERE action_id = %s"
INSERT_ACTION = """
INSERT INTO mapper_operator_actions
    (action_id, tenant, kind, actor, role, reason, at, applied_at, status, result, detail,
     link_id, review_id, system, resource, record_id, contact_id, command_ids, action)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)
ON CONFLICT (action_id) DO NOTHING
"""
SELECT_REVIEW = """
SELECT review_id, tenant, reason, detail, system, resource, record_id, link_id, property,
       candidates::text, last_seen, resolution, resolved_at IS NOT NULL
FROM mapper_review_items WHERE review_id = %s
FOR UPDATE
"""
HELD_DELETES = """
SELECT review_id, system, resource, record_id, link_id FROM mapper_review_items
WHERE tenant = %s AND reason = %s AND resolved_at IS NULL
ORDER BY review_id
FOR UPDATE
"""
RESOLVE_REVIEW_IDS = """
UPDATE mapper_review_items SET resolved_at = %s, resolution = %s
WHERE review_id = ANY(%s) AND resolved_at IS NULL
"""
RESOLVE_RECORD_REVIEWS = """
UPDATE mapper_review_items SET resolved_at = %s, resolution = %s
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
  AND (%s::text[] IS NULL OR reason = ANY(%s::text[])) AND resolved_at IS NULL
"""
IGNORED_AMONG = """
SELECT i.tenant, i.system, i.resource, i.record_id
FROM (SELECT DISTINCT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
      AS x(tenant, system, resource, record_id)) AS w
JOIN mapper_ignored_records i
  ON i.tenant = w.tenant AND i.system = w.system AND i.resource = w.resource
 AND i.record_id = w.record_id
"""
IS_IGNORED = """
SELECT 1 FROM mapper_ignored_records
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
FOR UPDATE
"""
INSERT_IGNORED = """
INSERT INTO mapper_ignored_records (tenant, system, resource, record_id, action_id, actor, at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
DELETE_IGNORED = """
DELETE FROM mapper_ignored_records
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
"""
KNOWN_RECORD = """
SELECT record::text, source_ts, NULL::bigint FROM mapper_records
WHERE tenant = %s AND system = %s AND resource = %s AND record_id = %s
"""
KNOWN_CONTACT = """
SELECT record::text, source_ts, revision FROM mapper_contacts
WHERE tenant = %s AND contact_id = %s AND NOT deleted AND record IS NOT NULL
"""
INSERT_HISTORY = """
INSERT INTO mapper_history
    (tenant, link_id, system, resource, record_id, source, event_id, command_id, decision,
     reason, commands, error_code, error_message, at, fields, actor, action_kind)
VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, %s, %s, %s, NULL, NULL, %s, %s::jsonb, %s, %s)
"""

Identity = tuple[str, str, str, str]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def action_from_datum(datum: Mapping[str, Any]) -> OperatorAction:
    """The domain action of a decoded ``OperatorAction`` (``ContractError`` when malformed)."""
    try:
        record = None
        system, resource, record_id = (
            datum.get("record_system"),
            datum.get("record_resource"),
            datum.get("record_id"),
        )
        if system and resource and record_id:
            record = RecordRef(
                tenant=str(datum["tenant"]),
                system=str(system),
                resource=str(resource),
                id=str(record_id),
            )
        return OperatorAction(
            action_id=str(datum["action_id"]),
            tenant=str(datum["tenant"]),
            actor=str(datum["actor"]),
            role=str(datum["role"]),
            at=datum["at"],
            reason=str(datum["reason"]),
            kind=ActionKind(str(datum["kind"])),
            review_id=datum.get("review_id"),
            link_id=datum.get("link_id"),
            record=record,
            contact_id=datum.get("contact_id"),
            side=datum.get("side"),
            command_id=datum.get("command_id"),
            deadletter_stage=datum.get("deadletter_stage"),
            deadletter_ids=tuple(str(i) for i in datum.get("deadletter_ids") or ()),
        )
    except (KeyError, ValueError, ValidationError) as exc:
        raise ContractError(f"malformed operator action: {type(exc).__name__}") from exc


class ActionApplier:
    """Applies operator actions and skips ignored records' changes, on the loop's connection
    inside its transaction (the caller opens a savepoint per action)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        codec: AvroCodec,
        layout: TopicLayout,
        policy: Policy,
        *,
        max_deletes_per_hour: int,
        store: MapperStore | None = None,
    ) -> None:
        self.conn = conn
        self.store = store if store is not None else MapperStore(conn)
        self.codec = codec
        self.layout = layout
        self.policy = policy
        self.max_deletes_per_hour = max_deletes_per_hour
        self.traceparent: str | None = None

    # -- ignored records ----------------------------------------------------------------------

    def ignored_among(self, identities: Iterable[Identity]) -> set[Identity]:
        """Which of these records are ignored (one statement)."""
        wanted = sorted(set(identities))
        if not wanted:
            return set()
        columns = [[w[i] for w in wanted] for i in range(4)]
        rows = self.conn.execute(IGNORED_AMONG, columns).fetchall()
        return {(str(t), str(s), str(r), str(i)) for t, s, r, i in rows}

    def skip_ignored(self, datum: Mapping[str, Any], now: datetime) -> list[Handled]:
        """A change of an ignored record: remember its state (a member record's, for a later
        UNIGNORE), record ``ignored`` in the history, decide nothing."""
        handled = []
        for change in changes_from_event(datum):
            link_id = self.store.link_id_for_record(
                change.tenant, change.system, change.resource, change.record_id
            )
            if not is_hub(change.system, change.resource) and change.record is not None:
                self.store.upsert_record(change.ref, change.record, change.source_ts, now)
            self._history(
                tenant=change.tenant,
                link_id=link_id,
                ref=change.ref,
                event_id=change.event_id,
                decision="ignored",
                reason="operator_ignored",
                commands=0,
                at=now,
                source="change",
            )
            handled.append(Handled("change", change.system, "ignored"))
        return handled

    # -- actions ------------------------------------------------------------------------------

    def apply(self, datum: Mapping[str, Any], now: datetime) -> list[Handled]:
        """Apply one decoded ``OperatorAction`` (a no-op when its id was applied before)."""
        action = action_from_datum(datum)
        if self.conn.execute(SELECT_ACTION, (action.action_id,)).fetchone() is not None:
            return [Handled("action", "-", "duplicate")]
        loaded: dict[str, Link] = {}
        inputs = self._inputs(action, loaded)
        result = decide_action(action, inputs, self.policy, now)
        subject = result.record or subject_of(action, inputs.review)
        commands = self._persist(action, result, inputs, loaded, subject, now)
        handled = [
            Handled(
                "action",
                subject.system if subject is not None else "-",
                result.status.value,
                commands=tuple(
                    (c.target.system, c.target.resource, c.action.value) for c in commands
                ),
            )
        ]
        self._audit(action, result, inputs, subject, commands, datum, now)
        if result.unignore and subject is not None:
            handled += self._resync(action, subject, now)
        return handled

    def _inputs(self, action: OperatorAction, loaded: dict[str, Link]) -> ActionInputs:
        store = self.store
        review, resolution = self._review(action)
        subject = subject_of(action, review)
        kind = action.kind
        change = None
        candidate = None
        if (
            kind in (ActionKind.LINK_TO_CANDIDATE, ActionKind.CREATE_NEW_CONTACT)
            and subject is not None
            and subject.id is not None
            and not is_hub(subject.system, subject.resource)
        ):
            known = self._known(subject)
            contacts = []
            if action.contact_id and not action.contact_id.startswith("link:"):
                contacts = [action.contact_id]
            keys = []
            if known is not None:
                change = known_state_change(action.action_id, subject, known[0], known[1])
                try:
                    keys = match_keys(flow_for(subject.resource), known[0])
                except (ContractError, KeyError):
                    keys = []  # a resource this dataflow no longer maps: decided below
            # Keys before contacts, advisory locks before row locks (the store's order).
            store.lock(action.tenant, keys, contacts)
            if kind is ActionKind.LINK_TO_CANDIDATE and action.contact_id:
                candidate = self._candidate(action.tenant, action.contact_id, loaded)
        link = None
        if action.link_id:
            link = self._load(loaded, store.links_by_id([action.link_id]).get(action.link_id))
        record_link = None
        ignored = False
        if subject is not None and subject.id is not None:
            record_link = self._load(
                loaded,
                store.link_for_record(subject.tenant, subject.system, subject.resource, subject.id),
            )
            ignored = (
                self.conn.execute(
                    IS_IGNORED, (subject.tenant, subject.system, subject.resource, subject.id)
                ).fetchone()
                is not None
            )
        held: tuple[HeldDelete, ...] = ()
        if kind is ActionKind.RESET_DELETE_BREAKER:
            held = self._held(action.tenant, loaded)
        return ActionInputs(
            review=review,
            review_resolution=resolution,
            link=link,
            record_link=record_link,
            change=change,
            candidate=candidate,
            ignored=ignored,
            held=held,
        )

    @staticmethod
    def _load(loaded: dict[str, Link], link: Link | None) -> Link | None:
        if link is not None:
            loaded.setdefault(link.link_id, link)
        return link

    def _review(self, action: OperatorAction) -> tuple[ReviewItem | None, str | None]:
        """The review item the action names and how it was resolved (None: open)."""
        if action.review_id is None or action.kind is ActionKind.RESET_DELETE_BREAKER:
            return None, None
        row = self.conn.execute(SELECT_REVIEW, (action.review_id,)).fetchone()
        if row is None:
            return None, None
        (review_id, tenant, reason, detail, system, resource, record_id, link_id, prop) = row[:9]
        candidates, last_seen, resolution, resolved = row[9:]
        try:
            reason_value = ReviewReason(reason)
        except ValueError:
            return None, None  # a shell-raised review (e.g. held deletes): not actionable here
        record = None
        if system and resource:
            record = RecordRef(tenant=tenant, system=system, resource=resource, id=record_id)
        item = ReviewItem(
            review_id=review_id,
            tenant=tenant,
            reason=reason_value,
            detail=detail,
            record=record,
            link_id=link_id,
            property=prop,
            candidates=tuple(str(c) for c in json.loads(candidates)),
            at=last_seen,
        )
        return item, (resolution or "resolved") if resolved else None

    def _known(self, ref: RecordRef) -> tuple[dict[str, Any], datetime, int | None] | None:
        """The record's last known full state, its source time and (the hub's) revision."""
        assert ref.id is not None
        if is_hub(ref.system, ref.resource):
            row = self.conn.execute(KNOWN_CONTACT, (ref.tenant, ref.id)).fetchone()
        else:
            row = self.conn.execute(
                KNOWN_RECORD, (ref.tenant, ref.system, ref.resource, ref.id)
            ).fetchone()
        if row is None or row[0] is None or row[1] is None:
            return None
        record = json.loads(row[0])
        if not isinstance(record, dict):
            return None
        return record, row[1], row[2]

    def _candidate(self, tenant: str, identity: str, loaded: dict[str, Link]) -> Candidate | None:
        """The chosen candidate: an indexed contact (with the link holding it) or a link."""
        store = self.store
        if identity.startswith("link:"):
            link = self._load(loaded, store.links_by_id([identity[5:]]).get(identity[5:]))
            return Candidate(link=link) if link is not None else None
        entries = store.contact_entries(tenant, [identity])
        if not entries:
            return None
        entry, owner_id = entries[0]
        owner = None
        if owner_id is not None:
            owner = self._load(loaded, store.links_by_id([owner_id]).get(owner_id))
        return Candidate(contact=entry, link=owner)

    def _held(self, tenant: str, loaded: dict[str, Link]) -> tuple[HeldDelete, ...]:
        rows = self.conn.execute(HELD_DELETES, (tenant, MASS_DELETE_REASON)).fetchall()
        links = self.store.links_by_id({str(r[4]) for r in rows if r[4] is not None})
        for link in links.values():
            self._load(loaded, link)
        held = []
        for review_id, system, resource, record_id, link_id in rows:
            if not system or not resource:
                continue
            target = RecordRef(tenant=tenant, system=system, resource=resource, id=record_id)
            held.append(
                HeldDelete(
                    review_id=str(review_id),
                    target=target,
                    link=links.get(str(link_id)) if link_id is not None else None,
                )
            )
        return tuple(held)

    # -- persisting ---------------------------------------------------------------------------

    def _persist(
        self,
        action: OperatorAction,
        result: ActionResult,
        inputs: ActionInputs,
        loaded: dict[str, Link],
        subject: RecordRef | None,
        now: datetime,
    ) -> list[Command]:
        store = self.store
        decision = result.decision
        before = loaded.get(decision.link.link_id) if decision.link is not None else None
        checks = []
        for link in decision.links:
            checks.append(store.save_link(link, loaded.get(link.link_id)))
            loaded[link.link_id] = link
        for check in checks:
            check()
        for entry in decision.index_upserts:
            store.upsert_contact(entry, None, now)
        for item in decision.review_items:
            store.upsert_review(item)
        for conflict in decision.conflicts:
            store.insert_conflict(conflict)
        commands = list(decision.commands)
        for command in commands:
            datum = command_datum(
                command,
                target_record=None if result.read_fresh else self._target_record(command),
                caused_by=action.action_id,
                created_at=now,
            )
            store.insert_outbox(
                command,
                topic=self.layout.commands(command.target.system, command.target.resource),
                key=link_key(command.link_id),
                payload=self.codec.encode("Command", datum),
                caused_by=action.action_id,
                now=now,
                traceparent=self.traceparent,
            )
        resolution = f"operator:{action.kind.value.lower()}"
        if result.resolve_reviews:
            self.conn.execute(RESOLVE_REVIEW_IDS, (now, resolution, list(result.resolve_reviews)))
        if subject is not None and subject.id is not None:
            reasons: list[str] | None = None
            if result.resolve_record_reviews:
                reasons = None  # every open review item of the record
            elif decision.kind in (DecisionKind.LINKED, DecisionKind.CONFLICT, DecisionKind.CREATE):
                reasons = list(MATCH_REVIEWS)
            if result.resolve_record_reviews or reasons is not None:
                self.conn.execute(
                    RESOLVE_RECORD_REVIEWS,
                    (
                        now,
                        resolution,
                        subject.tenant,
                        subject.system,
                        subject.resource,
                        subject.id,
                        reasons,
                        reasons,
                    ),
                )
            identity = (subject.tenant, subject.system, subject.resource, subject.id)
            if result.ignore:
                self.conn.execute(INSERT_IGNORED, (*identity, action.action_id, action.actor, now))
            if result.unignore:
                self.conn.execute(DELETE_IGNORED, identity)
        link_id = action.link_id
        if decision.link is not None:
            link_id = decision.link.link_id
        elif inputs.record_link is not None:
            link_id = inputs.record_link.link_id
        elif inputs.review is not None and inputs.review.link_id is not None:
            link_id = inputs.review.link_id
        subject_key = subject.key if subject is not None and subject.id is not None else None
        self._history(
            tenant=action.tenant,
            link_id=link_id,
            ref=subject,
            event_id=action.action_id,
            decision=(
                decision.kind.value
                if result.status is ActionStatus.APPLIED
                else ActionStatus.REJECTED.value
            ),
            reason=result.detail,
            commands=len(commands),
            at=now,
            fields=field_changes(before, decision.link, subject_key),
            actor=action.actor,
            action_kind=action.kind.value,
        )
        return commands

    def _target_record(self, command: Command) -> Mapping[str, Any] | None:
        target = command.target
        if command.action is CommandAction.CREATE or target.id is None:
            return None
        known = self._known(target)
        return known[0] if known is not None else None

    def _history(
        self,
        *,
        tenant: str,
        link_id: str | None,
        ref: RecordRef | None,
        event_id: str,
        decision: str,
        reason: str | None,
        commands: int,
        at: datetime,
        source: str = SOURCE,
        fields: Mapping[str, Any] | None = None,
        actor: str | None = None,
        action_kind: str | None = None,
    ) -> None:
        self.conn.execute(
            INSERT_HISTORY,
            (
                tenant,
                link_id,
                ref.system if ref is not None else None,
                ref.resource if ref is not None else None,
                ref.id if ref is not None else None,
                source,
                event_id,
                decision,
                reason,
                commands,
                at,
                _json(fields) if fields else None,
                actor,
                action_kind,
            ),
        )

    def _audit(
        self,
        action: OperatorAction,
        result: ActionResult,
        inputs: ActionInputs,
        subject: RecordRef | None,
        commands: Sequence[Command],
        datum: Mapping[str, Any],
        now: datetime,
    ) -> None:
        decision: Decision = result.decision
        link_id = action.link_id or (decision.link.link_id if decision.link is not None else None)
        if link_id is None and inputs.record_link is not None:
            link_id = inputs.record_link.link_id
        self.conn.execute(
            INSERT_ACTION,
            (
                action.action_id,
                action.tenant,
                action.kind.value,
                action.actor,
                action.role,
                action.reason,
                action.at,
                now,
                result.status.value,
                result.result,
                result.detail,
                link_id,
                action.review_id,
                subject.system if subject is not None else None,
                subject.resource if subject is not None else None,
                subject.id if subject is not None else None,
                action.contact_id,
                _json([c.command_id for c in commands]),
                _json(dict(datum)),
            ),
        )
        if result.status is ActionStatus.REJECTED:
            # The reason text is the operator's and may be personal: only ids are logged.
            log.info(
                "operator action %s (%s) rejected",
                action.action_id,
                action.kind.value,
                extra={"fields": {"action_id": action.action_id, "kind": action.kind.value}},
            )

    # -- UNIGNORE: the last known state through the ordinary change path ---------------------

    def _resync(self, action: OperatorAction, ref: RecordRef, now: datetime) -> list[Handled]:
        known = self._known(ref)
        if known is None or ref.id is None:
            return []  # nothing known yet: its next change is synced as usual
        record, source_ts, revision = known
        the_hub = hub()
        if ref.system == the_hub.system and ref.resource != the_hub.resource:
            return []  # the hub's system syncs only the hub's resource
        datum = {
            "event_id": f"action:{action.action_id}",
            "tenant": ref.tenant,
            "system": ref.system,
            "resource": ref.resource,
            "record_id": ref.id,
            "operation": "UPSERT",
            "origin": "OTHER",
            "source_timestamp": source_ts,
            "source_version": str(revision) if revision is not None else None,
            "extracted_at": None,
            "record": wrap_record(ref.system, ref.resource, record),
            "merged_ids": [],
            "parent_id": ref.parent_id,
            "parent_kind": None,
        }
        handler = Handler(
            self.store,
            self.codec,
            self.layout,
            self.policy,
            max_deletes_per_hour=self.max_deletes_per_hour,
        )
        handler.traceparent = self.traceparent
        return handler.change(datum, now)
