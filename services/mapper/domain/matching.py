"""Matching a new record against existing hub records (and links still creating theirs).

The shell looks candidates up in the mapper's own index by ``match_keys`` (a record's keys,
``mappings.match_keys``) and passes them to ``match``. ``match`` re-checks that each candidate
really shares a key with the record, folds candidates that resolve to the same contact (or the
same link) into one, and decides:

* exactly one → ``LINK`` to it (join its link if it has one);
* none → ``CREATE``;
* several → ``AMBIGUOUS``: no link and no create; the record goes to the review list.

A hub record nobody links yet may be the very record a link is creating, seen (extracted) before
the create's outcome reached the mapper. That is routine, not rare: the hub's change (a webhook)
often overtakes the loader's outcome, the mapper handles a batch's hub changes first, and a loader
killed between a create and its outcome sends the outcome only after its restart. Counted as a
second candidate it would put every later record of that key in review as "ambiguous" for good,
so ``match`` folds it into the link creating it (``created_by``): that link's create is in flight,
sends one of the hub record's keys, was issued no later than the hub record last changed (plus
``CREATE_CLOCK_SKEW``), and no other unlinked hub record of the record's keys qualifies for it
(one create makes one record: two such records stay two candidates).

A record with no usable key (no valid e-mail / parseable phone for its rules) matches nothing.
A ``MatchResult`` names at most one candidate, so one record is never linked to two hub records.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from services.mapper.domain.mappings import MatchKey, props_match_keys
from services.mapper.domain.messages import Candidate, ContactIndexEntry
from services.mapper.domain.state import CommandAction, Link, LinkStatus, PendingWrite

CREATE_CLOCK_SKEW = timedelta(seconds=1)
"""How far the hub's clock (a record's change time) may run behind the mapper's (a command's
``issued_at``) when telling whether a hub record can be the result of a create. Small on
purpose: a hub record changed shortly before the create was issued (a contact entered just
before the sync started) is not its result and must stay a candidate of its own."""


class MatchKind(StrEnum):
    LINK = "link"
    CREATE = "create"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class MatchResult:
    kind: MatchKind
    candidate: Candidate | None = None
    """The one candidate to link to (``LINK`` only)."""
    candidate_ids: tuple[str, ...] = ()
    """Identities of all matching candidates (sorted), for the review list."""


def link_match_keys(link: Link) -> list[MatchKey]:
    """Keys under which a link is a candidate: the props its hub record has or is being
    created/updated with, and the match keys of its active flow members (an employee matched on
    an e-mail that flow A never writes to the hub). Index these for every live link."""
    hub_member = link.hub_member
    if hub_member is None:
        return []
    props: dict[str, str | None] = {}
    if hub_member.observed is not None:
        props.update(hub_member.observed.props)
    if hub_member.pending is not None:
        props.update(hub_member.pending.props)
    keys = props_match_keys(props)
    for member in link.flow_members:
        if member.active:
            for key in member.match_keys:
                found = MatchKey(*key)
                if found not in keys:
                    keys.append(found)
    return keys


def candidate_keys(candidate: Candidate) -> set[MatchKey]:
    keys: set[MatchKey] = set()
    if candidate.contact is not None:
        keys.update(MatchKey(*k) for k in candidate.contact.keys)
    if candidate.link is not None:
        keys.update(link_match_keys(candidate.link))
    return keys


def usable(candidate: Candidate, tenant: str) -> bool:
    """A candidate can receive a new member: same tenant, hub record alive or being created."""
    if candidate.contact is not None and candidate.contact.tenant != tenant:
        return False
    link = candidate.link
    if link is None:
        return candidate.contact is not None
    if link.tenant != tenant or link.status is LinkStatus.MERGED:
        return False
    hub_member = link.hub_member
    if hub_member is None or not hub_member.active:
        return False
    return hub_member.ref.id is not None or hub_member.pending is not None


def hub_create_in_flight(link: Link) -> PendingWrite | None:
    """The pending create of ``link``'s hub record (no outcome yet), else None."""
    hub_member = link.hub_member
    if hub_member is None or hub_member.ref.id is not None:
        return None
    pending = hub_member.pending
    return pending if pending is not None and pending.action is CommandAction.CREATE else None


def created_by(contact: ContactIndexEntry, links: Sequence[Link]) -> Link | None:
    """The one link among ``links`` whose hub create ``contact`` can be the result of: the
    create is in flight, sends one of the contact's keys, and was issued no later than the
    contact last changed (plus ``CREATE_CLOCK_SKEW``). None when no link, or several, qualify
    (then which one created it cannot be told), or the contact's change time is unknown."""
    if contact.source_ts is None:
        return None
    keys = {MatchKey(*k) for k in contact.keys}
    creators: dict[str, Link] = {}
    for link in links:
        pending = hub_create_in_flight(link)
        if (
            pending is not None
            and link.tenant == contact.tenant
            and pending.issued_at - CREATE_CLOCK_SKEW <= contact.source_ts
            and keys & set(props_match_keys(pending.props))
        ):
            creators[link.link_id] = link
    return next(iter(creators.values())) if len(creators) == 1 else None


def _creations(candidates: Sequence[Candidate], creating: Sequence[Link]) -> dict[str, Link]:
    """Per unlinked hub record among ``candidates``, the link whose create made it
    (``created_by``). A create makes one record: when several unlinked ones could be a link's,
    none of them is taken for it."""
    creator_of: dict[str, Link] = {}
    for candidate in candidates:
        if candidate.link is None and candidate.contact is not None:
            creator = created_by(candidate.contact, creating)
            if creator is not None:
                creator_of[candidate.contact.contact_id] = creator
    made = Counter(link.link_id for link in creator_of.values())
    return {c: link for c, link in creator_of.items() if made[link.link_id] == 1}


def _resolved(candidate: Candidate, creations: Mapping[str, Link]) -> Candidate:
    """``candidate``, or the link creating it when it is an unlinked hub record a create in
    flight made (``_creations``)."""
    if candidate.link is not None or candidate.contact is None:
        return candidate
    creator = creations.get(candidate.contact.contact_id)
    return Candidate(link=creator) if creator is not None else candidate


def match(keys: Sequence[MatchKey], candidates: Sequence[Candidate], tenant: str) -> MatchResult:
    """Decide link / create / ambiguous for a record with match ``keys``."""
    wanted = {MatchKey(*k) for k in keys}
    if not wanted:
        return MatchResult(MatchKind.CREATE)
    creating = [
        c.link
        for c in candidates
        if c.link is not None and usable(c, tenant) and hub_create_in_flight(c.link)
    ]
    matching = [c for c in candidates if usable(c, tenant) and candidate_keys(c) & wanted]
    creations = _creations(matching, creating)
    by_identity: dict[str, Candidate] = {}
    for found in matching:
        candidate = _resolved(found, creations)
        identity = candidate.identity
        known = by_identity.get(identity)
        if known is None:
            by_identity[identity] = candidate
        else:
            by_identity[identity] = Candidate(
                contact=known.contact or candidate.contact, link=known.link or candidate.link
            )
    ids = tuple(sorted(by_identity))
    if not ids:
        return MatchResult(MatchKind.CREATE)
    if len(ids) == 1:
        return MatchResult(MatchKind.LINK, by_identity[ids[0]], ids)
    return MatchResult(MatchKind.AMBIGUOUS, None, ids)
