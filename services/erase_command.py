"""Offboarding erasure of one tenant (GDPR): ``tether tenants erase TENANT [--execute]``.

Without ``--execute`` it is a dry run: it prints, as one JSON object, how many rows of each
PostgreSQL table (``services.mapper.erasure``) and how many live keys of each compacted topic
(``services.core.tenant_erasure``) the erasure would delete — counts only, never a row or a key.
With ``--execute`` it deletes the rows (one transaction), writes the tombstones and verifies
them, and prints the same counts of what it deleted.

Run it only once the tenant's work has stopped and its topics drained (docs/operations.md
"Erasing a tenant"): a change handled afterwards recreates rows.

:func:`erase` is the whole erasure; ``services/tenants/cli.py`` parses the command and refuses it
for a registered tenant that is not removed. This module sits beside ``cli.py`` above the
services (it imports the mapper's erasure and core's); nothing imports it but the CLI.
"""

from __future__ import annotations

from typing import Any

import psycopg

from services.core.tenant_erasure import tenant_keys, tombstone_tenant_keys
from services.mapper.erasure import count_tenant_rows, erase_tenant
from services.mapper.settings import MapperSettings


def erase(settings: MapperSettings, tenant: str, *, execute: bool) -> dict[str, Any]:
    """Erase ``tenant`` (``execute``) or count what would be erased; returns the counts per
    PostgreSQL table and per compacted topic. PostgreSQL first: should the tombstones fail,
    a second run finds no rows left and writes them (both parts are idempotent)."""
    with psycopg.connect(
        settings.postgres_dsn.get_secret_value(), autocommit=True, connect_timeout=10
    ) as conn:
        rows = erase_tenant(conn, tenant) if execute else count_tenant_rows(conn, tenant)
    keys = tombstone_tenant_keys(settings, tenant) if execute else tenant_keys(settings, tenant)
    return {"tenant": tenant, "executed": execute, "postgres_rows": rows, "compacted_keys": keys}
