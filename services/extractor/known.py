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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.extractor.changes import Change, Operation


@dataclass(frozen=True)
class KnownRecord:
    version: str | None
    key: int | None  # comparable version (``SourceStream.version_order``)
    parent_id: str | None = None
    deleted: bool = False
    touched: float = 0.0  # monotonic time of the last update (reconciliation skips fresh ones)


class KnownSet:
    def __init__(self, system: str, resource: str, clock: Callable[[], float] = time.monotonic):
        self.system = system
        self.resource = resource
        self._clock = clock
        self._records: dict[str, KnownRecord] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def live_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._records.values() if not r.deleted)

    def get(self, record_id: str) -> KnownRecord | None:
        with self._lock:
            return self._records.get(record_id)

    def snapshot(self) -> dict[str, KnownRecord]:
        with self._lock:
            return dict(self._records)

    def covers(self, change: Change) -> bool:
        """True when emitting ``change`` would tell downstream nothing new."""
        with self._lock:
            if change.operation is Operation.MERGE:
                if not change.merged_ids:
                    return self._covers_version(change.record_id, change.version_key)
                return all(
                    (r := self._records.get(source)) is not None and r.deleted
                    for source in change.merged_ids
                )
            entry = self._records.get(change.record_id)
            if entry is None:
                return False
            if change.operation is Operation.DELETE:
                return entry.deleted
            return self._covers_version(change.record_id, change.version_key)

    def _covers_version(self, record_id: str, key: int | None) -> bool:
        entry = self._records.get(record_id)
        if entry is None:
            return False
        if entry.deleted:
            return True
        return entry.key is not None and key is not None and entry.key >= key

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
            old = self._records.get(record_id)
            if operation is Operation.DELETE:
                self._records[record_id] = KnownRecord(
                    version or (old.version if old else None),
                    key if key is not None else (old.key if old else None),
                    parent_id or (old.parent_id if old else None),
                    deleted=True,
                    touched=now,
                )
                return
            if old is not None and old.deleted:
                pass  # ids are never reused: a late upsert of a deleted record changes nothing
            elif old is not None and old.key is not None and (key is None or key < old.key):
                self._records[record_id] = KnownRecord(
                    old.version, old.key, old.parent_id or parent_id, False, now
                )
            else:
                self._records[record_id] = KnownRecord(
                    version, key, parent_id or (old.parent_id if old else None), False, now
                )
            for source in merged_ids:
                gone = self._records.get(source)
                self._records[source] = KnownRecord(
                    gone.version if gone else None,
                    gone.key if gone else None,
                    gone.parent_id if gone else None,
                    deleted=True,
                    touched=now,
                )

    def adopt(
        self, record_id: str, version: str | None, key: int | None, parent: str | None
    ) -> None:
        """Learn a record from a scan without emitting it (its last event is past retention)."""
        with self._lock:
            if record_id not in self._records:
                self._records[record_id] = KnownRecord(version, key, parent, False, self._clock())
