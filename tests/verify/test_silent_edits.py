"""The simulators' admin option to change a record *behind the engine's back* (``silent``): the
value changes, but no stamp moves and no webhook fires — what only a full rescan can find.
Both simulators run in-process and are driven over real HTTP through their admin clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simulator import PowerOfficeSimulator, SimulatorLimits
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simstore import ContactChange
from services.connectors.wix.simulator import WixSimulator


@pytest.fixture
def poweroffice() -> Iterator[PowerOfficeSimulatorAdmin]:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    with sim.serve() as server, PowerOfficeSimulatorAdmin(server.url) as admin:
        yield admin


@pytest.fixture
def wix() -> Iterator[tuple[WixSimulator, WixAdmin]]:
    sim = WixSimulator(rate_limit=0)
    try:
        with sim.server() as server, WixAdmin(server.url) as admin:
            yield sim, admin
    finally:
        sim.close()


def test_a_silent_poweroffice_edit_moves_no_stamp(poweroffice: PowerOfficeSimulatorAdmin) -> None:
    [seeded] = poweroffice.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])
    stamp = seeded["LastChangedDateTimeOffset"]
    silent = poweroffice.edit("employees", seeded["Id"], {"LastName": "Berg"}, silent=True)
    assert silent["LastName"] == "Berg" and silent["LastChangedDateTimeOffset"] == stamp
    stored = poweroffice.record("employees", seeded["Id"])["record"]
    assert stored["LastName"] == "Berg" and stored["LastChangedDateTimeOffset"] == stamp
    visible = poweroffice.edit("employees", seeded["Id"], {"LastName": "Dahl"})
    assert visible["LastChangedDateTimeOffset"] > stamp  # the ordinary edit still bumps it


def test_a_silent_wix_edit_keeps_revision_and_date_and_fires_no_webhook(
    wix: tuple[WixSimulator, WixAdmin],
) -> None:
    sim, admin = wix
    changes: list[ContactChange] = []
    [seeded] = admin.seed([{"id": "c-1", "revision": 3, "info": {"name": {"first": "Ola"}}}])
    sim.store.on_change = changes.append
    silent = admin.edit("c-1", {"name": {"first": "Olav"}}, silent=True)
    assert silent["info"]["name"]["first"] == "Olav"
    assert (silent["revision"], silent["updatedDate"]) == (3, seeded["updatedDate"])
    assert changes == []
    stored: dict[str, Any] = admin.contact("c-1")
    assert stored["revision"] == 3 and stored["info"]["name"]["first"] == "Olav"
    visible = admin.edit("c-1", {"name": {"first": "Ole"}})
    assert visible["revision"] == 4 and [c.kind for c in changes] == ["updated"]
