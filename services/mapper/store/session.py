"""The session every mapper store runs on: one connection, its settings, deferred writes.

The stores never commit: the loop owns the transaction (one per polled batch), so that the
tracking rows (``tracking``), the link state (``links``) and the outbox rows (``outbox``) of a
message commit together. ``StoreSession`` is what they share: the connection, and the writes
nothing in the batch reads back, collected with ``defer`` and sent by ``flush``.

Plans: ``prepare_session`` runs every mapper connection with ``plan_cache_mode =
force_custom_plan``, so a lookup's plan never depends on the table size when it was prepared
(tests/mapper/test_plans.py).

Imports: psycopg only — not the domain, not the other store modules (they all build on this one).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

#: The session the mapper's statements run in. ``force_custom_plan``: every execution is planned
#: with its actual parameters and the tables' current size, so a generic plan prepared while the
#: tables were small (a sequential scan) never sticks once they hold millions of rows. The batch
#: runs a handful of statements, so planning each is cheap.
SESSION_SETTINGS = "SET plan_cache_mode = force_custom_plan"


def prepare_session(conn: Conn) -> None:
    """Configure a mapper connection (``SESSION_SETTINGS``: plans independent of preparation)."""
    conn.execute(SESSION_SETTINGS)


class StoreSession:
    """Statements on one connection; the caller owns the transaction.

    With ``defer``, the writes nothing in the batch reads back (outbox rows, history rows,
    last-seen member records, review resolutions) are collected and sent by ``flush`` as
    one ``executemany`` per statement, in order, before the batch commits."""

    def __init__(self, conn: Conn, *, defer: bool = False) -> None:
        self.conn = conn
        self.defer = defer
        self._deferred: dict[str, list[Any]] = {}
        #: the deferred last-seen member records (``LinkRepository.upsert_record``, read back
        #: by ``record`` until ``flush`` sends them)
        self._records: dict[tuple[str, str, str, str], tuple[str, datetime | None]] = {}

    def _execute(self, statement: str, params: Any) -> None:
        """A write the batch may read back (``BatchStore`` keeps it in memory and in order)."""
        self.conn.execute(statement, params)

    def _write(self, statement: str, params: Any) -> None:
        if self.defer:
            self._deferred.setdefault(statement, []).append(params)
        else:
            self.conn.execute(statement, params)

    def pipeline(self) -> AbstractContextManager[Any]:
        """Where a decision's writes are sent: one pipeline (one round trip) per decision."""
        return self.conn.pipeline()

    def flush(self) -> None:
        """Send the deferred writes (one pipelined ``executemany`` per statement)."""
        if not self._deferred:
            return
        with self.conn.pipeline(), self.conn.cursor() as cursor:
            for statement, rows in self._deferred.items():
                cursor.executemany(statement, rows)
        self._deferred.clear()
        self._records.clear()
