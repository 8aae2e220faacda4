"""The mapper's PostgreSQL adapter: what the mapper persists, by responsibility.

Modules, by responsibility:

* ``session`` — the connection, its settings (``prepare_session``), deferred writes
  (``StoreSession``);
* ``tracking`` — exactly-once input: consumed positions (tracking rows), change stream starts;
* ``outbox`` — exactly-once output: outbox rows and their relay (``RELAY_LOCK_KEY``);
* ``links`` — the link repository: links, members, link keys, the hub-record index, last-known
  records, reviews, conflicts, history; the advisory locks;
* ``batch`` — ``BatchStore``: the link repository (and the rest) set-based for one batch, the
  loop's fast path.

The stores never commit: the loop owns the transaction (one per polled batch), so that the
tracking rows, the link state and the outbox rows of a message commit together. Lock order
within a transaction: tracking rows, then advisory locks (keys, then hub records), then link
rows; the relay's lock is taken in its own transaction.

Two stores share the statements:

* ``batch.BatchStore`` — the loop's fast path, set-based (its docstring; docs/mapper.md "A batch").
* ``MapperStore`` — one input at a time, every read and write sent at once (write statements
  return no rows, so a decision's writes go in one pipeline): the loop's careful redo (a
  savepoint per input), operator actions, replay and onboarding previews, explain.

Imports: the store modules below (never ``batch``: it builds on ``MapperStore``).
"""

from __future__ import annotations

from services.mapper.store.links import LinkRepository
from services.mapper.store.outbox import OutboxStore
from services.mapper.store.tracking import TrackingStore


class MapperStore(TrackingStore, OutboxStore, LinkRepository):
    """Every statement of the mapper on one connection; the caller owns the transaction.

    With ``defer``, the writes nothing in the batch reads back (outbox rows, history rows,
    last-seen member records, review resolutions) are collected and sent by ``flush`` as
    one ``executemany`` per statement, in order, before the batch commits. ``record`` sees the
    deferred member records."""
