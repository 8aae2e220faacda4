"""Benchmark of one verification cycle's two costs (a script, not a test).

    .venv/bin/python bench/verify.py                   # 5,000 PowerOffice records
    .venv/bin/python bench/verify.py --records 20000

(a) Reading: both in-process simulators are seeded with ``--records`` PowerOffice records (the
    demo's generator: employees, customers, contact persons) plus its Wix contacts, and
    ``reading.read_all`` pages them with the production clients, budgets lifted. Printed: records
    read, API requests per system, seconds — and the cycle's read time at the default verifier
    shares of the real limits (PowerOffice 10/s x 0.1, Wix 200/min x 0.1), which is what bounds a
    cycle in production.
(b) Comparing: ``compare.verify_link`` over one link per employee (a PowerOffice member and a
    Wix member holding the same values, as after a sync; 1 % changed behind the engine's back).
    Printed: links per second and the divergent count found (must equal the changed count).
"""

from __future__ import annotations

import argparse
import collections
import logging
import time
from datetime import UTC, datetime
from typing import Any

from benchkit import add_timeout, arm_timeout
from pydantic import SecretStr

from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.poweroffice.simulator import (
    DEFAULT_APPLICATION_KEY,
    DEFAULT_CLIENT_KEY,
    DEFAULT_SUBSCRIPTION_KEY,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.seed import generate
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget
from services.demo.seeding import seed_simulators
from services.mapper.domain import (
    Link,
    Member,
    RecordRef,
    Snapshot,
    read_hub,
    read_member,
)
from services.verify.compare import Status, verify_link
from services.verify.reading import Clients, read_all

POWEROFFICE, WIX = "poweroffice", "wix"  # the shipped dataflow's systems
EMPLOYEES, CONTACTS = "employees", "contacts"

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def bench_reading(records: int) -> None:
    data = generate(records, seed=3)
    po_sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    wix_sim = WixSimulator(rate_limit=0)
    calls: collections.Counter[str] = collections.Counter()

    def observe(system: str, operation: str, status: int | str, seconds: float) -> None:
        calls[system] += 1

    with po_sim.serve() as po_server, wix_sim.server() as wix_server:
        seed_simulators(data, po_server.url, wix_server.url)
        po_budget, wix_budget = ApiBudget("po", 0), ApiBudget("wix", 0)
        clients = Clients(
            PowerOfficeClient(
                application_key=SecretStr(DEFAULT_APPLICATION_KEY),
                client_key=SecretStr(DEFAULT_CLIENT_KEY),
                subscription_key=SecretStr(DEFAULT_SUBSCRIPTION_KEY),
                budget=po_budget,
                base_url=f"{po_server.url}/v2",
                token_url=f"{po_server.url}/OAuth/Token",
                on_request=observe,
            ),
            WixClient(
                ApiKeyAuth(api_key=SecretStr(wix_sim.api_key), site_id=wix_sim.site_id),
                wix_budget,
                base_url=wix_server.url,
                on_request=observe,
            ),
            po_budget,
            wix_budget,
        )
        started = time.perf_counter()
        found = read_all(clients)
        seconds = time.perf_counter() - started
        clients.close()
    wix_sim.close()
    by_system = collections.Counter(system for system, _, _ in found)
    po_floor = calls["poweroffice"] / (10 * 0.1)
    wix_floor = calls["wix"] / (200 * 0.1 / 60)
    print(
        f"(a) read {by_system['poweroffice']} PowerOffice records and {by_system['wix']} Wix "
        f"contacts in {seconds:.2f} s (limits lifted) with {calls['poweroffice']} PowerOffice "
        f"and {calls['wix']} Wix requests; at the default verifier shares the reads take "
        f"{po_floor:.0f} s (PowerOffice) and {wix_floor:.0f} s (Wix), in sequence "
        f"{po_floor + wix_floor:.0f} s"
    )


def _contact(contact_id: str, props: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"name": {}}
    if props.get("first_name"):
        info["name"]["first"] = props["first_name"]
    if props.get("last_name"):
        info["name"]["last"] = props["last_name"]
    if props.get("phone"):
        info["phones"] = {"items": [{"phone": props["phone"], "primary": True}]}
    if props.get("email"):
        info["emails"] = {"items": [{"email": props["email"], "primary": True}]}
    return {
        "id": contact_id,
        "revision": 2,
        "updatedDate": "2026-01-01T00:00:00.000Z",
        "info": info,
    }


def bench_compare(links_wanted: int) -> None:
    data = generate(max(links_wanted * 4, 8), seed=5)
    employees = (data.employees * (links_wanted // max(len(data.employees), 1) + 1))[:links_wanted]
    links: list[Link] = []
    records: dict[tuple[str, str, str], dict[str, Any]] = {}
    changed = 0
    for index, seeded in enumerate(employees):
        record = {**seeded, "Id": index + 1, "LastChangedDateTimeOffset": "2026-01-01T00:00:00Z"}
        record_id, contact_id = str(index + 1), f"c-{index + 1}"
        contact = _contact(contact_id, read_member(EMPLOYEES, record))
        po = Member(
            ref=RecordRef(tenant="t", system=POWEROFFICE, resource=EMPLOYEES, id=record_id),
            flow=EMPLOYEES,
            observed=Snapshot(props=read_member(EMPLOYEES, record), source_ts=NOW),
            joined_at=NOW,
        )
        wix = Member(
            ref=RecordRef(tenant="t", system=WIX, resource=CONTACTS, id=contact_id),
            flow=WIX,
            observed=Snapshot(props=read_hub(contact), source_ts=NOW, revision=2),
            joined_at=NOW,
        )
        links.append(
            Link(
                link_id=f"l-{index}", tenant="t", members=(po, wix), created_at=NOW, updated_at=NOW
            )
        )
        if index % 100 == 0:
            record = {**record, "LastName": f"Behind{index}"}
            changed += 1
        records[(POWEROFFICE, EMPLOYEES, record_id)] = record
        records[(WIX, CONTACTS, contact_id)] = contact
    started = time.perf_counter()
    verdicts = [verify_link(link, records) for link in links]
    seconds = time.perf_counter() - started
    divergent = sum(1 for v in verdicts if v is not None and v.status is Status.DIVERGENT)
    print(
        f"(b) compared {len(links)} links in {seconds:.2f} s ({len(links) / seconds:,.0f} "
        f"links/s); divergent found {divergent} of {changed} changed behind the engine's back"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--links", type=int, default=20000)
    add_timeout(parser, 1800)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/verify.py")
    logging.basicConfig(level=logging.WARNING)
    bench_reading(args.records)
    bench_compare(args.links)


if __name__ == "__main__":
    main()
