"""Verification end to end: the three services as processes, real Kafka and PostgreSQL, both
simulators over HTTP, and the verifier reading them with the production clients.

A record is changed *behind the engine's back* through the simulators' admin API (``silent``: no
webhook, no LastChanged/revision bump — nothing the extractor's feeds can see). One verification
cycle must find it (report, ``tether_links_divergent``), emit the repair change event, the
pipeline must converge, and the next cycle (the ``tether verify`` CLI) must report 0 divergent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from services.core.codec import default_codec
from services.core.kafka import layout_from, make_producer
from services.core.metrics import CoreMetrics
from services.demo import mapperdb
from services.demo.main import PO_RESOURCE
from services.demo.verify import LinkView
from services.mapper.domain import read_hub, read_member
from services.mapper.explain import explain_record
from services.verify.cycle import Report, Verifier
from services.verify.metrics import VerifyMetrics
from services.verify.reading import build_clients
from services.verify.settings import VerifySettings
from tests.e2e.test_pipeline import Running, eventually, start_stack, stop_stack

pytestmark = pytest.mark.integration


class InProcessVerifier:
    """The verifier built as ``tether verify`` builds it, with a registry the test can read."""

    def __init__(self, env: dict[str, str]) -> None:
        fields = {k.removeprefix("TETHER_").lower(): v for k, v in env.items() if "TETHER_" in k}
        self.settings = VerifySettings(**fields)
        self.registry = CollectorRegistry()
        self.clients = build_clients(self.settings, CoreMetrics(self.registry, "verify"))
        self.producer = make_producer(self.settings, "verify-test")
        self.verifier = Verifier(
            self.settings,
            self.clients,
            self.producer,
            default_codec(),
            layout_from(self.settings),
            VerifyMetrics(self.registry, self.settings.tenant),
        )

    def cycle(self) -> Report:
        return self.verifier.run_cycle()

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def close(self) -> None:
        self.producer.close(timeout=10)
        self.clients.close()


@pytest.fixture(scope="module")
def synced(
    infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    running = start_stack(infra_env, tmp_path_factory.mktemp("verify"), 60)
    running.stack.start_services()
    running.settle(timeout=240)
    yield running
    stop_stack(running)


@pytest.fixture(scope="module")
def verifier(synced: Running) -> Iterator[InProcessVerifier]:
    built = InProcessVerifier(synced.stack.service_env("mapper"))
    yield built
    built.close()


def employee_links(running: Running) -> list[LinkView]:
    return [
        link
        for link in mapperdb.links(running.stack.database_dsn)
        if link.status == "active"
        and link.contact_id
        and len(link.members) == 1
        and link.members[0][0] == "employees"
    ]


def po_record(running: Running, record_id: str) -> dict[str, Any]:
    return dict(running.po.record(PO_RESOURCE["employees"], int(record_id))["record"])


def last_names(running: Running, link: LinkView) -> tuple[str | None, str | None]:
    record_id = link.members[0][1]
    po_value = read_member("employees", po_record(running, record_id)).get("last_name")
    wix_value = read_hub(running.wix.contact(str(link.contact_id))).get("last_name")
    return po_value, wix_value


def cli_cycle(running: Running) -> tuple[int, dict[str, Any]]:
    """``tether verify`` as the operator runs it: one cycle, JSON report, exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "verify"],
        env=running.stack.service_env("mapper"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, 1) and done.stdout, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def test_a_record_changed_behind_the_engines_back_is_detected_and_repaired(
    synced: Running, verifier: InProcessVerifier
) -> None:
    first = verifier.cycle()
    assert first.divergent == [], first.to_json()  # a settled sync agrees everywhere
    link = employee_links(synced)[0]
    record_id = link.members[0][1]
    before = po_record(synced, record_id)
    synced.po.edit("employees", int(record_id), {"LastName": "Bakvendt"}, silent=True)
    after = po_record(synced, record_id)
    assert after["LastName"] == "Bakvendt"
    assert after["LastChangedDateTimeOffset"] == before["LastChangedDateTimeOffset"]

    report = verifier.cycle()
    [found] = [v for v in report.divergent if v.link_id == link.link_id]
    assert found.properties == ("last_name",)
    assert [(r["system"], r["record_id"]) for r in report.repairs[link.link_id]] == [
        ("poweroffice", record_id)
    ]
    tenant = verifier.settings.tenant
    assert verifier.metric("tether_links_divergent", tenant=tenant, flow="employees") == 1.0
    assert (
        verifier.metric("tether_verify_repairs_total", system="poweroffice", resource="employees")
        == 1.0
    )
    assert report.converging

    assert eventually(lambda: last_names(synced, link) == ("Bakvendt", "Bakvendt"), 60)
    synced.settle()
    code, second = cli_cycle(synced)
    assert code == 0 and second["divergent_links"] == 0, second
    with psycopg.connect(synced.stack.database_dsn, autocommit=True) as conn:
        answer = explain_record(conn, "default", "poweroffice", "employees", record_id)
    assert answer["verification"]["status"] == "agree"


def test_a_lost_write_is_written_again(synced: Running, verifier: InProcessVerifier) -> None:
    link = employee_links(synced)[-1]
    record_id = link.members[0][1]
    original, _ = last_names(synced, link)
    synced.po.edit("employees", int(record_id), {"LastName": "Skrevet"})
    assert eventually(lambda: last_names(synced, link) == ("Skrevet", "Skrevet"), 60)
    synced.settle()
    # The write the engine made to Wix is lost: the contact holds the old value again, with the
    # revision our write produced and no webhook.
    contact = synced.wix.contact(str(link.contact_id))
    name = dict(contact["info"]["name"])
    reverted = synced.wix.edit(
        str(link.contact_id), {"name": {**name, "last": original}}, silent=True
    )
    assert reverted["revision"] == contact["revision"]

    report = verifier.cycle()
    [found] = [v for v in report.divergent if v.link_id == link.link_id]
    assert found.properties == ("last_name",)
    assert [r["system"] for r in report.repairs[link.link_id]] == ["wix"]
    with psycopg.connect(synced.stack.database_dsn, autocommit=True) as conn:
        answer = explain_record(conn, "default", "wix", "contacts", str(link.contact_id))
    assert answer["verification"]["status"] == "divergent"
    assert answer["verification"]["properties"] == ["last_name"]

    # The engine's value is restored in Wix; PowerOffice keeps it (not overwritten by the loss).
    assert eventually(lambda: last_names(synced, link) == ("Skrevet", "Skrevet"), 60)
    synced.settle()
    assert verifier.cycle().divergent == []
    tenant = verifier.settings.tenant
    assert verifier.metric("tether_links_divergent", tenant=tenant, flow="employees") == 0.0
