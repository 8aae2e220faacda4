"""Whose child is it: the kind of a record's parent (``ChangeEvent.parent_kind``), for resources
whose API lists the children of several parent kinds together and names only the parent's id
(``ResourceDescriptor.parent_role``, e.g. contact persons of customers and of suppliers). The
role says, as data, which parent resource decides: a parent that is a record of
``role.resource`` makes ``role.found``, any other parent ``role.otherwise``.

``ParentKinds.kind(parent_id)``:

1. a live record of the parent resource in the known set -> ``found`` (no call; parent resources
   are polled before their children, so during a snapshot nearly every parent is found here);
2. a cached answer younger than ``ttl`` seconds;
3. else one lookup of the parent (``SourceStream.get``): found -> ``found``, cached for ``ttl``;
4. not found is only proof of "another kind" when the parent is old enough for every read
   replica to have it. Reads may lag writes (no read-your-writes is promised) and a child can
   only be created under an existing parent, so the parent is at least as old as the child: a
   child created more than ``settle_seconds`` ago (its ``role.created_field``; unknown counts as
   old) -> ``otherwise``, cached for ``ttl``. A younger one -> ``ParentNotSettledError``
   (retriable), nothing cached: the page fails and is read again next cycle, when the fresh
   parent is readable (or the child is old enough for the answer to be believed). A child of
   the other kind therefore waits at most ``settle_seconds`` after its creation; a fresh
   parent's child is never emitted as the other kind's.
5. any other error propagates the same way, so a child is never emitted with an unknown kind
   because the API had a bad moment.

Imports: the core errors and connector types, the extractor's known set; the lookup is injected,
so this module makes no HTTP call of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.core.connector import ParentRole, RecordKey, SourceStream
from services.core.errors import NotFoundError, TetherError
from services.core.stream_positions import parse_ns, to_datetime
from services.extractor.known import KnownSet


class ParentNotSettledError(TetherError):
    """The parent of a record created too recently for a "not found" to be trusted (the read may
    lag the parent's creation); try again later."""

    retriable = True


def parent_lookup(parents: SourceStream, system: str) -> Callable[[str], None]:
    """A lookup of a parent through its resource's stream (``NotFoundError`` when absent)."""

    def exists(parent_id: str) -> None:
        if parents.get(RecordKey(parent_id)) is None:
            raise NotFoundError(f"{system} {parents.resource} {parent_id} not found", system=system)

    return exists


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ParentKinds:
    def __init__(
        self,
        parents: KnownSet,
        parent_exists: Callable[[str], object],
        *,
        role: ParentRole,
        ttl: float = 3600.0,
        settle_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``parent_exists(id)`` returns when the parent is a record of ``role.resource`` and
        raises ``NotFoundError`` when it is not. ``now`` is the wall clock compared with the
        child's creation time."""
        self._parents = parents
        self._lookup = parent_exists
        self.role = role
        self._ttl = ttl
        self._settle = timedelta(seconds=settle_seconds)
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.lookups = 0
        """API calls made (tests and metrics)."""

    def created(self, record: object) -> datetime | None:
        """The child's creation time (``role.created_field``; None when absent or unreadable)."""
        field = self.role.created_field
        value = record.get(field) if field is not None and isinstance(record, dict) else None
        if not isinstance(value, str):
            return None
        try:
            return to_datetime(parse_ns(value))
        except ValueError:
            return None

    def kind(self, parent_id: str | None, child_created: datetime | None = None) -> str | None:
        """``role.found`` or ``role.otherwise``; None when the record names no (numeric) parent.

        ``child_created``: the child's creation time (None: unknown, taken as old). Raises
        ``ParentNotSettledError`` when a "not found" cannot be trusted yet.
        """
        if parent_id is None or not parent_id.isdigit():
            return None
        known = self._parents.get(parent_id)
        if known is not None and not known.deleted:
            return self.role.found
        now = self._clock()
        with self._lock:
            cached = self._cache.get(parent_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        self.lookups += 1
        try:
            self._lookup(parent_id)
            kind = self.role.found
        except NotFoundError as exc:
            if child_created is not None and self._now() - child_created < self._settle:
                # Maybe a parent created a moment ago that this read does not show yet.
                raise ParentNotSettledError(
                    f"{self._parents.system} parent {parent_id}: not found within "
                    f"{self._settle.total_seconds():g} s of its child's creation; asking again "
                    "next cycle"
                ) from exc
            kind = self.role.otherwise
        with self._lock:
            self._cache[parent_id] = (kind, now + self._ttl)
        return kind
