"""Versioned SQL migrations of the mapper's PostgreSQL state, applied at start-up.

``apply_migrations(conn)`` is idempotent and safe when several replicas start at once: it holds a
session-level ``pg_advisory_lock`` while it reads ``mapper_schema_migrations`` and applies each
missing version in its own transaction (the DDL and its bookkeeping row commit together). A
migration whose text changed after it was applied is reported (its checksum is stored), never
re-applied. Add a migration as a new module ``vNNN_<name>.py`` with ``VERSION``, ``NAME`` and
``SQL`` and list it in ``MIGRATIONS``.

Imports: psycopg and the migration modules only.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from services.mapper.migrations import (
    v001_initial,
    v002_stream_starts,
    v003_verification,
    v004_outbox_trace,
    v005_operator_actions,
    v006_console_read_model,
    v007_hub_role,
    v008_link_flags,
)

log = logging.getLogger("tether.mapper.migrations")

#: Advisory lock key (64-bit key space) serialising migrations across replicas.
MIGRATION_LOCK_KEY = 0x7E7_4E6D_6967  # "tether mig"

CREATE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS mapper_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version, checksum FROM mapper_schema_migrations"
INSERT_APPLIED = (
    "INSERT INTO mapper_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


MIGRATIONS: tuple[Migration, ...] = (
    Migration(v001_initial.VERSION, v001_initial.NAME, v001_initial.SQL),
    Migration(v002_stream_starts.VERSION, v002_stream_starts.NAME, v002_stream_starts.SQL),
    Migration(v003_verification.VERSION, v003_verification.NAME, v003_verification.SQL),
    Migration(v004_outbox_trace.VERSION, v004_outbox_trace.NAME, v004_outbox_trace.SQL),
    Migration(v005_operator_actions.VERSION, v005_operator_actions.NAME, v005_operator_actions.SQL),
    Migration(
        v006_console_read_model.VERSION, v006_console_read_model.NAME, v006_console_read_model.SQL
    ),
    Migration(v007_hub_role.VERSION, v007_hub_role.NAME, v007_hub_role.SQL),
    Migration(v008_link_flags.VERSION, v008_link_flags.NAME, v008_link_flags.SQL),
)


def apply_migrations(conn: psycopg.Connection[Any], up_to: int | None = None) -> list[int]:
    """Apply every missing migration (with ``up_to``, only those up to that version: the tests
    build a previous release's schema with it); returns the versions applied by this call.

    ``conn`` must be in autocommit mode (each migration runs in its own transaction block).
    """
    if not conn.autocommit:
        raise ValueError("apply_migrations needs an autocommit connection")
    applied_now: list[int] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        conn.execute(CREATE_BOOKKEEPING)
        applied = {int(v): str(c) for v, c in conn.execute(SELECT_APPLIED).fetchall()}
        for migration in sorted(MIGRATIONS, key=lambda m: m.version):
            if up_to is not None and migration.version > up_to:
                break
            known = applied.get(migration.version)
            if known is not None:
                if known != migration.checksum:
                    log.warning(
                        "applied migration %s (%s) differs from the code's text",
                        migration.version,
                        migration.name,
                    )
                continue
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    INSERT_APPLIED, (migration.version, migration.name, migration.checksum)
                )
            applied_now.append(migration.version)
            log.info("applied migration %s (%s)", migration.version, migration.name)
        newer = sorted(v for v in applied if v > max(m.version for m in MIGRATIONS))
        if newer:
            log.warning("database has migrations this code does not know: %s", newer)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
