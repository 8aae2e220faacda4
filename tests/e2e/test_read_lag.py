"""End to end with PowerOffice reads lagging its writes by ~1 s (a read replica).

The three services as real processes, real Kafka and PostgreSQL, both simulators; after the
initial sync the PowerOffice simulator serves every read one second behind the writes
(``POST /_admin/realism``). A person edits an employee in PowerOffice and, a moment later, the
linked contact in Wix. The loader's guarded patch then meets the PowerOffice edit (its ``test``
fails on the primary) while every read still shows the old record. Before the fix that refusal
came back REJECTED, the mapper never sent the Wix value again and the two systems stayed apart.
Now: a conflict, re-merged — both edits survive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.core.topics import TopicLayout
from services.demo import mapperdb
from services.demo.main import PO_RESOURCE, wait_for_sync
from services.demo.seeding import seed_simulators
from services.demo.stack import SERVICES, Stack
from services.mapper.domain import read_hub, read_member
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

RECORDS = 40


class Running:
    def __init__(self, stack: Stack, total: int) -> None:
        self.stack = stack
        self.total = total
        self.layout = TopicLayout(prefix=stack.topic_prefix, partitions=3)
        self.po = PowerOfficeSimulatorAdmin(stack.poweroffice_url)
        self.wix = WixAdmin(stack.wix_url)


@pytest.fixture(scope="module")
def lagging(
    infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    stack = Stack(
        infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        infra_env["TETHER_POSTGRES_DSN"],
        tmp_path_factory.mktemp("e2e-lag"),
    )
    stack.create_database()
    stack.start_simulators()
    data = generate(RECORDS, seed=11)
    seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
    stack.provision_topics()
    counts = seeded.counts()
    running = Running(stack, counts["employees"] + counts["customers"] + counts["contact_persons"])
    try:
        stack.start_services()
        wait_for_sync(stack, running.layout, running.total, 240)
        running.po.set_read_lag(1.0)
        yield running
    finally:
        running.po.close()
        running.wix.close()
        codes = stack.stop()
        stack.drop_database()
    assert {name: codes[name] for name in SERVICES} == dict.fromkeys(SERVICES, 0), codes


def rejected_reviews(dsn: str, link_id: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT detail FROM mapper_review_items WHERE link_id = %s AND reason = %s",
            (link_id, "write_rejected"),
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_concurrent_edits_on_both_sides_converge_with_no_lost_edit_while_reads_lag(
    lagging: Running,
) -> None:
    assert lagging.po.realism()["read_lag_seconds"] == 1.0
    links = [
        link
        for link in mapperdb.links(lagging.stack.database_dsn)
        if link.status == "active"
        and link.contact_id
        and len(link.members) == 1
        and link.members[0][0] == "employees"
    ]
    assert links, "the seed must contain employees linked to one contact each"
    link = links[-1]
    resource, record_id = link.members[0]
    po_resource = PO_RESOURCE[resource]
    contact_id = str(link.contact_id)
    first_before = read_hub(lagging.wix.contact(contact_id)).get("first_name")

    # PowerOffice: first and last name (reads show it only a second later) ...
    lagging.po.edit(po_resource, int(record_id), {"FirstName": "Lagfirst", "LastName": "Older"})
    time.sleep(0.05)
    # ... then Wix: the last name again, newer. The loader's guarded patch of the last name meets
    # the PowerOffice edit on the primary while every read still shows the old record.
    lagging.wix.edit(contact_id, {"name": {"first": first_before, "last": "Newer"}})

    def state() -> tuple[dict[str, object], dict[str, object]]:
        po = read_member(resource, lagging.po.record(po_resource, int(record_id))["record"])
        wix = read_hub(lagging.wix.contact(contact_id))
        return po, wix

    def converged() -> bool:
        po, wix = state()
        # the PowerOffice first name (only edited there) and the Wix last name (the newer edit
        # of the same property) both survive, on both sides
        return (
            po.get("first_name") == wix.get("first_name") == "Lagfirst"
            and po.get("last_name") == wix.get("last_name") == "Newer"
        )

    assert eventually(converged), state()
    assert rejected_reviews(lagging.stack.database_dsn, link.link_id) == []
    # the guarded patch really was refused (the scenario happened), and not as a rejection
    refused = [
        row
        for row in lagging.po.counters()["requests"]
        if row["method"] == "PATCH" and row["resource"] == "employees" and row["status"] == 400
    ]
    assert refused, lagging.po.counters()
