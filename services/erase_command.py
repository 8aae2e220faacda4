"""``tether tenants erase TENANT [--execute]``: offboarding erasure of one tenant (GDPR).

Without ``--execute`` it is a dry run: it prints, as one JSON object, how many rows of each
PostgreSQL table (``services.mapper.erasure``) and how many live keys of each compacted topic
(``services.core.tenant_erasure``) the erasure would delete — counts only, never a row or a key.
With ``--execute`` it deletes the rows (one transaction), writes the tombstones and verifies
them, and prints the same counts of what it deleted.

Run it only once the tenant's work has stopped and its topics drained (docs/operations.md
"Erasing a tenant"): a change handled afterwards recreates rows.

:func:`erase` is the whole erasure for callers that decided already (``tether tenants remove``).
This module sits beside ``cli.py`` above the services (it imports the mapper's erasure and
core's); nothing imports it but the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import psycopg

from services.core.errors import TetherError
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether tenants")
    sub = parser.add_subparsers(dest="action", required=True)
    erase_parser = sub.add_parser(
        "erase",
        help="delete a tenant's rows from PostgreSQL and tombstone its compacted-topic keys",
        description="Offboarding erasure. A dry run unless --execute: prints counts only. Stop "
        "the tenant's work and let its topics drain first (docs/operations.md).",
    )
    erase_parser.add_argument("tenant")
    erase_parser.add_argument(
        "--execute", action="store_true", help="erase (default: print what would be erased)"
    )
    return parser


def tenants_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    settings = MapperSettings.load()
    try:
        report = erase(settings, args.tenant, execute=args.execute)
    except psycopg.Error as exc:
        # Never echo the DSN: the error class is enough to act on.
        sys.stderr.write(f"tether tenants erase: PostgreSQL error ({type(exc).__name__})\n")
        return 2
    except (TetherError, ValueError) as exc:
        sys.stderr.write(f"tether tenants erase: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0
