"""The known set: per resource, the newest version of every record the extractor has emitted.

Pure: imports no I/O library (standard library and ``changes`` only); thread-safe, because the
webhook receiver (HTTP threads) and the poll loop both update it.

What it is for:

- **Cross-origin de-duplication**: a poll, a webhook and a reconciliation can all observe the same
  version of a record; :meth:`KnownSet.covers` says whether a change is already emitted (same or
  newer version, or the record is deleted), so each edit produces one event in normal operation.
  An out-of-order (older) webhook is covered too and emits nothing.
- **Reconciliation**: the ids and versions a full scan is compared with (deletes, drift).

The extractor owns no database: the set lives in memory and is rebuilt at start-up by reading the
extractor's own changes topics (``bootstrap.py``), and kept up to date with every change *after*
Kafka acknowledged it. Deleted records stay as tombstones (ids are never reused by either API),
so a late update of a deleted record is not emitted again.

**Memory** (it holds every record of a resource): entries are stored column-wise
(:class:`_Columns`): each record id maps to a slot, and the slot's comparable key, touch time and
flags live in typed arrays (no object per record, no boxed ints/floats); only the version and
parent id stay Python strings. Entries are never removed, so slots are only appended.
:class:`KnownRecord` objects are made on demand when one is read.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from services.extractor.changes import Change, Operation


@dataclass(frozen=True)
class KnownRecord:
    version: str | None
    key: int | None  # comparable version (``SourceStream.version_order``)
    parent_id: str | None = None
    deleted: bool = False
    touched: float = 0.0  # monotonic time of the last update (reconciliation skips fresh ones)


_DELETED = 1
_NO_KEY = 2  # the key is None
_WIDE_KEY = 4  # the key does not fit 64 bits: it is in ``_Columns.wide_keys``
_KEY_MIN, _KEY_MAX = -(2**63), 2**63 - 1


class _Columns:
    """The entries, column-wise: ``slots`` maps a record id to its index in every column.

    Not thread-safe by itself (:class:`KnownSet` holds the lock)."""

    def __init__(self) -> None:
        self.slots: dict[str, int] = {}
        self.versions: list[str | None] = []
        self.parents: list[str | None] = []
        self.keys = array("q")
        self.touched = array("d")
        self.flags = bytearray()
        self.wide_keys: dict[int, int] = {}
        self.live = 0  # entries not deleted (kept by ``put``: a metric reads it often)

    def copy(self) -> _Columns:
        other = _Columns()
        other.slots = dict(self.slots)
        other.versions = list(self.versions)
        other.parents = list(self.parents)
        other.keys = array("q", self.keys)
        other.touched = array("d", self.touched)
        other.flags = bytearray(self.flags)
        other.wide_keys = dict(self.wide_keys)
        other.live = self.live
        return other

    def key(self, slot: int) -> int | None:
        flags = self.flags[slot]
        if flags & _NO_KEY:
            return None
        if flags & _WIDE_KEY:
            return self.wide_keys[slot]
        return self.keys[slot]

    def entry(self, slot: int) -> KnownRecord:
        flags = self.flags[slot]
        return KnownRecord(
            self.versions[slot],
            self.key(slot),
            self.parents[slot],
            bool(flags & _DELETED),
            self.touched[slot],
        )

    def get(self, record_id: str) -> KnownRecord | None:
        slot = self.slots.get(record_id)
        return None if slot is None else self.entry(slot)

    def deleted(self, slot: int) -> bool:
        return bool(self.flags[slot] & _DELETED)

    def put(
        self,
        record_id: str,
        slot: int | None,
        version: str | None,
        key: int | None,
        parent_id: str | None,
        deleted: bool,
        touched: float,
    ) -> None:
        """Store an entry in ``slot`` (the id's; None: a new one); keeps the live count."""
        self.live += (not deleted) - (slot is not None and not self.deleted(slot))
        flags = _DELETED if deleted else 0
        stored_key = 0
        if key is None:
            flags |= _NO_KEY
        elif _KEY_MIN <= key <= _KEY_MAX:
            stored_key = key
        else:
            flags |= _WIDE_KEY
        if slot is None:
            slot = len(self.flags)
            self.slots[record_id] = slot
            self.versions.append(version)
            self.parents.append(parent_id)
            self.keys.append(stored_key)
            self.touched.append(touched)
            self.flags.append(flags)
        else:
            self.versions[slot] = version
            self.parents[slot] = parent_id
            self.keys[slot] = stored_key
            self.touched[slot] = touched
            self.flags[slot] = flags
        if key is not None and flags & _WIDE_KEY:
            self.wide_keys[slot] = key
        elif self.wide_keys:
            self.wide_keys.pop(slot, None)

    def delete(
        self,
        record_id: str,
        version: str | None,
        key: int | None,
        parent_id: str | None,
        touched: float,
    ) -> None:
        """Store ``record_id`` as deleted, keeping what is known of it where a value is None."""
        slot = self.slots.get(record_id)
        if slot is not None:
            version = version or self.versions[slot]
            key = key if key is not None else self.key(slot)
            parent_id = parent_id or self.parents[slot]
        self.put(record_id, slot, version, key, parent_id, True, touched)


class KnownView(Mapping[str, KnownRecord]):
    """A read-only copy of a known set (:meth:`KnownSet.snapshot`): record id -> entry."""

    def __init__(self, columns: _Columns) -> None:
        self._columns = columns

    def __getitem__(self, record_id: str) -> KnownRecord:
        slot = self._columns.slots[record_id]
        return self._columns.entry(slot)

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns.slots)

    def __len__(self) -> int:
        return len(self._columns.slots)


class KnownSet:
    def __init__(self, system: str, resource: str, clock: Callable[[], float] = time.monotonic):
        self.system = system
        self.resource = resource
        self._clock = clock
        self._columns = _Columns()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._columns.slots)

    def live_count(self) -> int:
        with self._lock:
            return self._columns.live

    def get(self, record_id: str) -> KnownRecord | None:
        with self._lock:
            return self._columns.get(record_id)

    def snapshot(self) -> Mapping[str, KnownRecord]:
        with self._lock:
            return KnownView(self._columns.copy())

    def covers(self, change: Change) -> bool:
        """True when emitting ``change`` would tell downstream nothing new."""
        with self._lock:
            columns = self._columns
            operation = change.operation
            if operation is Operation.MERGE and change.merged_ids:
                return all(
                    (slot := columns.slots.get(source)) is not None and columns.deleted(slot)
                    for source in change.merged_ids
                )
            slot = columns.slots.get(change.record_id)
            if slot is None:
                return False
            if columns.deleted(slot):
                return True  # a delete is known; any other change of a deleted record is old
            if operation is Operation.DELETE:
                return False
            key = change.version_key
            known = columns.key(slot)
            return known is not None and key is not None and known >= key

    def apply(self, change: Change) -> None:
        """Record a change that Kafka acknowledged."""
        self.record(
            change.record_id,
            change.operation,
            change.source_version,
            change.version_key,
            change.parent_id,
            change.merged_ids,
        )

    def record(
        self,
        record_id: str,
        operation: Operation,
        version: str | None,
        key: int | None,
        parent_id: str | None = None,
        merged_ids: tuple[str, ...] = (),
    ) -> None:
        """Record one change (acknowledged, or read back from the changes topics)."""
        now = self._clock()
        with self._lock:
            columns = self._columns
            slot = columns.slots.get(record_id)
            if operation is Operation.DELETE:
                columns.delete(record_id, version, key, parent_id, now)
                return
            old_key = None if slot is None else columns.key(slot)
            if slot is not None and columns.deleted(slot):
                pass  # ids are never reused: a late upsert of a deleted record changes nothing
            elif slot is not None and old_key is not None and (key is None or key < old_key):
                parent = columns.parents[slot] or parent_id
                columns.put(record_id, slot, columns.versions[slot], old_key, parent, False, now)
            else:
                parent = parent_id or (None if slot is None else columns.parents[slot])
                columns.put(record_id, slot, version, key, parent, False, now)
            for source in merged_ids:
                columns.delete(source, None, None, None, now)

    def adopt(
        self, record_id: str, version: str | None, key: int | None, parent: str | None
    ) -> None:
        """Learn a record from a scan without emitting it (its last event is past retention)."""
        with self._lock:
            if record_id not in self._columns.slots:
                self._columns.put(record_id, None, version, key, parent, False, self._clock())
