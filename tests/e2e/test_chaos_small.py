"""The chaos suite's CI version (profile ``small``): a few faults, a few hundred records.

``make chaos`` runs the whole suite (2,000 records, Kafka and PostgreSQL kill -9 on its own
infrastructure, ≥ 20 service kills); this test runs the same code, ``services.demo.chaos``, with
the ``small`` profile on the SHARED infrastructure — so no broker or database kills here: two
service kill -9s with the restarter, API faults (500/503, dropped connections, lost responses, a
429 storm), poison bytes on every consumed topic, a forged and an oversize webhook and one name
with a NUL character — and asserts what must hold whatever the faults: the seed's exact counts,
no duplicate contacts, every edit arrived, every poison message dead-lettered, nothing stranded,
no service exited that was not killed.

What is checked is read from the two systems and Kafka themselves (the report), not from the
engine's own belief.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.demo import chaos, faults

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def report(infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir: Path = tmp_path_factory.mktemp("chaos-small")
    options = chaos.Options(
        profile=faults.PROFILES["small"],
        records=faults.PROFILES["small"].records,
        seed=11,
        timeout=300.0,
        run_dir=run_dir,
        infra=None,  # the shared Kafka and PostgreSQL are never killed
        patience=45.0,
    )
    return chaos.ChaosRun(
        options, infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"], infra_env["TETHER_POSTGRES_DSN"]
    ).execute()


def test_the_faults_were_injected(report: dict[str, Any]) -> None:
    injected = report["faults_injected"]
    assert injected["service_kill_9"] >= 2, report["kills"]
    assert injected["poison_messages"] >= 9
    assert injected["forged_webhooks"] >= 1 and injected["oversize_webhooks"] >= 1
    api = injected["api"]
    assert sum(api["poweroffice"].values()) + sum(api["wix"].values()) > 0, api
    assert report["edits"]["odd_names"] >= 1  # the NUL name


def test_exact_counts_and_no_duplicates(report: dict[str, Any]) -> None:
    counts, expected = report["counts"], report["expected"]
    assert counts["duplicate_contacts"] == 0, counts["duplicate_groups"]
    assert counts["linked_more_than_once"] == 0
    assert counts["unlinked_records"] == []
    for key in ("linked_records", "contacts_created", "contacts_matched", "in_review"):
        assert counts[key] == expected[key], (key, counts, expected)


def test_every_edit_arrived_with_its_final_value(report: dict[str, Any]) -> None:
    assert report["edits"]["made"] >= 8
    assert report["edits"]["lost"] == []


def test_poison_became_dead_letters_and_forged_webhooks_were_refused(
    report: dict[str, Any],
) -> None:
    assert report["poison"]["not_dead_lettered"] == []
    assert report["poison"]["dead_lettered"] == report["poison"]["produced"] > 0
    for kind in ("forged", "oversize"):
        webhooks = report["webhooks"][kind]
        assert webhooks["accepted"] == 0, webhooks
        assert set(webhooks["statuses"]) <= {"401", "413"}, webhooks
    assert report["webhooks"]["forged_value_arrived"] is False


def test_nothing_stranded_and_no_service_died_on_its_own(report: dict[str, Any]) -> None:
    assert report["stranded_partitions"] == []
    assert report["unexpected_exits"] == []
    assert report["final_exit_codes"] == dict.fromkeys(faults.SERVICES, 0)


def test_the_run_passes_as_a_whole(report: dict[str, Any]) -> None:
    assert report["failures"] == []
    assert report["passed"] is True
