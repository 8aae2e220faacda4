"""Load generated data (``services.connectors.seed``) into running simulators via their admin API.

Returns the created ids, so the demo and the tests can relate generated records to live ones.

Imports: the connectors' seed generator and admin clients only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import SeedData
from services.connectors.wix.admin import WixAdmin

BATCH = 1000


@dataclass
class Seeded:
    employees: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    contact_persons: list[dict[str, Any]] = field(default_factory=list)
    wix_contacts: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "employees": len(self.employees),
            "customers": len(self.customers),
            "contact_persons": len(self.contact_persons),
            "wix_contacts": len(self.wix_contacts),
        }


def _batches(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def seed_simulators(data: SeedData, poweroffice_url: str, wix_url: str) -> Seeded:
    seeded = Seeded()
    with PowerOfficeSimulatorAdmin(poweroffice_url, timeout=120) as po:
        for batch in _batches(data.employees):
            seeded.employees += po.seed("employees", batch)
        for batch in _batches(data.customers):
            seeded.customers += po.seed("customers", batch)
        persons = [
            {**person, "ContactId": seeded.customers[parent]["Id"]}
            for parent, person in data.contact_persons
        ]
        for batch in _batches(persons):
            seeded.contact_persons += po.seed("contactpersons", batch)
    wix = WixAdmin(wix_url)
    try:
        for batch in _batches([{"info": info} for info in data.wix_contacts]):
            seeded.wix_contacts += wix.seed(batch, webhooks=False)
    finally:
        wix.close()
    return seeded
