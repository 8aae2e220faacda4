"""Applying one command to its target system: the I/O half of the loader's rules (``plan``).

``CommandTarget.apply(command) -> Result`` runs a command against one system's connector
targets (``services.core.connector.Target``, from ``descriptor.targets(...)``), asks ``plan``
what the answers mean and raises ``TetherError``s it cannot turn into a result (the executor
retries the retriable ones and reports the others). No system is named here: what a resource's
guard is, its key/version/reference fields and its accessor table come from its
``ResourceDescriptor``; what a create, a guarded write or a duplicate means in the system is the
connector's ``Target``. Every write is naturally idempotent, so re-applying a command whose
earlier attempt (or an earlier process) already wrote never writes twice:

create  — with the command's ``idempotency_key`` as the reference (a resource whose records a
          natural key finds again may go without one: the link id stands in); the target
          returns the record carrying it when one exists -> CREATED; a record the system's
          duplicate rule matched (``Written.matched``, unless ``allow_duplicates``) ->
          LINKED_EXISTING. ``made_after`` is the earliest moment an earlier attempt can have
          created it: the live change's time (``cause_changed_at``), else this process's first
          attempt at the command (remembered per command, bounded).
update  — guarded by a **version** (``guarded_by="version"``): computed against
          ``target_record`` at ``expected_revision``; without a usable record the record is read
          first (``Target.read``) and written only if it is still at that version (or, without
          one, still has the ``expected`` values); already holding the values -> NOOP. A refused
          guard (``GuardRefusedError``) -> read -> NOOP when it already has the values, else
          CONFLICT with the fresh record.
          Guarded by **values** (``guarded_by="values"``): a ``test`` guard from ``expected``
          for each property written; a refused guard is never REJECTED: the target re-reads until
          a read explains it — values already there -> NOOP (``Written.applied`` false, or the
          refusal's record holds them), else CONFLICT with that record, which the mapper
          re-merges.
delete  — not found -> NOOP.

A duplicate the system refuses on update, a validation error and other permanent errors
propagate (``plan.failure`` makes them REJECTED/FAILED).

Imports: the connector interface (``services.core.connector``), the core errors, ``plan``;
never a connector package, a simulator or Kafka.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from services.core.connector import (
    ConnectorDescriptor,
    Guard,
    GuardRefusedError,
    RecordKey,
    ResourceDescriptor,
    Target,
    Written,
)
from services.core.errors import ContractError, NotFoundError
from services.loader.plan import (
    Action,
    FieldValues,
    LoaderCommand,
    Result,
    Status,
    Step,
    create_values,
    decide_after_conflict,
    decide_fresh,
    field_values,
    guarded_patch,
    holds,
    record_version,
    update_base,
)

#: First attempts remembered per command (bounded; oldest forgotten first).
FIRST_ATTEMPTS_KEPT = 10_000


class Applier(Protocol):
    """What the executor runs a command with: one target system."""

    def apply(self, command: LoaderCommand) -> Result: ...


def _result(status: Status, written: Written) -> Result:
    return Result(status, written.key.id, written.record, written.version)


class CommandTarget:
    """Applies the commands of one system through its connector's targets."""

    def __init__(
        self,
        descriptor: ConnectorDescriptor[Any, Any],
        targets: Mapping[str, Target],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.system = descriptor.system
        self._resources = dict(descriptor.resources)
        self._targets = dict(targets)
        self._now = now
        self._first_attempts: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def apply(self, command: LoaderCommand) -> Result:
        resource = self._resources.get(command.resource)
        target = self._targets.get(command.resource)
        if resource is None or target is None:
            raise ContractError(f"no {self.system} resource {command.resource!r}")
        if command.action is Action.CREATE:
            return self._create(command, resource, target)
        key = RecordKey(command.require_target_id(), command.parent_id)
        if command.action is Action.DELETE:
            return self._delete(key, target)
        if resource.guarded_by == "version":
            return self._update_at_version(command, key, resource, target)
        return self._update_with_tests(command, key, resource, target)

    # -- create ----------------------------------------------------------------------------------

    def _create(
        self, command: LoaderCommand, resource: ResourceDescriptor, target: Target
    ) -> Result:
        values, reference = create_values(command, resource)
        written = target.create(
            values,
            reference=reference,
            parent_id=command.parent_id,
            allow_duplicates=command.allow_duplicates,
            made_after=self._made_after(command),
        )
        # Found by our reference or just posted: either way the engine created it.
        return _result(Status.LINKED_EXISTING if written.matched else Status.CREATED, written)

    def _made_after(self, command: LoaderCommand) -> datetime:
        """The earliest moment an earlier attempt can have created the record: the live change
        that caused the command, else the first time this process tried it."""
        with self._lock:
            first = self._first_attempts.get(command.command_id)
            if first is None:
                first = self._now()
                self._first_attempts[command.command_id] = first
                while len(self._first_attempts) > FIRST_ATTEMPTS_KEPT:
                    self._first_attempts.popitem(last=False)
        cause = command.cause_changed_at
        return min(cause, first) if cause is not None else first

    # -- update ----------------------------------------------------------------------------------

    def _update_at_version(
        self, command: LoaderCommand, key: RecordKey, resource: ResourceDescriptor, target: Target
    ) -> Result:
        values = field_values(command, resource.fields)
        base = update_base(command, resource)
        if not values:
            return _result(Status.NOOP, target.written(base) if base else target.read(key))
        if base is None:
            fresh = target.read(key)
            step = decide_fresh(command, values, fresh.record, resource)
            if step is Step.NOOP:
                return _result(Status.NOOP, fresh)
            if step is Step.CONFLICT:
                return _result(Status.CONFLICT, fresh)
            current = fresh.record
        elif holds(base, values, resource.fields):
            return _result(Status.NOOP, target.written(base))
        else:
            current = base
        version = record_version(current, resource.version_field)
        guard = Guard(version=str(version) if version is not None else None)
        try:
            written = target.update(key, values.values, guard=guard, base=current)
        except GuardRefusedError:
            fresh = target.read(key)
            return _result(decide_after_conflict(values, fresh.record, resource.fields), fresh)
        return _result(Status.APPLIED, written)

    def _update_with_tests(
        self, command: LoaderCommand, key: RecordKey, resource: ResourceDescriptor, target: Target
    ) -> Result:
        patch = guarded_patch(command, resource)
        if not patch.changes:
            return _result(Status.NOOP, target.read(key))
        try:
            written = target.update(key, patch.changes, guard=Guard(expected=patch.guards))
        except GuardRefusedError as exc:
            # The record the target read to explain the refusal; a second read here could be
            # served by a lagging replica and undo what the target waited for.
            fresh = exc.current if exc.current is not None else target.read(key).record
            done = holds(fresh, FieldValues(patch.changes), resource.fields)
            return Result(Status.NOOP if done else Status.CONFLICT, key.id, fresh)
        # The target answers a refused patch by re-reading: desired values there -> returned.
        return _result(Status.APPLIED if written.applied else Status.NOOP, written)

    # -- delete ----------------------------------------------------------------------------------

    def _delete(self, key: RecordKey, target: Target) -> Result:
        try:
            target.delete(key)
        except NotFoundError:
            return Result(Status.NOOP, key.id)
        return Result(Status.APPLIED, key.id)
