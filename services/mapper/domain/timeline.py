"""Field-level before/after values of a decision, for the per-link timeline.

``field_changes(before, after, subject)`` compares a link as it was loaded with the link a
decision saves: the properties whose observed value changed on the subject record's member
(what a change or an outcome showed), else — when the subject's member did not move (an
operator action, a merge) — the link's synced values (``base``) that changed. The result maps
property -> ``{"before": value, "after": value}`` (None when nothing changed) and is stored in
``mapper_history.fields``. It holds personal data: it is read only by the authenticated console
and never logged.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from services.mapper.domain.mappings import JsonScalar, Props
from services.mapper.domain.merge import cmp
from services.mapper.domain.state import Link

__all__ = ["FieldChanges", "field_changes"]

FieldChanges = dict[str, dict[str, JsonScalar]]


def _diff(before: Props, after: Props) -> FieldChanges:
    out: FieldChanges = {}
    for prop in sorted(set(before) | set(after)):
        old, new = before.get(prop), after.get(prop)
        if cmp(prop, old) != cmp(prop, new) or (prop in before) != (prop in after):
            out[prop] = {"before": old, "after": new}
    return out


def _observed(link: Link | None, key: str) -> Props:
    member = link.member(key) if link is not None else None
    if member is None or member.observed is None:
        return {}
    return dict(member.observed.props)


def field_changes(
    before: Link | None, after: Link | None, subject: str | None
) -> FieldChanges | None:
    """What a decision changed, property -> {before, after}; None when nothing changed.

    ``subject`` is the member key (``system:resource:id``) of the record the input was about."""
    if after is None:
        return None
    if subject is not None:
        changed = _diff(_observed(before, subject), _observed(after, subject))
        if changed:
            return changed
    changed = _diff(dict(before.base) if before is not None else {}, dict(after.base))
    return changed or None
