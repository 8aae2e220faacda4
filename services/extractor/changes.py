"""Change events: what the extractor observed about one record, as a ``ChangeEvent`` datum.

Pure: imports no I/O library (standard library, ``services.core.records``/``topics``/``errors``
and the connector interface's types only); the shells build :class:`Change` objects here and
produce them.

- :class:`ChangeMaker` builds the changes of one resource from what its ``RecordReader`` (the
  resource's stream) reads in a record (``observe``: identity, version, change time —
  ``ContractError`` for a record without one). :meth:`ChangeMaker.upsert` also converts the
  record to its Avro type
  (``records.wrap_record``: unknown fields kept, wrong types -> ``ContractError``), so a change
  that exists can always be encoded. The shells turn ``ContractError`` into a dead letter.
- ``source_version`` is the API's own version as sent (e.g. a timestamp string, a revision);
  ``version_key`` its comparable form (``SourceStream.version_order``) for the known set.
- ``event_id`` is a uuid5 over ``tenant/system/resource/id/operation/version`` (the version in
  the stream's canonical spelling, so two spellings of one version give one id) plus, for a
  MERGE, the sorted merged ids: the same observation always gets the same id, whichever origin
  (poll, push, reconcile) made it, so downstream de-duplicates by it.
- Merges: one MERGE keyed by the target, with the target record as ``record`` and the sources in
  ``merged_ids`` (they no longer exist). A system's deletes that a merge implies are not pushed
  as changes (``PushSource``): a DELETE keyed by a source could overtake the MERGE (other
  partition) and make the mapper delete a person who still exists as the target. If the merge
  itself is never pushed, reconciliation finds the sources missing and ``presence`` answers
  ``MergedInto`` -> a MERGE event (origin RECONCILE).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.connector import Observed, Pushed, RecordReader
from services.core.contract import ChangeOperation as Operation
from services.core.contract import ChangeOrigin as Origin
from services.core.errors import ContractError
from services.core.records import wrap_record
from services.core.stream_positions import to_datetime
from services.core.topics import record_key

# ``Operation``/``Origin`` are the wire enums (services.core.contract), re-exported under the
# names the extractor uses.
__all__ = ["Change", "ChangeMaker", "Operation", "Origin", "event_id", "raw_payload"]

_EVENT_NAMESPACE = uuid.NAMESPACE_URL


@dataclass(frozen=True)
class Change:
    system: str
    resource: str
    record_id: str
    operation: Operation
    origin: Origin
    source_timestamp: datetime
    source_version: str | None
    version_key: int | None
    record: tuple[str, Any] | None = None  # the Avro union branch (records.wrap_record)
    merged_ids: tuple[str, ...] = ()
    parent_id: str | None = None
    parent_kind: str | None = None  # a parent of several kinds (parents.py)
    canonical_version: str | None = None
    """The version in the stream's canonical spelling, for the event id (None: as sent)."""

    def event_id(self, tenant: str) -> str:
        return event_id(
            tenant,
            self.system,
            self.resource,
            self.record_id,
            self.operation,
            self.canonical_version if self.canonical_version is not None else self.source_version,
            self.merged_ids,
        )

    def key(self, tenant: str) -> bytes:
        return record_key(tenant, self.system, self.resource, self.record_id)

    def to_datum(self, tenant: str, extracted_at: datetime) -> dict[str, Any]:
        return {
            "event_id": self.event_id(tenant),
            "tenant": tenant,
            "system": self.system,
            "resource": self.resource,
            "record_id": self.record_id,
            "operation": self.operation.value,
            "origin": self.origin.value,
            "source_timestamp": self.source_timestamp,
            "source_version": self.source_version,
            "extracted_at": extracted_at,
            "record": self.record,
            "merged_ids": list(self.merged_ids),
            "parent_id": self.parent_id,
            "parent_kind": self.parent_kind,
        }


def event_id(
    tenant: str,
    system: str,
    resource: str,
    record_id: str,
    operation: str,
    version: str | None,
    merged_ids: Sequence[str] = (),
) -> str:
    name = f"tether:change:{tenant}/{system}/{resource}/{record_id}/{operation}/{version or ''}"
    if merged_ids:
        name += "/" + ",".join(sorted(merged_ids))
    return str(uuid.uuid5(_EVENT_NAMESPACE, name))


def raw_payload(raw: Any) -> bytes:
    """The bytes a dead letter keeps of a raw API record."""
    try:
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError):
        return repr(raw).encode()


@dataclass(frozen=True)
class ChangeMaker:
    """The changes of one resource, its records read by its connector's ``RecordReader``."""

    system: str
    resource: str
    reader: RecordReader

    @property
    def source(self) -> str:
        """``system/resource``: where a dead letter came from."""
        return f"{self.system}/{self.resource}"

    def _versioned(self, version: str | None) -> dict[str, Any]:
        return {
            "source_version": version,
            "version_key": self.reader.version_order(version),
            "canonical_version": self.reader.canonical_version(version),
        }

    def upsert(
        self,
        raw: Mapping[str, Any],
        observed: Observed,
        origin: Origin,
        *,
        at: datetime | None = None,
        parent_kind: str | None = None,
    ) -> Change:
        """``raw`` as ``observe`` read it (``at``: the push's time instead of the change time);
        ``ContractError`` when it does not fit its Avro type."""
        return Change(
            system=self.system,
            resource=self.resource,
            record_id=observed.key.id,
            operation=Operation.UPSERT,
            origin=origin,
            source_timestamp=at or to_datetime(observed.changed_ns),
            record=wrap_record(self.system, self.resource, raw),
            parent_id=observed.key.parent_id,
            parent_kind=parent_kind,
            source_version=observed.version,
            version_key=observed.order,
            canonical_version=self.reader.canonical_version(observed.version),
        )

    def delete(
        self,
        record_id: str,
        origin: Origin,
        at: datetime,
        version: str | None,
        parent_id: str | None = None,
    ) -> Change:
        return Change(
            system=self.system,
            resource=self.resource,
            record_id=record_id,
            operation=Operation.DELETE,
            origin=origin,
            source_timestamp=at,
            parent_id=parent_id,
            **self._versioned(version),
        )

    def merge(
        self,
        target: Mapping[str, Any] | None,
        target_id: str,
        sources: Sequence[str],
        origin: Origin,
        at: datetime,
    ) -> Change:
        """``sources`` merged into ``target_id`` (``target``: its record, when read)."""
        version: str | None = None
        if target is not None:
            try:
                version = self.reader.version_of(target)
            except ContractError:
                version = None
        return Change(
            system=self.system,
            resource=self.resource,
            record_id=target_id,
            operation=Operation.MERGE,
            origin=origin,
            source_timestamp=at,
            record=wrap_record(self.system, self.resource, target) if target else None,
            merged_ids=tuple(sorted(set(sources) - {target_id})),
            **self._versioned(version),
        )

    def pushed(self, change: Pushed, origin: Origin = Origin.WEBHOOK) -> Change:
        """A change the system pushed (``ContractError`` when its record cannot be read)."""
        if change.operation == "UPSERT":
            if change.record is None:
                raise ContractError(f"{self.source}: a pushed upsert without its record")
            observed = self.reader.observe(change.record)
            return self.upsert(change.record, observed, origin, at=change.at)
        if change.operation == "DELETE":
            return self.delete(
                change.key.id, origin, change.at, change.version, change.key.parent_id
            )
        return self.merge(change.record, change.key.id, change.merged_ids, origin, change.at)
