"""Link state: which records in which systems are the same person, and what the mapper knows.

A ``Link`` groups one *hub* record (its *hub member*) with one or more records of the member
flows (its *flow members*, each with its flow) — roles named by the dataflow, not systems.
Per member it keeps:

* ``observed`` — the mapped props as last observed from that side (source timestamp, the
  record's revision when it has one, per-property change timestamps, and whether that state
  came from our own write);
* ``pending`` — the write in flight to that member (at most one; later differences are *held*
  and computed again when its outcome arrives). For a member whose record does not exist yet
  (``ref.id is None``) the pending write is the create;
* ``written`` — props as last written there by us (confirmed by the loader);
* ``synced`` — properties for which the member has taken part in a sync (a member that just
  joined is not yet ``synced``: its differing values compete with the link's, see ``merge``);
* ``rejected`` — values the target refused, so that they are not re-sent on every event;
* ``reverted`` — values we wrote that a verification read found gone without a stamp change
  (the write is re-sent rather than the old value taken as an edit).

At link level, ``base`` holds the last synced value per canonical property (the value every
member agreed on, ``base_ts`` when it was set at its source) — the ancestor of the three-way merge.

Persistence: a ``Link`` is a frozen pydantic model; ``link.model_dump(mode="json")`` (or
``to_json``) is the JSON document to store, ``Link.model_validate``/``from_json`` reads it back.
``version`` grows by one with every decision that changes the link (optimistic locking).

Stored documents of earlier releases read unchanged: they hold system names only as values
(``ref.system``; the hub member's ``flow``), never as keys, and which member is the hub follows
from the installed dataflow's hub system/resource (``tests/mapper_domain/test_state.py`` reads a
literal document of the release before the hub became a role).

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.mapper.domain.identity import RecordRef
from services.mapper.domain.mappings import FLOWS, PROPERTIES, JsonScalar, MatchKey, Props, is_hub


class CommandAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Origin(StrEnum):
    """Where an observed state came from."""

    EVENT = "event"
    """A change event (someone edited the record, or a reconciliation read it)."""
    WRITE = "write"
    """The loader's report of our own write (its first echo is expected)."""


NO_MEMBER_LEFT = "no_member_left"
"""A link's status reason once its last flow member left (deleted, archived, filtered, ignored)."""
HUB_RECORD_DELETED = "hub_record_deleted"
"""A link's (and its members') status reason once its hub record was deleted."""
HUB_RECORD_MERGED = "hub_record_merged"
"""... once its hub record was merged into another one."""


class MemberStatus(StrEnum):
    ACTIVE = "active"
    UNLINKED = "unlinked"


class LinkStatus(StrEnum):
    ACTIVE = "active"
    """Synced."""
    UNLINKED = "unlinked"
    """No longer synced: the hub record was deleted/merged away, or no flow member is left.
    Events for its members are recorded, never acted on (a member record may join again
    through matching while the hub record still exists)."""
    ERROR = "error"
    """The create of the hub record (or of a member record) failed; the next change retries."""
    MERGED = "merged"
    """Its members moved to ``merged_into`` (the loader found the hub record already linked)."""


class Snapshot(BaseModel):
    """The mapped props of one member as observed at one point in time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    props: Props
    raw: dict[str, JsonScalar] = Field(default_factory=dict)
    source_ts: datetime | None = None
    revision: int | None = None
    changed_at: dict[str, datetime] = Field(default_factory=dict)
    """Per property: source timestamp of the observation in which its value last changed."""
    origin: Origin = Origin.EVENT
    event_id: str | None = None
    has_other_items: bool = False


class PendingWrite(BaseModel):
    """A write in flight to one member (a create when the member has no id yet)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    action: CommandAction
    props: Props
    """Canonical props being written, in the form the target will hold them."""
    against_revision: int | None = None
    issued_at: datetime


class Written(BaseModel):
    """Props as last written to a member by us (confirmed by an outcome)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    props: Props
    at: datetime


class ErrorInfo(BaseModel):
    """Why the last write to a member did not apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: str
    command_id: str
    code: str | None = None
    message: str | None = None
    at: datetime


class Member(BaseModel):
    """One record of a link (the hub record or a flow member's record)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: RecordRef
    flow: str
    """The member resource's flow name; for the hub member, the hub's system name."""
    status: MemberStatus = MemberStatus.ACTIVE
    status_reason: str | None = None
    observed: Snapshot | None = None
    pending: PendingWrite | None = None
    written: Written | None = None
    synced: tuple[str, ...] = ()
    rejected: dict[str, str | None] = Field(default_factory=dict)
    """Property -> comparison form of a value the target rejected (not re-sent)."""
    reverted: tuple[str, ...] = Field(default=(), exclude_if=lambda value: not value)
    """Properties whose value we wrote there was later found replaced although the record's
    stamp (its revision / last-changed time) had not moved — a verification read of a
    write that did not stick. Such a value is not an edit: the merge ignores it as a contender,
    so the link's value is written again (``sync.observe``; ``docs/verification.md``). Left out
    of the stored document while empty, so that a replica of the previous version (``extra``
    forbidden) still reads every other link during a rolling update."""
    created_by_engine: bool = False
    last_error: ErrorInfo | None = None
    joined_at: datetime
    match_keys: tuple[MatchKey, ...] = ()
    """Flow members: the keys the record is matched on (``mappings.match_keys`` of its raw
    record, e.g. an employee's e-mail, which flow A does not sync). ``link_match_keys`` includes
    them, so another record of the same person finds this link although its hub record does not
    carry that key."""

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def is_hub(self) -> bool:
        """Whether this member is the link's hub record (by its system and resource)."""
        return is_hub(self.ref.system, self.ref.resource)

    @property
    def active(self) -> bool:
        return self.status is MemberStatus.ACTIVE

    @property
    def mapped(self) -> tuple[str, ...]:
        """The canonical properties this member carries (the hub: all of them)."""
        if self.is_hub:
            return tuple(PROPERTIES)
        if self.observed is not None:
            return tuple(self.observed.props)
        if self.pending is not None:
            return tuple(self.pending.props)
        flow = FLOWS.get(self.flow)
        return flow.property_names if flow is not None else ()


class Link(BaseModel):
    """Link state of one hub record and its flow members' records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    link_id: str
    tenant: str
    status: LinkStatus = LinkStatus.ACTIVE
    status_reason: str | None = None
    members: tuple[Member, ...]
    base: Props = Field(default_factory=dict)
    base_ts: dict[str, datetime] = Field(default_factory=dict)
    merged_into: str | None = None
    version: int = 0
    created_at: datetime
    updated_at: datetime

    # --- derived views ------------------------------------------------------------------------

    @property
    def hub_member(self) -> Member | None:
        for member in self.members:
            if member.is_hub:
                return member
        return None

    @property
    def hub_record_id(self) -> str | None:
        """The hub record's id; ``None`` while its create is in flight (or failed)."""
        hub_member = self.hub_member
        return hub_member.ref.id if hub_member is not None else None

    @property
    def flow_members(self) -> tuple[Member, ...]:
        """Every member but the hub: the records linked through a member flow."""
        return tuple(m for m in self.members if not m.is_hub)

    @property
    def pending_create(self) -> bool:
        """Whether a create (of the hub record or of a member record) is in flight."""
        return any(
            m.ref.id is None and m.pending is not None and m.pending.action is CommandAction.CREATE
            for m in self.members
        )

    def member(self, key: str) -> Member | None:
        for member in self.members:
            if member.key == key:
                return member
        return None

    def member_for(self, ref: RecordRef) -> Member | None:
        """The member with ``ref``'s identity (system, resource, id)."""
        return self.member(ref.key)

    def member_refs(self) -> tuple[RecordRef, ...]:
        """Identities to index to find a record's link: every member with an id, unlinked ones
        included (their later events are recognised and ignored); none for a merged link (its
        members live on in ``merged_into``)."""
        if self.status is LinkStatus.MERGED:
            return ()
        return tuple(m.ref for m in self.members if m.ref.id is not None)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Link:
        return cls.model_validate_json(text)

    # --- functional updates -------------------------------------------------------------------

    def replace_member(self, key: str, member: Member) -> Link:
        """A copy with the member keyed ``key`` replaced (its key may change: id assigned)."""
        members = tuple(member if m.key == key else m for m in self.members)
        return self.model_copy(update={"members": members})

    def add_member(self, member: Member) -> Link:
        return self.model_copy(update={"members": (*self.members, member)})
