"""End to end: the three services as real processes, real Kafka and PostgreSQL, both simulators.

One stack per module (a few hundred seeded records, limits lifted) serves the flow tests; the
crash test runs its own stack of 2,000 records and kills each service in turn with SIGKILL.
What is checked is read from the two systems themselves (``services.demo.verify``), not from
the engine's own belief.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import SeedData, generate
from services.connectors.wix.admin import WixAdmin
from services.core.topics import TopicLayout
from services.demo import mapperdb
from services.demo.main import PO_RESOURCE, collect_records, make_edits, wait_for_sync
from services.demo.seeding import Seeded, seed_simulators
from services.demo.stack import SERVICES, Stack
from services.demo.verify import reconcile
from services.mapper.domain import read_hub, read_member

pytestmark = pytest.mark.integration


class Running:
    def __init__(self, stack: Stack, data: SeedData, seeded: Seeded) -> None:
        self.stack = stack
        self.data = data
        self.seeded = seeded
        self.layout = TopicLayout(prefix=stack.topic_prefix, partitions=3)
        self.po = PowerOfficeSimulatorAdmin(stack.poweroffice_url)
        self.wix = WixAdmin(stack.wix_url)

    @property
    def total(self) -> int:
        counts = self.seeded.counts()
        return counts["employees"] + counts["customers"] + counts["contact_persons"]

    def summary(self) -> dict[str, Any]:
        return reconcile(
            collect_records(self.po),
            self.wix.contacts(),
            {str(c["id"]) for c in self.seeded.wix_contacts},
            mapperdb.links(self.stack.database_dsn),
            mapperdb.review_records(self.stack.database_dsn),
        )

    def settle(self, timeout: float = 120.0) -> None:
        wait_for_sync(self.stack, self.layout, self.total, timeout)

    def close(self) -> None:
        self.po.close()
        self.wix.close()


def start_stack(infra_env: dict[str, str], run_dir: Path, records: int, **kwargs: Any) -> Running:
    stack = Stack(
        infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        infra_env["TETHER_POSTGRES_DSN"],
        run_dir,
        **kwargs,
    )
    stack.create_database()
    stack.start_simulators()
    data = generate(records, seed=11)
    seeded = seed_simulators(data, stack.poweroffice_url, stack.wix_url)
    stack.provision_topics()
    return Running(stack, data, seeded)


def stop_stack(running: Running) -> None:
    running.close()
    codes = running.stack.stop()
    running.stack.drop_database()
    # The services drain and exit 0 on SIGTERM (the simulators just die of it).
    assert {name: codes[name] for name in SERVICES} == dict.fromkeys(SERVICES, 0), codes


@pytest.fixture(scope="module")
def synced(
    infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    running = start_stack(infra_env, tmp_path_factory.mktemp("e2e"), 240)
    running.stack.start_services()
    running.settle(timeout=240)
    yield running
    stop_stack(running)


def eventually(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_initial_sync_links_every_record_once_and_matches_instead_of_duplicating(
    synced: Running,
) -> None:
    summary = synced.summary()
    expected = synced.data.expectations
    assert summary["unlinked_records"] == []
    assert summary["linked_more_than_once"] == 0
    assert summary["duplicate_contacts"] == 0
    assert summary["value_mismatches"] == 0, summary["mismatch_examples"]
    assert summary["linked_records"] == expected["linked_records"]
    assert summary["contacts_matched"] == expected["matched_existing_contacts"]
    assert summary["contacts_created"] == expected["created_contacts"]
    in_review = sum(flow["in_review"] for flow in summary["flows"].values())
    assert in_review == expected["review_items"]


def test_wix_only_contacts_are_not_created_in_poweroffice_by_default(synced: Running) -> None:
    customers = synced.po.records("customers")
    assert len(customers) == synced.seeded.counts()["customers"]


def test_edits_on_both_sides_arrive_and_echoes_never_write(synced: Running) -> None:
    before = _writes(synced)
    result = make_edits(synced.stack, 12, random.Random(5), timeout=60)
    assert result["edits_made"] == 12
    assert result["edits_not_propagated"] == []
    synced.settle()
    time.sleep(2)  # echoes of our own writes come back by polling and webhooks
    synced.settle()
    assert _writes(synced) - before == result["writes_expected"]


def _writes(running: Running) -> int:
    from services.demo.apicounts import poweroffice_counts, wix_counts

    return (
        poweroffice_counts(running.po.counters())["writes"]
        + wix_counts(running.wix.counters())["writes"]
    )


def test_shared_link_fans_a_wix_edit_out_to_every_member(synced: Running) -> None:
    shared = [
        link
        for link in mapperdb.links(synced.stack.database_dsn)
        if link.status == "active" and link.contact_id and len(link.members) >= 2
    ]
    assert shared, "the seed must contain people with several PowerOffice records"
    link = shared[0]
    contact = synced.wix.contact(str(link.contact_id))
    last = read_hub(contact).get("last_name")
    synced.wix.edit(str(link.contact_id), {"name": {"first": "Fanout", "last": last}})

    def all_members_have_it() -> bool:
        for resource, record_id in link.members:
            record = synced.po.record(PO_RESOURCE[resource], int(record_id))["record"]
            props = read_member(resource, record)
            if "first_name" in props and props["first_name"] != "Fanout":
                return False
        return True

    assert eventually(all_members_have_it)


def test_concurrent_edits_converge_on_the_latest(synced: Running) -> None:
    links = [
        link
        for link in mapperdb.links(synced.stack.database_dsn)
        if link.status == "active"
        and link.contact_id
        and len(link.members) == 1
        and link.members[0][0] == "employees"
    ]
    link = links[-1]
    resource, record_id = link.members[0]
    synced.po.edit(PO_RESOURCE[resource], int(record_id), {"LastName": "Older"})
    time.sleep(0.05)
    contact = synced.wix.contact(str(link.contact_id))
    first = read_hub(contact).get("first_name")
    synced.wix.edit(str(link.contact_id), {"name": {"first": first, "last": "Newer"}})

    def converged() -> bool:
        po_value = read_member(
            resource, synced.po.record(PO_RESOURCE[resource], int(record_id))["record"]
        ).get("last_name")
        wix_value = read_hub(synced.wix.contact(str(link.contact_id))).get("last_name")
        return po_value == wix_value == "Newer"

    assert eventually(converged)


def test_a_deleted_poweroffice_record_unlinks_and_deletes_nothing_in_wix(synced: Running) -> None:
    links = [
        link
        for link in mapperdb.links(synced.stack.database_dsn)
        if link.status == "active"
        and link.contact_id
        and len(link.members) == 1
        and link.members[0][0] == "customers"
    ]
    link = links[0]
    resource, record_id = link.members[0]
    synced.po.delete(PO_RESOURCE[resource], int(record_id))

    def unlinked() -> bool:
        views = {view.link_id: view for view in mapperdb.links(synced.stack.database_dsn)}
        return views[link.link_id].status != "active"

    assert eventually(unlinked, timeout=120)
    assert synced.wix.contact(str(link.contact_id))["id"] == link.contact_id


def test_kill_9_of_each_service_during_initial_sync_converges(
    infra_env: dict[str, str], tmp_path: Path
) -> None:
    # A Wix budget of 50 writes/s keeps the initial sync busy long enough to crash into it.
    running = start_stack(
        infra_env, tmp_path, 2000, extra_env={"TETHER_WIX_REQUESTS_PER_MINUTE": "3000"}
    )
    try:
        stack = running.stack
        stack.start_services()
        linked_at_kill = []
        for name in ("extractor", "mapper", "loader"):
            time.sleep(4)
            linked_at_kill.append(mapperdb.sync_state(stack.database_dsn).linked)
            stack.processes[name].kill()
            stack.restart(name)
        assert linked_at_kill[-1] < running.total, "the kills must land during the sync"
        running.settle(timeout=600)
        summary = running.summary()
        assert summary["duplicate_contacts"] == 0
        assert summary["unlinked_records"] == []
        assert summary["linked_more_than_once"] == 0
        assert summary["value_mismatches"] == 0, summary["mismatch_examples"]
        expected = running.data.expectations
        # Exactly the seed's answer, not just "no duplicates": a record handled before the
        # contacts it matches would have been created (phones have no Wix duplicate rule).
        assert summary["contacts_created"] == expected["created_contacts"]
        assert summary["contacts_matched"] == expected["matched_existing_contacts"]
        assert summary["linked_records"] == expected["linked_records"]
        in_review = sum(flow["in_review"] for flow in summary["flows"].values())
        assert in_review == expected["review_items"]
        # and edits made after the crashes are not lost
        result = make_edits(stack, 6, random.Random(9), timeout=60)
        assert result["edits_not_propagated"] == []
    finally:
        stop_stack(running)
