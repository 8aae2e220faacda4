"""What goes into the mapper's decisions and what comes out of them.

Inputs (decoded by the service shell from the Avro events):

* ``Change`` — what a system said about one record (upsert or delete), with its source timestamp,
  its revision (when the system has one), and the record's raw state (the API's JSON);
* ``Outcome`` — what the loader did with one of our commands, with the resulting/fresh target
  state;
* ``Candidate`` — a possible match the shell found in the mapper's index by ``match_keys``.

Outputs, all carried by one ``Decision``:

* ``Command`` — a desired write: deterministic ``command_id``, only the fields to write, and the
  target state it was computed against (the hub's revision; member values for JSON Patch
  ``test`` guards);
* ``Conflict`` — a property edited on several sides since the last sync, and who won;
* ``ReviewItem`` — something an operator must see (ambiguous match, invalid value, refused clear…);
* ``ContactIndexEntry`` — rows of the hub records' match index to upsert (or ids to delete);
* the links to persist.

All are frozen pydantic models: ``model_dump(mode="json")`` gives the JSON to persist/emit.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.mapper.domain.identity import RecordRef
from services.mapper.domain.mappings import JsonScalar, MatchKey, Props
from services.mapper.domain.state import CommandAction, Link

__all__ = [
    "Candidate",
    "Change",
    "Command",
    "CommandAction",
    "Conflict",
    "ConflictSide",
    "ContactIndexEntry",
    "Decision",
    "DecisionKind",
    "EventRef",
    "Operation",
    "Outcome",
    "OutcomeKind",
    "ReviewItem",
    "ReviewReason",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Operation(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class Change(BaseModel):
    """One change event about one record."""

    model_config = _FROZEN

    event_id: str
    """Identity of the input event (a webhook's id, or the extractor's deterministic id)."""
    tenant: str
    system: str
    resource: str
    record_id: str
    operation: Operation = Operation.UPSERT
    source_ts: datetime
    """When the record last changed, as its system says (or the event time); for a delete
    found by reconciliation, when it was found."""
    revision: int | None = None
    """The record's revision, for a system that has one (orders changes before timestamps do)."""
    record: dict[str, Any] | None = None
    """The record's state; required for upserts."""
    parent_id: str | None = None
    """Contact persons: the parent customer/supplier id (read from ``ContactId`` if absent)."""
    parent_kind: str | None = None
    """Contact persons: ``"customer"`` or ``"supplier"`` when the extractor knows."""
    merged_into: str | None = None
    """A hub delete caused by a merge: the surviving hub record's id."""

    @property
    def ref(self) -> RecordRef:
        return RecordRef(
            tenant=self.tenant,
            system=self.system,
            resource=self.resource,
            id=self.record_id,
            parent_id=self.parent_id,
        )


class OutcomeKind(StrEnum):
    APPLIED = "applied"
    NOOP = "noop"
    CREATED = "created"
    LINKED_EXISTING = "linked_existing"
    CONFLICT = "conflict"
    REJECTED = "rejected"
    FAILED = "failed"


class Outcome(BaseModel):
    """The loader's report on one command."""

    model_config = _FROZEN

    outcome_id: str
    command_id: str
    tenant: str
    link_id: str
    kind: OutcomeKind
    target: RecordRef
    """The command's target; for ``created``/``linked_existing`` with the id now known."""
    record: dict[str, Any] | None = None
    """Resulting target state (applied/created/linked_existing) or the fresh one (conflict)."""
    revision: int | None = None
    source_ts: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None


class EventRef(BaseModel):
    """The input a decision was made for (part of every derived id)."""

    model_config = _FROZEN

    kind: str
    """``change`` or ``outcome``."""
    id: str


class Command(BaseModel):
    """A desired write to one record.

    ``props`` holds canonical property -> value to write (to the hub: already in its write form,
    e.g. phones in E.164). ``fields`` holds the same keyed by target field: the member's fields
    (plus fixed create fields such as ``IsPerson``), or the hub's field paths
    (``info.name.first``…). ``expected`` is the state it was computed against, keyed like
    ``fields``: member raw values for JSON Patch ``test`` guards; the hub's current values, with
    ``expected_revision`` the revision to send.
    """

    model_config = _FROZEN

    command_id: str
    tenant: str
    link_id: str
    target: RecordRef
    action: CommandAction
    props: Props = Field(default_factory=dict)
    fields: dict[str, JsonScalar] = Field(default_factory=dict)
    expected: dict[str, JsonScalar] = Field(default_factory=dict)
    expected_revision: int | None = None
    cause: EventRef
    allow_duplicates: bool = False
    """A hub create that must not be refused for another record with its e-mail/phone (an
    operator chose to create a new hub record for a record matching several)."""


class ConflictSide(BaseModel):
    model_config = _FROZEN

    member: str
    """Member key (``system:resource:id``) or ``link`` for the link's last synced value."""
    value: str | None
    changed_at: datetime | None


class Conflict(BaseModel):
    """A property with competing values; ``kind``: ``concurrent_edit`` (both sides edited since
    the last sync), ``initial`` (first link of two records that disagree) or ``join`` (a record
    joining a link disagrees with it)."""

    model_config = _FROZEN

    conflict_id: str
    tenant: str
    link_id: str
    property: str
    kind: str
    rule: str
    winner: ConflictSide
    losers: tuple[ConflictSide, ...]
    cause: EventRef
    at: datetime


class ReviewReason(StrEnum):
    AMBIGUOUS_MATCH = "ambiguous_match"
    INSUFFICIENT_CONTACT_DATA = "insufficient_contact_data"
    # The two values below are stored data, named when the hub was always a Wix contact: review
    # ids derive from the value (sync.review_item), review rows and the open-review metric's
    # ``reason`` label carry it. Changing them would open a second review item for a problem
    # already under review after an upgrade, and break dashboards filtering on the label.
    WOULD_EMPTY_HUB_RECORD = "would_empty_wix_contact"
    INVALID_VALUE = "invalid_value"
    WRITE_REJECTED = "write_rejected"
    HUB_RECORD_MERGED = "wix_contact_merged"
    LINK_CONFLICT = "link_conflict"


class ReviewItem(BaseModel):
    """Something for an operator's review list. ``review_id`` is deterministic per subject and
    reason, so the same problem seen again upserts the same row. Never holds personal data in
    ``detail`` (values stay in the link state)."""

    model_config = _FROZEN

    review_id: str
    tenant: str
    reason: ReviewReason
    detail: str
    record: RecordRef | None = None
    link_id: str | None = None
    property: str | None = None
    candidates: tuple[str, ...] = ()
    at: datetime


class ContactIndexEntry(BaseModel):
    """A row of the mapper's match index of hub records (upsert by ``(tenant, contact_id)``;
    ``contact_id`` is the hub record's id)."""

    model_config = _FROZEN

    tenant: str
    contact_id: str
    keys: tuple[MatchKey, ...]
    props: Props
    revision: int | None = None
    source_ts: datetime | None = None
    has_other_items: bool = False


class Candidate(BaseModel):
    """A possible match: an indexed hub record, the link owning it, or a link whose hub record
    is still being created (``contact`` None). The shell finds candidates by ``match_keys``."""

    model_config = _FROZEN

    contact: ContactIndexEntry | None = None
    link: Link | None = None

    @property
    def identity(self) -> str:
        """What the candidate resolves to: a hub record id, else ``link:<link_id>``."""
        if self.contact is not None:
            return self.contact.contact_id
        if self.link is not None:
            contact_id = self.link.hub_record_id
            return contact_id if contact_id is not None else f"link:{self.link.link_id}"
        return ""


class DecisionKind(StrEnum):
    CREATE = "create"
    """A new link whose hub record (or member record) is being created."""
    LINKED = "linked"
    """The record was linked to an existing hub record / joined an existing link."""
    MAPPED = "mapped"
    """An edit was merged (commands may be emitted or held)."""
    HELD = "held"
    """An edit was merged but its writes wait for an in-flight write/create to complete."""
    CONFLICT = "conflict"
    """An edit was merged and at least one property conflict was recorded."""
    ECHO = "echo"
    NOOP = "noop"
    STALE = "stale"
    REVIEW = "review"
    UNLINKED = "unlinked"
    SKIPPED = "skipped"
    INDEXED = "indexed"
    COMPLETED = "completed"
    """An outcome completed or confirmed a write."""
    RECORDED = "recorded"
    """A rejected/failed outcome was recorded on the link."""


class Decision(BaseModel):
    """Everything a decision asks the shell to do, in one transaction.

    Persist every link in ``links`` (upsert by ``link_id``; empty = link unchanged), write
    ``commands`` to the outbox, record ``conflicts`` and ``review_items`` (upsert by id), apply
    ``index_upserts``/``index_deletes`` to the contact index.
    """

    model_config = _FROZEN

    kind: DecisionKind
    reason: str | None = None
    links: tuple[Link, ...] = ()
    commands: tuple[Command, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    review_items: tuple[ReviewItem, ...] = ()
    index_upserts: tuple[ContactIndexEntry, ...] = ()
    index_deletes: tuple[str, ...] = ()

    @property
    def link(self) -> Link | None:
        """The primary link of this decision (the first of ``links``)."""
        return self.links[0] if self.links else None

    @property
    def delete_commands(self) -> tuple[Command, ...]:
        """Commands that delete a record (the shell's mass-delete breaker counts these)."""
        return tuple(c for c in self.commands if c.action is CommandAction.DELETE)
