"""Benchmark of the extractor against the in-process simulators and the real Kafka (not a test).

    .venv/bin/python bench/extractor.py [--records 5000] [--changes 1000] [--page-size 1000]

Needs Kafka (``python3 scripts/infra.py up``; ``TETHER_KAFKA_BOOTSTRAP_SERVERS`` or the default
127.0.0.1:19092). Uses its own topic prefix. Reports:

(a) full snapshot: ``--records`` seeded with ``seed.generate`` (PowerOffice employees, customers,
    contact persons + the pre-existing Wix contacts), simulator limits and client budgets lifted;
    events/s from the first ``poll_all()`` (every page produced, acknowledged, cursor saved);
(b) steady state: after a quiet cycle (the overlap has settled), ``--changes`` records are edited
    (customers, employees and Wix contacts, in proportion) and one poll cycle of every resource
    runs; API calls counted by the simulators (PowerOffice token calls excluded) per 1,000 changed
    records, and the calls of an idle cycle;
(c) one reconciliation of every resource: API calls and seconds;
(d) a restart: seconds for ``start()`` of a second extractor (cursors + known set rebuilt from the
    changes topics).
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

from benchkit import add_timeout, arm_timeout

from services.connectors.poweroffice.simulator import (
    Credentials,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.seed import generate
from services.connectors.wix.simulator import WixSimulator
from services.core.service import ServiceContext
from services.extractor.service import Extractor
from services.extractor.settings import ExtractorSettings

OVERLAP = 2.0


def po_calls(sim: PowerOfficeSimulator) -> int:
    return sim.count() - sim.count(resource="token")


def wix_calls(sim: WixSimulator) -> int:
    with sim._lock:  # the admin API reads the same counters
        return sum(n for (_m, operation, _s), n in sim.counters.items() if operation != "token")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=1000)
    add_timeout(parser, 1800)
    args = parser.parse_args()
    arm_timeout(args.timeout, "bench/extractor.py")
    bootstrap = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")

    data = generate(args.records, 42)
    po = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    wix = WixSimulator(rate_limit=0)
    po.seed("employees", data.employees)
    customers = po.seed("customers", data.customers)
    po.seed(
        "contactpersons",
        [dict(person, ContactId=customers[index]["Id"]) for index, person in data.contact_persons],
    )
    wix.store.seed([{"info": info} for info in data.wix_contacts], actor={}, emit=False)
    total = (
        len(data.employees)
        + len(data.customers)
        + len(data.contact_persons)
        + len(data.wix_contacts)
    )
    creds = Credentials()
    out: dict[str, Any] = {"records": total}
    with po.serve() as po_server, wix.server() as wix_server:
        settings = ExtractorSettings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
            topic_partitions=6,
            http_port=0,
            poweroffice_base_url=po.base_url(po_server),
            poweroffice_token_url=po.token_url(po_server),
            poweroffice_app_key=creds.application_key,
            poweroffice_client_key=creds.client_key,
            poweroffice_subscription_key=creds.subscription_key,
            poweroffice_requests_per_second=0,
            wix_requests_per_minute=0,
            wix_base_url=wix_server.url,
            wix_api_key=wix.api_key,
            wix_site_id=wix.site_id,
            poweroffice_page_size=args.page_size,
            wix_page_size=min(args.page_size, 1000),
            poll_overlap_seconds=OVERLAP,
            log_level="WARNING",
        )
        ctx = ServiceContext.create("extractor", settings, install_signals=False)
        extractor = Extractor(ctx, settings)
        try:
            extractor.start()
            # (a) full snapshot
            po.reset_counters()
            started = time.perf_counter()
            emitted = sum(extractor.poll_all().values())
            seconds = time.perf_counter() - started
            out["snapshot events"] = emitted
            out["snapshot seconds"] = round(seconds, 2)
            out["snapshot events/s"] = round(emitted / seconds)
            out["snapshot API calls (PowerOffice + Wix)"] = po_calls(po) + wix_calls(wix)

            # (b) steady state: let the overlap settle, then measure an idle and a busy cycle
            time.sleep(OVERLAP + 0.5)
            extractor.poll_all()
            po.reset_counters()
            wix.counters.clear()
            extractor.poll_all()
            out["idle cycle API calls"] = po_calls(po) + wix_calls(wix)

            n_wix = min(len(data.wix_contacts), round(args.changes * 0.2))
            n_employees = min(len(data.employees), round(args.changes * 0.3))
            n_customers = args.changes - n_wix - n_employees
            for row in po.store.live("customers")[:n_customers]:
                po.edit("customers", row["Id"], {"Name": f"{row['Name']} (endret)"})
            for row in po.store.live("employees")[:n_employees]:
                po.edit("employees", row["Id"], {"JobTitle": "Benchmarker"})
            for contact in wix.store.all()[:n_wix]:
                wix.store.update(
                    contact["id"],
                    {"name": {"first": "Endret"}},
                    revision=None,
                    allow_duplicates=True,
                    actor={},
                )
            time.sleep(OVERLAP + 0.5)  # a poll interval later
            po.reset_counters()
            wix.counters.clear()
            started = time.perf_counter()
            changed = sum(extractor.poll_all().values())
            seconds = time.perf_counter() - started
            calls = po_calls(po) + wix_calls(wix)
            out["steady changes emitted"] = changed
            out["steady cycle API calls"] = calls
            out["API calls per 1,000 changed records"] = round(calls * 1000 / max(changed, 1), 1)
            out["steady cycle seconds"] = round(seconds, 2)

            # (c) reconciliation
            po.reset_counters()
            wix.counters.clear()
            started = time.perf_counter()
            extractor.reconcile_all()
            out["reconcile seconds"] = round(time.perf_counter() - started, 2)
            out["reconcile API calls"] = po_calls(po) + wix_calls(wix)

            # (d) restart: the known set is rebuilt from the changes topics
            ctx2 = ServiceContext.create("extractor", settings, install_signals=False)
            second = Extractor(ctx2, settings)
            try:
                started = time.perf_counter()
                second.start()
                out["restart start() seconds"] = round(time.perf_counter() - started, 2)
                out["restart known records"] = sum(len(k) for k in second.known.values())
            finally:
                second.close()
                ctx2.close()
        finally:
            extractor.close()
            ctx.close()
            wix.close()
    width = max(len(k) for k in out)
    for key, value in out.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
