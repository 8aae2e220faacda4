"""One input, inside the loop's transaction: load state, call the domain, persist the decision.

``Handler.change(datum, now)`` and ``Handler.outcome(datum, now)`` take a decoded ``ChangeEvent``
/ ``Outcome``, and for each domain input they

1. take the locks (advisory locks on match keys and hub records ("contacts"), then the link rows
   ``FOR UPDATE``),
2. load the link holding the record (by member identity) and, for a record without one, the
   candidates: hub index entries sharing a match key (with the link owning each) and links
   indexed under one of its keys (``link_match_keys``: hub records still being created, and the
   keys of the links' flow members),
3. call the pure domain function,
4. persist the ``Decision`` exactly as ``services.mapper.domain`` asks: links (optimistic version
   check, member index, link match keys), contact index upserts (only when not older) and
   deletes, review items and conflicts (upsert by id), the commands as encoded Avro ``Command``
   rows in the outbox, and a history row for the explain read model.

On the loop's fast path the store is a ``BatchStore``: ``prepare`` first reads what the whole
batch needs in a constant number of statements (locks, candidates, contact rows, links,
records), then each input runs the steps above against memory — the store answers reads from
the rows read and the batch's earlier writes, and buffers the writes until the loop flushes
them. With a plain ``MapperStore`` (the careful redo, previews) every step goes to PostgreSQL
at once. The steps and the domain calls are the same either way.

It never commits or produces: the loop does (tracking row, effects and outbox in one
transaction). Returns ``Handled`` records for the metrics, applied after the commit.

Besides the domain's own outputs the shell keeps the last-known full target records (the hub's:
on its index row, ``mapper_contacts``; members': ``mapper_records``) to send as
``target_record``, and

* catches a completed hub create up with a newer state of the same hub record that the index
  received while the create's outcome was in flight (the domain would otherwise never see that
  edit);
* holds back delete commands beyond ``mapper_max_deletes_per_hour`` (mass-delete breaker, only
  relevant with the ``propagate_deletes`` policy) and raises a review row instead.

Imports: the core codec/topics/records modules, the mapper's store/convert and the domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.core.codec import AvroCodec
from services.core.topics import TopicLayout, link_key
from services.mapper.convert import (
    changes_from_event,
    command_datum,
    outcome_from_datum,
    record_timestamp,
    referenced_link_id,
)
from services.mapper.domain import (
    Candidate,
    Change,
    Command,
    CommandAction,
    ContactIndexEntry,
    Decision,
    DecisionKind,
    Link,
    LinkStatus,
    MatchKey,
    Operation,
    Outcome,
    OutcomeKind,
    Policy,
    RecordRef,
    ReviewReason,
    adopt_own_create,
    flow_for,
    hub,
    hub_match_keys,
    is_hub,
    match_keys,
    on_hub_change,
    on_member_change,
    on_outcome,
)
from services.mapper.domain.identity import derive_id
from services.mapper.domain.mappings import hub_revision
from services.mapper.domain.sync import index_entry
from services.mapper.domain.timeline import field_changes
from services.mapper.store import MapperStore
from services.mapper.store.batch import BatchStore, Identity, KeyRef

#: Decision kinds after which a record is linked: its matching reviews are resolved.
LINKING_KINDS = frozenset({DecisionKind.CREATE, DecisionKind.LINKED, DecisionKind.CONFLICT})
MATCH_REVIEWS = (
    ReviewReason.AMBIGUOUS_MATCH.value,
    ReviewReason.INSUFFICIENT_CONTACT_DATA.value,
)
MASS_DELETE_REASON = "mass_delete_breaker"


@dataclass(frozen=True)
class Handled:
    """What one domain input did (for the metrics, after commit)."""

    source: str
    system: str
    result: str
    commands: tuple[tuple[str, str, str], ...] = ()
    conflicts: tuple[tuple[str, str], ...] = ()
    deletes_held: int = 0


@dataclass(frozen=True)
class Observed:
    """A full record state an input carried: remembered as the last-known record (when
    ``remember``) and used as ``target_record`` of commands to that same record."""

    ref: RecordRef
    record: Mapping[str, Any]
    source_ts: datetime | None
    revision: int | None = None
    remember: bool = True


class Handler:
    def __init__(
        self,
        store: MapperStore,
        codec: AvroCodec,
        layout: TopicLayout,
        policy: Policy,
        *,
        max_deletes_per_hour: int,
        stream_starts: dict[tuple[str, str, str], datetime] | None = None,
    ) -> None:
        self.store = store
        self.stream_starts = stream_starts if stream_starts is not None else {}
        """(tenant, system, resource) -> when the mapper first saw that stream (committed
        values only; the loop keeps this dict across batches)."""
        self.codec = codec
        self.layout = layout
        self.policy = policy
        self.max_deletes_per_hour = max_deletes_per_hour
        self.wrote = False
        """Set once the current input started writing (the loop resets it per input): a
        failure after that point needs the transaction rolled back."""
        self.traceparent: str | None = None
        """The trace context of the current input's span (the loop sets it per input; None
        with tracing off): stored with each command in the outbox, sent as its header."""
        self._batch_deletes = 0
        self._by_record: dict[tuple[str, str, str, str], Link | None] = {}
        self._by_id: dict[str, Link] = {}
        self._changes: dict[int, list[Change]] = {}
        self._outcomes: dict[int, Outcome] = {}
        """Domain inputs converted by ``prepare`` (by ``id`` of their datum; the loop keeps
        the datums alive for the batch)."""

    # -- the batch's link cache ---------------------------------------------------------------

    def prepare(self, inputs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Read what a whole batch needs with a ``BatchStore``, a constant number of statements
        however many inputs (``source`` is "change" or "outcome"; datums decoded):

        1. one advisory-lock statement: every match key of the batch's changes, then every hub
           record it names (its changes' records, completing outcomes' records);
        2. one candidate query: the hub records and links indexed under any of those keys;
           the candidate records' locks (one statement; keys before hub records, as always);
        3. the hub index rows of all those records, with the link holding each;
        4. the links of the batch's records, outcomes, own-create references and candidates,
           locked ``FOR UPDATE`` (two statements), and the last-known records the commands
           to those links' other members may need (one or two statements).

        Advisory locks come before row locks. Inputs that do not convert are skipped here (they
        fail again, in place, when handled). The per-input work then runs from memory."""
        store = self.store
        assert isinstance(store, BatchStore), "prepare needs a BatchStore"
        the_hub = hub()
        keys: set[KeyRef] = set()
        contacts: set[tuple[str, str]] = set()
        records: set[Identity] = set()
        link_ids: set[str] = set()
        for source, datum in inputs:
            try:
                if source == "outcome":
                    outcome = outcome_from_datum(datum)
                    self._outcomes[id(datum)] = outcome
                    link_ids.add(outcome.link_id)
                    target = outcome.target
                    if is_hub(target.system, target.resource) and target.id is not None:
                        contacts.add((outcome.tenant, target.id))
                        records.add((outcome.tenant, the_hub.system, the_hub.resource, target.id))
                    continue
                changes = changes_from_event(datum)
                self._changes[id(datum)] = changes
                tenant = str(datum["tenant"])
                for merged in datum.get("merged_ids") or ():
                    records.add((tenant, str(datum["system"]), str(datum["resource"]), str(merged)))
            except Exception:  # reported when the input is handled
                continue
            for change in changes:
                records.add((change.tenant, change.system, change.resource, change.record_id))
                found: Sequence[MatchKey] = ()
                if is_hub(change.system, change.resource):
                    contacts.add((change.tenant, change.record_id))
                    if change.record is not None:
                        found = hub_match_keys(change.record)
                elif change.operation is Operation.UPSERT:
                    found = match_keys(flow_for(change.resource), change.record or {})
                    referenced = referenced_link_id(change.system, change.resource, change.record)
                    if referenced is not None:
                        link_ids.add(referenced)
                keys.update((change.tenant, k[0], k[1]) for k in found)
        store.lock_batch(keys, contacts)
        candidate_contacts, candidate_links = store.load_keys(keys)
        store.lock_batch((), candidate_contacts - contacts)
        store.load_contacts(contacts | candidate_contacts)
        owners = {
            store.link_id_for_record(t, the_hub.system, the_hub.resource, c)
            for t, c in candidate_contacts
        }
        link_ids |= candidate_links | {o for o in owners if o is not None}
        self.prefetch(sorted(records), sorted(link_ids))
        # The last-known target records of commands to the members of these links.
        linked = list(self._by_id.values())
        store.load_contacts(
            (link.tenant, link.hub_record_id) for link in linked if link.hub_record_id
        )
        store.load_records(
            (r.tenant, r.system, r.resource, r.id)
            for link in linked
            for r in link.member_refs()
            if not is_hub(r.system, r.resource) and r.id is not None
        )

    def prefetch(
        self, records: Sequence[tuple[str, str, str, str]], link_ids: Sequence[str]
    ) -> None:
        """Load and lock, in two statements, the links of a batch's records and outcomes.

        The rows stay locked until the batch commits, so a cached link cannot change under us;
        the cache follows every link this batch saves. A record without a link is cached as
        such only for a member record (no other transaction can put it in a link); a hub
        record without one is looked up again under its lock."""
        found = self.store.links_for_records(records)
        for identity in records:
            link = found.get(identity)
            if link is not None and link.status is LinkStatus.MERGED:
                continue  # merged while we waited for its lock: resolve it when handled
            if link is not None or not is_hub(identity[1], identity[2]):
                self._by_record[identity] = link
            if link is not None:
                self._by_id[link.link_id] = link
        wanted = [i for i in link_ids if i not in self._by_id]
        self._by_id.update(self.store.links_by_id(wanted))

    def _record_link(self, tenant: str, system: str, resource: str, record_id: str) -> Link | None:
        identity = (tenant, system, resource, record_id)
        if identity in self._by_record:
            return self._by_record[identity]
        link = self.store.link_for_record(tenant, system, resource, record_id)
        self._by_record[identity] = link
        if link is not None:
            self._by_id[link.link_id] = link
        return link

    def _link(self, link_id: str) -> Link | None:
        if link_id not in self._by_id:
            found = self.store.links_by_id([link_id]).get(link_id)
            if found is None:
                return None
            self._by_id[link_id] = found
        return self._by_id[link_id]

    def _cache(self, link: Link) -> None:
        self._by_id[link.link_id] = link
        if link.status is LinkStatus.MERGED:
            # Its moved members are cached under the surviving link; the others have none now.
            for identity, cached in list(self._by_record.items()):
                if cached is not None and cached.link_id == link.link_id:
                    del self._by_record[identity]
        for ref in link.member_refs():
            assert ref.id is not None
            self._by_record[(ref.tenant, ref.system, ref.resource, ref.id)] = link

    # -- inputs -------------------------------------------------------------------------------

    def change(self, datum: Mapping[str, Any], now: datetime) -> list[Handled]:
        """A decoded ChangeEvent (one or more domain changes)."""
        changes = self._changes.pop(id(datum), None)
        if changes is None:
            changes = changes_from_event(datum)
        extracted_at = datum.get("extracted_at")
        return [
            self._change(change, now, self._live_since(change, extracted_at)) for change in changes
        ]

    def _live_since(self, change: Change, extracted_at: datetime | None) -> datetime | None:
        """The change's source time when it is a live change (made after the mapper first saw
        its stream), else None: a snapshot record changed long ago says nothing about how
        fresh the sync is."""
        key = (change.tenant, change.system, change.resource)
        start = self.stream_starts.get(key)
        if start is None:
            if extracted_at is None:
                return None
            start, stored = self.store.stream_start(*key, extracted_at)
            if stored:
                self.stream_starts[key] = start
        return change.source_ts if change.source_ts >= start else None

    def outcome(self, datum: Mapping[str, Any], now: datetime) -> list[Handled]:
        """A decoded Outcome."""
        outcome = self._outcomes.pop(id(datum), None)
        if outcome is None:
            outcome = outcome_from_datum(datum)
        target = outcome.target
        to_hub = is_hub(target.system, target.resource)
        contact_id = target.id if to_hub else None
        completing = outcome.kind in (OutcomeKind.CREATED, OutcomeKind.LINKED_EXISTING)
        if contact_id is not None and completing:
            self.store.lock(outcome.tenant, contacts=[contact_id])
        loaded: dict[str, Link] = {}
        link = self._load(loaded, self._link(outcome.link_id))
        contact_link = None
        if outcome.kind is OutcomeKind.LINKED_EXISTING and contact_id is not None:
            contact_link = self._load(
                loaded,
                self._record_link(outcome.tenant, target.system, target.resource, contact_id),
            )
        decision = on_outcome(link, outcome, self.policy, now, contact_link)
        observed = None
        if outcome.record is not None and target.id is not None:
            observed = Observed(target, outcome.record, outcome.source_ts, outcome.revision)
        handled = [
            self._persist(
                decision,
                loaded,
                now=now,
                source="outcome",
                subject=target,
                event_id=outcome.outcome_id,
                command_id=outcome.command_id,
                caused_by=outcome.command_id,
                observed=observed,
                source_ts=outcome.source_ts,
                own_link=link,
                error=(outcome.error_code, outcome.error_message),
            )
        ]
        if completing and to_hub:
            caught_up = self._catch_up(decision, loaded, outcome, now)
            if caught_up is not None:
                handled.append(caught_up)
        return handled

    # -- changes ------------------------------------------------------------------------------

    def _change(self, change: Change, now: datetime, changed_at: datetime | None) -> Handled:
        loaded: dict[str, Link] = {}
        observed = None
        if is_hub(change.system, change.resource):
            keys = hub_match_keys(change.record) if change.record is not None else []
            identity = (change.tenant, change.system, change.resource, change.record_id)
            link = self._record_link(*identity)
            if link is None:
                # Keys before hub records, one statement: a record linking to this one holds
                # them; then look again (it may have been linked while we waited).
                self.store.lock(change.tenant, keys, [change.record_id])
                link = self.store.link_for_record(*identity)
                if link is not None:
                    self._cache(link)
            self._load(loaded, link)
            candidates: list[Candidate] = []
            if (
                link is None
                and change.operation is Operation.UPSERT
                and self.policy.create_members_for_unmatched_hub
            ):
                candidates = self._candidates(
                    change.tenant, keys, loaded, exclude=change.record_id, linked_only=True
                )
            decision = on_hub_change(link, change, self.policy, now, candidates)
            if change.record is not None:
                # The domain decides whether the index takes this state (never an older one).
                observed = Observed(
                    change.ref, change.record, change.source_ts, change.revision, remember=False
                )
        else:
            link = self._load(
                loaded,
                self._record_link(change.tenant, change.system, change.resource, change.record_id),
            )
            if link is None and change.operation is Operation.UPSERT:
                link = self._own_create(change, loaded)
            candidates = []
            if link is None and change.operation is Operation.UPSERT:
                flow = flow_for(change.resource)
                candidates = self._candidates(
                    change.tenant, match_keys(flow, change.record or {}), loaded
                )
            decision = on_member_change(link, change, candidates, self.policy, now)
            if change.record is not None:
                observed = Observed(change.ref, change.record, change.source_ts)
        return self._persist(
            decision,
            loaded,
            now=now,
            source="change",
            subject=change.ref,
            event_id=change.event_id,
            command_id=None,
            caused_by=change.event_id,
            observed=observed,
            source_ts=change.source_ts,
            own_link=link,
            cause_changed_at=changed_at,
        )

    def _own_create(self, change: Change, loaded: dict[str, Link]) -> Link | None:
        """The link whose pending create this record is (its reference names the link), with
        the record adopted (``adopt_own_create``); None for any other record."""
        link_id = referenced_link_id(change.system, change.resource, change.record)
        link = self._link(link_id) if link_id is not None else None
        if link is None or link.tenant != change.tenant:
            return None
        adopted = adopt_own_create(link, change)
        if adopted is not None:
            self._load(loaded, link)  # the version check compares against the stored link
        return adopted

    def _load(self, loaded: dict[str, Link], link: Link | None) -> Link | None:
        if link is not None:
            loaded.setdefault(link.link_id, link)
        return link

    def _candidates(
        self,
        tenant: str,
        keys: Sequence[MatchKey],
        loaded: dict[str, Link],
        *,
        exclude: str | None = None,
        linked_only: bool = False,
    ) -> list[Candidate]:
        """Index entries sharing a key (with the link holding each) and the links indexed under
        one of the keys (hub records being created; other records' keys), their links locked."""
        if not keys:
            return []
        self.store.lock(tenant, keys)
        contact_ids, by_key = self.store.candidates_for_keys(tenant, keys)
        contact_ids = [c for c in contact_ids if c != exclude]
        entries: list[tuple[ContactIndexEntry, str | None]] = []
        if contact_ids:
            # Lock the hub records, then read which link holds each (fresh under the lock).
            self.store.lock(tenant, contacts=contact_ids)
            entries = self.store.contact_entries(tenant, contact_ids)
        wanted = {link_id for _, link_id in entries if link_id is not None} | set(by_key)
        missing = wanted - set(loaded) - set(self._by_id)
        self._by_id.update(self.store.links_by_id(missing))
        for link_id in wanted - set(loaded):
            if link_id in self._by_id:
                loaded[link_id] = self._by_id[link_id]
        candidates: list[Candidate] = []
        for entry, owner_id in entries:
            owner = loaded.get(owner_id) if owner_id is not None else None
            if linked_only and owner is None:
                continue
            candidates.append(Candidate(contact=entry, link=owner))
        candidates += [Candidate(link=loaded[lid]) for lid in by_key if lid in loaded]
        return candidates

    # -- outcomes -----------------------------------------------------------------------------

    def _catch_up(
        self, decision: Decision, loaded: dict[str, Link], outcome: Outcome, now: datetime
    ) -> Handled | None:
        """After a hub create/link completed: if the index already holds a newer state of that
        hub record (its change event was handled while the outcome was in flight, as an unlinked
        record), feed that state to the link now."""
        contact_id = outcome.target.id
        link = decision.link
        if contact_id is None or link is None:
            return None
        link = loaded.get(link.link_id, link)
        hub_member = link.hub_member
        if (
            hub_member is None
            or hub_member.ref.id != contact_id
            or not hub_member.active
            or hub_member.observed is None
        ):
            return None
        known = self.store.contact_record(outcome.tenant, contact_id)
        if known is None or known.record is None or known.revision is None:
            return None
        observed = hub_member.observed.revision
        if observed is not None and known.revision <= observed:
            return None
        change = Change(
            event_id=derive_id("catch-up", outcome.outcome_id, contact_id, known.revision),
            tenant=outcome.tenant,
            system=hub_member.ref.system,
            resource=hub_member.ref.resource,
            record_id=contact_id,
            source_ts=known.source_ts
            or record_timestamp(hub_member.ref.system, known.record)
            or now,
            revision=known.revision,
            record=known.record,
        )
        follow_up = on_hub_change(link, change, self.policy, now)
        return self._persist(
            follow_up,
            loaded,
            now=now,
            source="change",
            subject=change.ref,
            event_id=change.event_id,
            command_id=None,
            caused_by=change.event_id,
            observed=Observed(change.ref, known.record, change.source_ts, known.revision, False),
            source_ts=change.source_ts,
            own_link=link,
        )

    # -- persisting a decision ----------------------------------------------------------------

    def _persist(
        self,
        decision: Decision,
        loaded: dict[str, Link],
        *,
        now: datetime,
        source: str,
        subject: RecordRef,
        event_id: str,
        command_id: str | None,
        caused_by: str,
        observed: Observed | None,
        source_ts: datetime | None,
        own_link: Link | None,
        error: tuple[str | None, str | None] = (None, None),
        cause_changed_at: datetime | None = None,
    ) -> Handled:
        store = self.store
        self.wrote = True
        # Reads first (the writes below go in one pipeline, without waiting for results).
        commands, held = self._breaker(decision.commands, subject, now)
        targets = [self._target_record(command, observed) for command in commands]
        checks = []
        # The history row's field-level before/after values (the link as loaded, before
        # ``loaded`` moves on below; services.mapper.domain.timeline).
        primary = decision.link
        fields = field_changes(
            loaded.get(primary.link_id) if primary is not None else None,
            primary,
            subject.key if subject.id is not None else None,
        )
        with store.pipeline():
            # 0. the full record the input carried (last known, never replaced by an older one)
            if observed is not None and observed.remember:
                self._remember(observed, now)
            # 1. links (version-checked), member index, link match keys
            for link in decision.links:
                checks.append(store.save_link(link, loaded.get(link.link_id)))
                loaded[link.link_id] = link
                self._cache(link)
            # 2. the contact index (only when not older) and its full records
            for entry in decision.index_upserts:
                record = None
                if observed is not None and is_hub(observed.ref.system, observed.ref.resource):
                    record = observed.record if observed.ref.id == entry.contact_id else None
                store.upsert_contact(entry, record, now)
            for contact_id in decision.index_deletes:
                store.delete_contact(subject.tenant, contact_id, source_ts, now)
            # 3. review items and conflicts (upsert by id)
            for item in decision.review_items:
                store.upsert_review(item)
            if decision.kind in LINKING_KINDS and subject.id is not None:
                store.resolve_reviews(subject, MATCH_REVIEWS, decision.kind.value, now)
            for conflict in decision.conflicts:
                store.insert_conflict(conflict)
            # 4. commands -> outbox (encoded Avro, with the last-known target record)
            for command, target_record in zip(commands, targets, strict=True):
                datum = command_datum(
                    command,
                    target_record=target_record,
                    caused_by=caused_by,
                    created_at=now,
                    cause_changed_at=cause_changed_at,
                )
                store.insert_outbox(
                    command,
                    topic=self.layout.commands(command.target.system, command.target.resource),
                    key=link_key(command.link_id),
                    payload=self.codec.encode("Command", datum),
                    caused_by=caused_by,
                    now=now,
                    traceparent=self.traceparent,
                )
            # 5. history (explain)
            link_id = decision.link.link_id if decision.link is not None else None
            if link_id is None and own_link is not None:
                link_id = own_link.link_id
            store.add_history(
                tenant=subject.tenant,
                link_id=link_id,
                ref=(subject.system, subject.resource, subject.id),
                source=source,
                event_id=event_id,
                command_id=command_id,
                decision=decision.kind.value,
                reason=decision.reason,
                commands=len(commands),
                error_code=error[0],
                error_message=error[1],
                at=now,
                fields=fields,
            )
        for check in checks:
            check()
        return Handled(
            source=source,
            system=subject.system,
            result=decision.kind.value,
            commands=tuple((c.target.system, c.target.resource, c.action.value) for c in commands),
            conflicts=tuple((c.property, c.rule) for c in decision.conflicts),
            deletes_held=held,
        )

    def _remember(self, observed: Observed, now: datetime) -> None:
        ref = observed.ref
        if ref.id is None:
            return
        if is_hub(ref.system, ref.resource):
            entry = hub_index_entry(
                ref.tenant, ref.id, observed.record, observed.revision, observed.source_ts
            )
            self.store.upsert_contact(entry, observed.record, now)
        else:
            self.store.upsert_record(ref, observed.record, observed.source_ts, now)

    def _target_record(
        self, command: Command, observed: Observed | None
    ) -> Mapping[str, Any] | None:
        """The last known full target record (the state this input carried, if it is the
        target; else the stored one)."""
        target = command.target
        if command.action is CommandAction.CREATE or target.id is None:
            return None
        if observed is not None and observed.ref.identity == target.identity:
            return observed.record
        if is_hub(target.system, target.resource):
            known = self.store.contact_record(target.tenant, target.id)
            return known.record if known is not None else None
        return self.store.record(target.tenant, target.system, target.resource, target.id)

    def _breaker(
        self, commands: Sequence[Command], subject: RecordRef, now: datetime
    ) -> tuple[list[Command], int]:
        """Mass-delete breaker: deletes beyond the hourly allowance are held for review."""
        deletes = [c for c in commands if c.action is CommandAction.DELETE]
        if not deletes:
            return list(commands), 0
        recent = self.store.deletes_since(now - timedelta(hours=1)) + self._batch_deletes
        held = deletes[max(self.max_deletes_per_hour - recent, 0) :]
        self._batch_deletes += len(deletes) - len(held)  # the batch's outbox rows are deferred
        for command in held:
            self.store.add_review(
                derive_id("review", MASS_DELETE_REASON, command.command_id),
                command.tenant,
                MASS_DELETE_REASON,
                f"delete of {command.target.key} held: more than "
                f"{self.max_deletes_per_hour} deletes within an hour",
                command.target,
                command.link_id,
                now,
            )
        held_ids = {c.command_id for c in held}
        return [c for c in commands if c.command_id not in held_ids], len(held)


def hub_index_entry(
    tenant: str,
    record_id: str,
    record: Mapping[str, Any],
    revision: int | None,
    source_ts: datetime | None,
) -> ContactIndexEntry:
    """The index entry of a hub record's state (as the domain builds it; the revision the input
    named, else the record's own)."""
    return index_entry(tenant, record_id, dict(record), hub_revision(revision, record), source_ts)
