"""``tether preview`` against both simulators over real HTTP and a real PostgreSQL.

Seeded as the demo seeds them (``generate(N, seed)`` + ``seed_simulators``), the preview must
predict the seed's exact expectations — the counts ``make demo`` then checks on the live run —
write nothing to either system, and leave no scratch schema (nor any row in the live tables)
behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simulator import PowerOfficeSimulator, SimulatorLimits
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simulator import WixSimulator
from services.demo.seeding import seed_simulators
from services.mapper.migrations import apply_migrations
from services.onboarding import preview
from tests.onboarding.conftest import WIX_API_KEY, Sims, start

pytestmark = pytest.mark.integration

PO_WRITES = {"POST", "PATCH", "PUT", "DELETE"}
WIX_WRITES = {"create", "update", "delete", "merge", "extended_fields"}
SCRATCH_SCHEMAS = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tether\\_preview\\_%'"


@pytest.fixture
def lifted() -> Iterator[Sims]:
    yield from start(
        PowerOfficeSimulator(limits=SimulatorLimits.lifted()),
        WixSimulator(api_key=WIX_API_KEY, rate_limit=0),
    )


def writes(sims: Sims) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Write requests each simulator answered (any status), and how many reads they served."""
    with PowerOfficeSimulatorAdmin(sims.poweroffice_server.url) as po:
        po_rows = po.counters()["requests"]
    with WixAdmin(sims.wix_server.url) as wix:
        wix_rows = wix.counters()["requests"]
    po_writes = [r for r in po_rows if r["method"] in PO_WRITES and r.get("resource") != "token"]
    wix_writes = [r for r in wix_rows if r.get("operation") in WIX_WRITES]
    reads = sum(int(r["count"]) for r in po_rows + wix_rows if r["method"] in ("GET", "POST"))
    return po_writes, wix_writes, reads


def test_preview_predicts_the_demo_counts_and_writes_nothing(
    lifted: Sims,
    pg_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = generate(2000, 42)  # the demo's defaults (tether demo --records 2000 --seed 42)
    seed_simulators(data, lifted.poweroffice_server.url, lifted.wix_server.url)
    for key, value in lifted.env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TETHER_POWEROFFICE_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("TETHER_WIX_REQUESTS_PER_MINUTE", "0")
    monkeypatch.setenv("TETHER_POSTGRES_DSN", pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        apply_migrations(conn)  # a live mapper's tables exist: the preview must not touch them
    _, _, reads_before = writes(lifted)

    assert preview.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    expected = data.expectations
    assert {
        "created_contacts": report["created_contacts"],
        "matched_existing_contacts": report["matched_existing_contacts"],
        "matched_existing_records": report["matched_existing_records"],
        "review_items": report["review_items"],
        "linked_records": report["linked_records"],
    } == {
        "created_contacts": expected["created_contacts"],
        "matched_existing_contacts": expected["matched_existing_contacts"],
        "matched_existing_records": expected["matched_existing_records"],
        "review_items": expected["review_items"],
        "linked_records": expected["linked_records"],
    }
    assert report["review_reasons"] == {"ambiguous_match": expected["review_items"]}
    assert report["linked_by_resource"] == {
        resource: count - sum(1 for r in expected["review"] if r["resource"] == resource)
        for resource, count in expected["records_per_flow"].items()
    }
    assert report["read"]["wix_contacts"] == expected["wix_contacts_before_sync"]
    assert report["dead_letters"] == 0
    # Property changes to existing records are reported per property, values masked.
    shown = json.dumps(report["changes_to_existing"])
    assert "@" not in shown

    po_writes, wix_writes, reads_after = writes(lifted)
    assert po_writes == []
    assert wix_writes == []
    assert reads_after > reads_before  # the counters do count: the preview read both systems
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(SCRATCH_SCHEMAS).fetchall() == []
        for table in ("mapper_links", "mapper_outbox", "mapper_review_items", "mapper_contacts"):
            assert conn.execute(f"SELECT count(*) FROM public.{table}").fetchone() == (0,)


def test_scratch_schema_is_dropped_when_the_run_fails(pg_dsn: str) -> None:
    with pytest.raises(RuntimeError), preview.ScratchSchema(pg_dsn) as conn:
        (search_path,) = conn.execute("SHOW search_path").fetchone() or ("",)
        assert search_path.startswith(preview.SCHEMA_PREFIX)
        assert conn.execute("SELECT count(*) FROM mapper_links").fetchone() == (0,)
        raise RuntimeError("the handler failed")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(SCRATCH_SCHEMAS).fetchall() == []


def test_the_demo_line_prints_the_prediction_before_the_services_start(
    lifted: Sims, pg_dsn: str, tmp_path: Path
) -> None:
    """``tether demo`` prints ``predict(...)`` (a ``tether preview --json`` subprocess with a
    service's environment) right after seeding; another seed, other exact counts."""
    data = generate(120, 7)
    seed_simulators(data, lifted.poweroffice_server.url, lifted.wix_server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env |= lifted.env(tmp_path) | {
        "TETHER_POSTGRES_DSN": pg_dsn,
        "TETHER_POWEROFFICE_REQUESTS_PER_SECOND": "0",
        "TETHER_WIX_REQUESTS_PER_MINUTE": "0",
    }

    line = preview.predict(env)

    e = data.expectations
    assert line == (
        f"tether preview predicts: link {e['matched_existing_records']} records to "
        f"{e['matched_existing_contacts']} existing contacts, create {e['created_contacts']} "
        f"contacts, {e['review_items']} to review, {e['linked_records']} records linked"
    )


def test_a_refused_key_stops_the_preview_with_a_pointer_to_the_doctor(
    lifted: Sims,
    pg_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in lifted.env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TETHER_POSTGRES_DSN", pg_dsn)
    monkeypatch.setenv("TETHER_WIX_API_KEY", "a-wrong-wix-key-789")

    assert preview.main([]) == 1

    out = capsys.readouterr()
    assert "reading wix failed: AuthenticationError (HTTP 401" in out.err
    assert "tether doctor" in out.err
    assert "a-wrong-wix-key-789" not in out.out + out.err
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(SCRATCH_SCHEMAS).fetchall() == []
