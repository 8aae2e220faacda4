"""End to end: a dataflow file that maps what the default does not — PowerOffice customer
``PhoneNumber`` <-> the Wix contact's primary phone — syncs both ways through the real pipeline
(three services as processes, real Kafka and PostgreSQL, both simulators) with no code change:
the mapper gets the file through ``TETHER_MAPPER_DATAFLOW_FILE`` only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.demo import mapperdb
from services.demo.main import PO_RESOURCE
from services.mapper.domain import read_hub
from tests.e2e.test_pipeline import Running, start_stack, stop_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 40


@pytest.fixture(scope="module")
def running(
    infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    run_dir = tmp_path_factory.mktemp("dataflow")
    data: dict[str, Any] = json.loads((ROOT / "dataflows" / "default.json").read_text())
    (customers,) = [f for f in data["flows"] if f["resource"] == "customers"]
    customers["properties"].append({"property": "phone", "field": "PhoneNumber"})
    path = run_dir / "customers-with-phone.json"
    path.write_text(json.dumps(data))
    started = start_stack(
        infra_env, run_dir, RECORDS, extra_env={"TETHER_MAPPER_DATAFLOW_FILE": str(path)}
    )
    started.stack.start_services()
    started.settle(timeout=240)
    yield started
    stop_stack(started)


def linked_customer(running: Running) -> tuple[str, str]:
    """(customer id, contact id) of a customer linked alone to its Wix contact."""
    for link in mapperdb.links(running.stack.database_dsn):
        if link.contact_id and len(link.members) == 1 and link.members[0][0] == "customers":
            return link.members[0][1], link.contact_id
    raise AssertionError("no customer linked alone to a Wix contact")


def test_a_customer_phone_mapped_in_the_file_syncs_both_ways(running: Running) -> None:
    customer_id, contact_id = linked_customer(running)
    api = PO_RESOURCE["customers"]

    def wix_phone() -> str | None:
        return read_hub(running.wix.contact(contact_id)).get("phone")

    def po_phone() -> Any:
        return running.po.record(api, int(customer_id))["record"].get("PhoneNumber")

    # PowerOffice -> Wix: an edit in PowerOffice reaches the contact's primary phone.
    running.po.edit(api, int(customer_id), {"PhoneNumber": "912 34 567"})
    assert eventually(lambda: wix_phone() == "+4791234567"), wix_phone()
    # Wix -> PowerOffice: an edit of the contact's phone reaches the customer.
    running.wix.edit(contact_id, {"phones": {"items": [{"phone": "+4740000001", "primary": True}]}})
    assert eventually(lambda: po_phone() == "+4740000001"), po_phone()
