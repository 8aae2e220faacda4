"""Offboarding erasure of one tenant's PostgreSQL rows (real PostgreSQL, real mapper loop).

Two tenants — ``acme`` and ``acme-2``, whose id starts with the other's — are populated through
the running mapper (changes, an ambiguous match, an operator action) and the verifier's store;
erasing ``acme`` leaves no row of it in any table that has a ``tenant`` column, and every row
of ``acme-2`` as it was. The coverage test classifies every table the migrations create, every
table referencing an erased one, and every ``CREATE TABLE`` in the source tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.core.operator_actions import ActionKind, action_key, new_action
from services.core.topics import cursor_key
from services.mapper.erasure import (
    ERASED_TABLES,
    NOT_TENANT_DATA,
    count_tenant_rows,
    erase_tenant,
)
from services.mapper.migrations import apply_migrations
from services.verify.compare import Status, Verdict
from services.verify.store import save_verdicts

from .support import (
    ROOT,
    Harness,
    customer,
    employee,
    harness,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

pytestmark = pytest.mark.integration

ERASED = [table.name for table in ERASED_TABLES]
CREATE_TABLE = re.compile(r"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)

TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
"""
TENANT_TABLES = """
SELECT table_name FROM information_schema.columns
WHERE table_schema = current_schema() AND column_name = 'tenant'
"""
FOREIGN_KEYS = """
SELECT child.relname, parent.relname FROM pg_constraint c
JOIN pg_class child ON child.oid = c.conrelid
JOIN pg_class parent ON parent.oid = c.confrelid
WHERE c.contype = 'f' AND child.relnamespace = current_schema()::regnamespace
"""


def column_set(conn: psycopg.Connection[Any], query: str) -> set[str]:
    return {str(row[0]) for row in conn.execute(query).fetchall()}


def test_every_table_holding_tenant_data_is_erased_in_foreign_key_order(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        apply_migrations(conn)
        tables = column_set(conn, TABLES)
        with_tenant = column_set(conn, TENANT_TABLES)
        foreign_keys = [(str(c), str(p)) for c, p in conn.execute(FOREIGN_KEYS).fetchall()]

    # every table is classified: erased, or declared as holding no tenant data
    assert tables - set(ERASED) - set(NOT_TENANT_DATA) == set()
    assert with_tenant - set(ERASED) == set()
    assert with_tenant & set(NOT_TENANT_DATA) == set()
    # a table hanging off an erased one (by a foreign key) is erased too, and before its parent
    for child, parent in foreign_keys:
        if parent in ERASED:
            assert child in ERASED, f"{child} references {parent} but is not erased"
            assert ERASED.index(child) < ERASED.index(parent), f"{child} after {parent}"
    # tables created outside the migrations (any CREATE TABLE in the code) are classified too
    created = {
        name.lower()
        for path in (ROOT / "services").rglob("*.py")
        for name in CREATE_TABLE.findall(Path(path).read_text())
    }
    assert created - set(ERASED) - set(NOT_TENANT_DATA) == set()


def send_for(h: Harness, tenant: str, datum: dict[str, Any]) -> None:
    h.send_change({**datum, "tenant": tenant})


def populate(h: Harness, tenant: str) -> None:
    """One tenant's state through the mapper: a link with a conflicting name, an ambiguous
    match (a review item), an ignored record (operator action); then a verification verdict."""
    send_for(h, tenant, wix_event(wix_contact("c-1", "Ola", "Nordmann", phone="912 34 567"), ts(1)))
    send_for(h, tenant, po_event("employees", employee(1, first="Ole", at=ts(2)), ts(2)))
    send_for(
        h, tenant, wix_event(wix_contact("c-2", "Kari", "Hansen", email="kari@example.no"), ts(3))
    )
    send_for(
        h, tenant, wix_event(wix_contact("c-3", "Karianne", "H", email="kari@example.no"), ts(4))
    )
    send_for(h, tenant, po_event("customers", customer(10, at=ts(5)), ts(5)))
    action = new_action(
        tenant=tenant,
        actor="ops@example.no",
        role="operator",
        kind=ActionKind.IGNORE_RECORD,
        reason="a test record",
        idempotency_key=f"ignore-{tenant}",
        at=ts(6),
        record=("poweroffice", "employees", "2"),
    )
    h.send_raw(
        h.layout.operator_actions, action_key(action), h.codec.encode("OperatorAction", action)
    )
    h.drain()
    link_ids = [
        str(r[0]) for r in h.query("SELECT link_id FROM mapper_links WHERE tenant = %s", (tenant,))
    ]
    with psycopg.connect(h.dsn) as conn:
        save_verdicts(
            conn,
            tenant,
            "cycle-1",
            [Verdict(link_id, "employees", Status.AGREE) for link_id in link_ids],
            {},
            datetime.now(UTC),
        )


def tenant_rows(h: Harness, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tenant`` in every table with a tenant column (found, not listed)."""
    tables = sorted(str(r[0]) for r in h.query(TENANT_TABLES))
    return {
        table: sorted(h.query(f"SELECT * FROM {table} WHERE tenant = %s", (tenant,)), key=repr)
        for table in tables
    }


@pytest.fixture
def h(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Any:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as instance:
        instance.start()
        yield instance


def test_erasing_a_tenant_deletes_all_its_rows_and_nothing_of_another(h: Harness) -> None:
    populate(h, "acme")
    populate(h, "acme-2")
    h.stop()  # the tenant's work stops before the erasure (docs/operations.md)
    before = {tenant: tenant_rows(h, tenant) for tenant in ("acme", "acme-2")}
    # not vacuous: every erased table holds rows of both tenants
    for tenant in ("acme", "acme-2"):
        assert [t for t in ERASED if not before[tenant][t]] == [], tenant

    with psycopg.connect(h.dsn, autocommit=True) as conn:
        planned = count_tenant_rows(conn, "acme")
        deleted = erase_tenant(conn, "acme")
        again = erase_tenant(conn, "acme")

    expected = {table: len(before["acme"][table]) for table in ERASED}
    assert planned == deleted == expected
    assert set(again.values()) == {0}
    after = {tenant: tenant_rows(h, tenant) for tenant in ("acme", "acme-2")}
    assert {table: rows for table, rows in after["acme"].items() if rows} == {}
    assert after["acme-2"] == before["acme-2"]


@pytest.mark.parametrize("tenant", ["", " acme"])
def test_a_blank_tenant_id_is_refused(pg_dsn: str, tenant: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn, pytest.raises(ValueError):
        erase_tenant(conn, tenant)


def tether(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TETHER_POSTGRES_DSN": h.dsn,
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": h.settings.kafka_bootstrap_servers,
        "TETHER_TOPIC_PREFIX": h.settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


def test_the_command_prints_counts_only_and_erases_with_execute(h: Harness) -> None:
    populate(h, "acme")
    h.stop()
    cursor = cursor_key("acme", "wix", "contacts", "scan")
    h.send_raw(h.layout.cursors, cursor, b"a cursor")
    before = tenant_rows(h, "acme")

    dry = tether(h, "tenants", "erase", "acme")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["executed"] is False
    assert planned["postgres_rows"] == {table: len(before[table]) for table in ERASED}
    assert planned["compacted_keys"] == {
        h.layout.cursors: 1,
        h.layout.tenants: 0,  # acme was never registered: a single-tenant deployment's
        h.layout.tenant_status: 0,
    }
    assert "example.no" not in dry.stdout and "Nordmann" not in dry.stdout
    assert tenant_rows(h, "acme") == before  # a dry run changes nothing

    done = tether(h, "tenants", "erase", "acme", "--execute")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {**planned, "executed": True}
    assert {table: rows for table, rows in tenant_rows(h, "acme").items() if rows} == {}
