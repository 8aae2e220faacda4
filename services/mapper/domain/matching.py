"""Matching a new record against existing hub records (and links still creating theirs).

The shell looks candidates up in the mapper's own index by ``match_keys`` (a record's keys,
``mappings.match_keys``) and passes them to ``match``. ``match`` re-checks that each candidate
really shares a key with the record, folds candidates that resolve to the same contact (or the
same link) into one, and decides:

* exactly one → ``LINK`` to it (join its link if it has one);
* none → ``CREATE``;
* several → ``AMBIGUOUS``: no link and no create; the record goes to the review list.

A record with no usable key (no valid e-mail / parseable phone for its rules) matches nothing.
A ``MatchResult`` names at most one candidate, so one record is never linked to two hub records.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.mapper.domain.mappings import MatchKey, props_match_keys
from services.mapper.domain.messages import Candidate
from services.mapper.domain.state import Link, LinkStatus


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


def match(keys: Sequence[MatchKey], candidates: Sequence[Candidate], tenant: str) -> MatchResult:
    """Decide link / create / ambiguous for a record with match ``keys``."""
    wanted = {MatchKey(*k) for k in keys}
    if not wanted:
        return MatchResult(MatchKind.CREATE)
    by_identity: dict[str, Candidate] = {}
    for candidate in candidates:
        if not usable(candidate, tenant) or not (candidate_keys(candidate) & wanted):
            continue
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
