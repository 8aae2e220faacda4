"""The per-property three-way merge of a link, and the writes it implies.

``plan(link, policy)`` computes, for every canonical property, the value all members should hold:

* A member *changed* a property when its observed value differs (comparison form) from the link's
  ``base`` (the last synced value) — unless a write of ours to that property is in flight to it
  (its value is about to be replaced; if the user edits it meanwhile, the observation drops the
  pending value and the member changes again), or the value is the one we last wrote there
  (``written``: our own write is never an edit, even when the link moved on since), or our write
  there was found reverted without a stamp change (``reverted``: the write did not stick).
* Members that joined recently (property not in ``synced``) compete with the link's value, but
  an empty value never clears on joining; with no base at all (a brand-new link), non-empty
  values compete and empty ones only receive.
* One changed value → it wins. Several different values → ``Policy.conflict_rule`` decides
  (default: latest ``changed_at``; ties go to a flow member over the hub, then to the smaller
  member key) and a conflict is reported.
* A result that would leave the hub record without any name, e-mail or phone (and no other
  email/phone item) is refused for the clearing properties (they are left out of the plan).

``needs(link, plan)`` lists, per member, the properties whose desired value differs from what the
member holds or is being written (no-op suppression), minus values the target already rejected.

``refresh_base(link)`` moves ``base`` forward wherever every participating member holds the same
value and no write to it is in flight, and marks those members ``synced``.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.mapper.domain.mappings import CONTACT_DATA_PROPERTIES, Props, kind_of
from services.mapper.domain.normalize import compare_key
from services.mapper.domain.policy import ConflictRule, Policy
from services.mapper.domain.state import CommandAction, Link, Member

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LINK_SIDE = "link"


@dataclass(frozen=True)
class Contender:
    """A value competing for one property."""

    member: str
    system: str
    """The member's system (``link`` for the link's own value)."""
    value: str | None
    changed_at: datetime | None
    kind: str
    """``edit`` (changed since the last sync), ``join``/``initial`` (never synced), ``base``."""
    from_flow_member: bool = False
    """Whether the value comes from a flow member (wins a tie against the hub's)."""


@dataclass(frozen=True)
class PropertyConflict:
    property: str
    kind: str
    rule: ConflictRule
    winner: Contender
    losers: tuple[Contender, ...]


@dataclass(frozen=True)
class Plan:
    desired: Props = field(default_factory=dict)
    """Property -> value every member mapping it should hold (absent: nothing to decide)."""
    conflicts: tuple[PropertyConflict, ...] = ()
    refused: tuple[str, ...] = ()
    """Properties whose clearing was refused (would empty the hub record)."""


def cmp(prop: str, value: str | None) -> str | None:
    return compare_key(kind_of(prop), value)


def active_members(link: Link) -> tuple[Member, ...]:
    return tuple(m for m in link.members if m.active)


def pending_props(member: Member) -> Props:
    """Props of the UPDATE in flight to the member (a create is not an observed state)."""
    if member.pending is None or member.pending.action is not CommandAction.UPDATE:
        return {}
    return member.pending.props


def known_value(member: Member, prop: str) -> str | None:
    """What the member holds or will hold once our in-flight write lands."""
    if member.pending is not None and prop in member.pending.props:
        return member.pending.props[prop]
    if member.observed is not None:
        return member.observed.props.get(prop)
    return None


def holds_our_write(member: Member, prop: str, value: str | None) -> bool:
    """Whether the member's value is the one we wrote there (not an edit of its own)."""
    written = member.written
    return (
        written is not None
        and prop in written.props
        and cmp(prop, value) == cmp(prop, written.props[prop])
    )


def _participants(link: Link) -> dict[str, list[Member]]:
    """Property -> the active members that map it and have observed it (in member order)."""
    found: dict[str, list[Member]] = {}
    for member in link.members:
        if not member.active or member.observed is None:
            continue
        observed = member.observed.props
        for prop in member.mapped:
            if prop in observed:
                found.setdefault(prop, []).append(member)
    return found


def _all_props(link: Link) -> list[str]:
    names: set[str] = set()
    for member in active_members(link):
        names.update(member.mapped)
    return sorted(names)


def _contenders(link: Link, prop: str, participants: list[Member]) -> list[Contender]:
    has_base = prop in link.base
    base_key = cmp(prop, link.base.get(prop))
    found: list[Contender] = []
    for member in participants:
        if prop in pending_props(member):
            continue
        assert member.observed is not None
        value = member.observed.props.get(prop)
        if holds_our_write(member, prop, value) or prop in member.reverted:
            continue
        changed_at = member.observed.changed_at.get(prop, member.observed.source_ts)
        if has_base:
            if cmp(prop, value) == base_key:
                continue
            if prop in member.synced:
                kind = "edit"
            elif value is None:
                continue
            else:
                kind = "join"
        elif value is None:
            continue
        else:
            kind = "initial"
        found.append(
            Contender(member.key, member.ref.system, value, changed_at, kind, not member.is_hub)
        )
    if found and has_base and base_key is not None and all(c.kind == "join" for c in found):
        found.append(
            Contender(LINK_SIDE, LINK_SIDE, link.base[prop], link.base_ts.get(prop), "base")
        )
    return found


def _rank(contender: Contender) -> tuple[datetime, int]:
    return (contender.changed_at or _EPOCH, 1 if contender.from_flow_member else 0)


def _latest(contenders: Iterable[Contender]) -> Contender:
    ordered = sorted(contenders, key=lambda c: c.member)
    return sorted(ordered, key=_rank, reverse=True)[0]


def resolve(contenders: list[Contender], rule: ConflictRule) -> Contender:
    """The winning contender under ``rule``."""
    if rule.winner is not None:
        favoured = [c for c in contenders if c.system == rule.winner]
        if favoured:
            return _latest(favoured)
    return _latest(contenders)


def _conflict_kind(contenders: list[Contender]) -> str:
    kinds = {c.kind for c in contenders}
    if "edit" in kinds and len([c for c in contenders if c.kind == "edit"]) > 1:
        return "concurrent_edit"
    if "initial" in kinds:
        return "initial"
    if "join" in kinds:
        return "join"
    return "concurrent_edit"


def _refuse_empty_hub_record(link: Link, desired: Props) -> tuple[Props, tuple[str, ...]]:
    hub_member = link.hub_member
    if hub_member is None or not hub_member.active:
        return desired, ()
    if hub_member.observed is not None and hub_member.observed.has_other_items:
        return desired, ()
    final = {
        prop: desired[prop] if prop in desired else known_value(hub_member, prop)
        for prop in CONTACT_DATA_PROPERTIES
    }
    if any(value is not None for value in final.values()):
        return desired, ()
    refused = tuple(
        prop
        for prop in CONTACT_DATA_PROPERTIES
        if prop in desired and desired[prop] is None and known_value(hub_member, prop) is not None
    )
    if not refused:
        return desired, ()
    return {k: v for k, v in desired.items() if k not in refused}, refused


def plan(link: Link, policy: Policy) -> Plan:
    """What every member of ``link`` should hold (see the module docstring)."""
    desired: Props = {}
    conflicts: list[PropertyConflict] = []
    participants = _participants(link)
    for prop in _all_props(link):
        contenders = _contenders(link, prop, participants.get(prop, []))
        if not contenders:
            if prop in link.base:
                desired[prop] = link.base[prop]
            continue
        distinct = {cmp(prop, c.value) for c in contenders}
        if len(distinct) == 1:
            desired[prop] = _latest(contenders).value
            continue
        rule = policy.conflict_rule(prop)
        winner = resolve(contenders, rule)
        desired[prop] = winner.value
        losers = tuple(c for c in contenders if cmp(prop, c.value) != cmp(prop, winner.value))
        conflicts.append(PropertyConflict(prop, _conflict_kind(contenders), rule, winner, losers))
    desired, refused = _refuse_empty_hub_record(link, desired)
    kept = tuple(c for c in conflicts if c.property not in refused)
    return Plan(desired=desired, conflicts=kept, refused=refused)


def needs(link: Link, the_plan: Plan) -> dict[str, Props]:
    """Member key -> props to write there (only values that differ from what it holds)."""
    out: dict[str, Props] = {}
    for member in active_members(link):
        wanted: Props = {}
        for prop in member.mapped:
            if prop not in the_plan.desired:
                continue
            value = the_plan.desired[prop]
            target = cmp(prop, value)
            if cmp(prop, known_value(member, prop)) == target:
                continue
            if prop in member.rejected and member.rejected[prop] == target:
                continue
            wanted[prop] = value
        if wanted:
            out[member.key] = wanted
    return out


def refresh_base(link: Link) -> Link:
    """Advance ``base`` where all participants agree and nothing is in flight to them."""
    base = dict(link.base)
    base_ts = dict(link.base_ts)
    synced: dict[str, set[str]] = {m.key: set(m.synced) for m in link.members}
    participants = _participants(link)
    for prop in _all_props(link):
        members = participants.get(prop, [])
        if not members or any(prop in pending_props(m) for m in members):
            continue
        if len({cmp(prop, m.observed.props.get(prop)) for m in members if m.observed}) != 1:
            continue
        latest = max(
            members,
            key=lambda m: (
                (m.observed.changed_at.get(prop) if m.observed else None) or _EPOCH,
                m.key,
            ),
        )
        assert latest.observed is not None
        base[prop] = latest.observed.props.get(prop)
        stamp = latest.observed.changed_at.get(prop, latest.observed.source_ts)
        if stamp is not None:
            base_ts[prop] = stamp
        for member in members:
            synced[member.key].add(prop)
    members_out = tuple(
        _with_synced(m, tuple(sorted(synced[m.key] & set(m.mapped)))) for m in link.members
    )
    return link.model_copy(update={"base": base, "base_ts": base_ts, "members": members_out})


def _with_synced(member: Member, synced: tuple[str, ...]) -> Member:
    return member if member.synced == synced else member.model_copy(update={"synced": synced})
