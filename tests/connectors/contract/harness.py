"""Per-connector harnesses for the contract suite: one simulator over real HTTP per system, and
what the suite needs to drive it (seed records, edit or delete them as a user would, inject 429s,
expire tokens, clamp pages). Adding a connector = adding one harness here.

The connector under test is reached only through its ``DESCRIPTOR`` (streams, targets); the
harness's own helpers use the simulator's admin API, never the connector.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.client import PowerOfficeClient, RetryPolicy
from services.connectors.poweroffice.connector import API_RESOURCE
from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.poweroffice.simulator import PowerOfficeSimulator, SimulatorLimits
from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.client import AppAuth, WixClient
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget
from services.core.connector import (
    ConnectorDescriptor,
    RecordKey,
    SourceStream,
    StreamOptions,
    Target,
)
from services.core.settings import PowerOfficeSettings, WixSettings

Observer = Callable[[str, str, int, float], None]


@dataclass
class Calls:
    """What the client reported (``on_request``) and how long it was told to sleep."""

    requests: list[tuple[str, int]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def observe(self, system: str, operation: str, status: int, seconds: float) -> None:
        self.requests.append((operation, status))

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)  # recorded, not slept: the suite measures no time

    def count(self, *, status: int | None = None, operation: str | None = None) -> int:
        return sum(
            1
            for op, st in self.requests
            if (status is None or st == status) and (operation is None or op == operation)
        )


class Harness(abc.ABC):
    """One (connector, resource) under test; a connector's subclass implements the hooks."""

    descriptor: ConnectorDescriptor[Any, Any]
    resource: str
    field: str
    """A writable field path the suite edits."""
    parent_id: str | None = None

    @abc.abstractmethod
    def client(self, calls: Calls) -> Any:
        raise NotImplementedError

    @abc.abstractmethod
    def settings(self) -> Any:
        """Production settings (``descriptor.settings_model``) pointing at the simulator."""
        raise NotImplementedError

    def stream(self, client: Any) -> SourceStream:
        return self.descriptor.streams(client, StreamOptions())[self.resource]

    def target(self, client: Any) -> Target:
        return self.descriptor.targets(client)[self.resource]

    @abc.abstractmethod
    def reset(self) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def seed(self, n: int, *, same_stamp: bool = False) -> list[RecordKey]:
        """``n`` records put in by the simulator's admin API (a data import)."""
        raise NotImplementedError

    @abc.abstractmethod
    def values(self, i: int) -> dict[str, Any]:
        """Values of a valid create."""
        raise NotImplementedError

    @abc.abstractmethod
    def value_of(self, record: dict[str, Any]) -> Any:
        """``field``'s value in a record."""
        raise NotImplementedError

    @abc.abstractmethod
    def user_edit(self, key: RecordKey, value: str) -> None:
        """Someone changes ``field`` in the product itself."""
        raise NotImplementedError

    @abc.abstractmethod
    def user_delete(self, key: RecordKey) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def rate_limit(self, times: int) -> None:
        """The next ``times`` API requests are answered 429."""
        raise NotImplementedError

    @abc.abstractmethod
    def expire_tokens(self) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def clamp(self, page_size: int | None) -> None:
        """The server returns at most ``page_size`` records per page (None: as asked)."""
        raise NotImplementedError


class PowerOfficeHarness(Harness):
    descriptor = POWEROFFICE

    def __init__(self, sim: PowerOfficeSimulator, server: ServerThread, resource: str) -> None:
        self.sim = sim
        self.server = server
        self.resource = resource
        self.api = API_RESOURCE[resource]
        self.admin = PowerOfficeSimulatorAdmin(server.url)
        self.field = "Name" if resource == "customers" else "FirstName"
        self._numbers = itertools.count(1)

    def client(self, calls: Calls) -> PowerOfficeClient:
        creds = self.sim.credentials
        return PowerOfficeClient(
            application_key=SecretStr(creds.application_key),
            client_key=SecretStr(creds.client_key),
            subscription_key=SecretStr(creds.subscription_key),
            budget=ApiBudget("contract-poweroffice", 0),
            base_url=self.sim.base_url(self.server),
            token_url=self.sim.token_url(self.server),
            timeout=5.0,
            retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05),
            on_request=calls.observe,
            sleep=calls.sleep,
        )

    def settings(self) -> PowerOfficeSettings:
        creds = self.sim.credentials
        return PowerOfficeSettings(
            poweroffice_base_url=self.sim.base_url(self.server),
            poweroffice_token_url=self.sim.token_url(self.server),
            poweroffice_app_key=SecretStr(creds.application_key),
            poweroffice_client_key=SecretStr(creds.client_key),
            poweroffice_subscription_key=SecretStr(creds.subscription_key),
        )

    def reset(self) -> None:
        self.admin.reset()
        self.sim.store.page_size_clamp = None
        self.parent_id = None
        if self.api == "contactpersons":
            (parent,) = self.admin.seed("customers", [{"Name": "Forelder AS"}])
            self.parent_id = str(parent["Id"])

    def _record(self, i: int) -> dict[str, Any]:
        if self.api == "customers":
            return {"Name": f"Kunde {i} AS", "EmailAddress": f"kunde{i}@example.com"}
        record: dict[str, Any] = {"FirstName": f"Person{i}", "LastName": "Nordmann"}
        if self.api == "contactpersons":
            record["ContactId"] = int(self.parent_id or 0)
        return record

    def seed(self, n: int, *, same_stamp: bool = False) -> list[RecordKey]:
        records = [self._record(next(self._numbers)) for _ in range(n)]
        if same_stamp:
            for record in records:
                record["LastChangedDateTimeOffset"] = "2025-03-01T10:00:00.1234567+00:00"
        seeded = self.admin.seed(self.api, records)
        return [RecordKey(str(r["Id"]), self.parent_id) for r in seeded]

    def values(self, i: int) -> dict[str, Any]:
        record = self._record(i)
        record.pop("ContactId", None)
        return record

    def value_of(self, record: dict[str, Any]) -> Any:
        return record.get(self.field)

    def user_edit(self, key: RecordKey, value: str) -> None:
        self.admin.edit(self.api, int(key.id), {self.field: value})

    def user_delete(self, key: RecordKey) -> None:
        self.admin.delete(self.api, int(key.id))

    def rate_limit(self, times: int) -> None:
        self.admin.add_fault({"kind": "rate_limit", "path": "^/v2/", "times": times})

    def expire_tokens(self) -> None:
        self.admin.expire_tokens()

    def clamp(self, page_size: int | None) -> None:
        self.sim.store.page_size_clamp = page_size


class WixHarness(Harness):
    descriptor = WIX
    resource = "contacts"
    field = "info.name.first"

    def __init__(self, sim: WixSimulator, server: ServerThread) -> None:
        self.sim = sim
        self.server = server
        self.admin = WixAdmin(server.url)
        self._numbers = itertools.count(1)

    def client(self, calls: Calls) -> WixClient:
        # App credentials: an OAuth token that expires (API keys have none to renew).
        auth = AppAuth(
            app_id=self.sim.app_id,
            app_secret=SecretStr(self.sim.app_secret),
            instance_id=self.sim.instance_id,
        )
        return WixClient(
            auth,
            ApiBudget("contract-wix", 0),
            base_url=self.server.url,
            timeout_seconds=5.0,
            backoff_initial_seconds=0.01,
            backoff_max_seconds=0.05,
            rate_limit_wait_seconds=0.01,
            on_request=calls.observe,
            sleep=calls.sleep,
        )

    def settings(self) -> WixSettings:
        return WixSettings(
            wix_base_url=self.server.url,
            wix_app_id=self.sim.app_id,
            wix_app_secret=SecretStr(self.sim.app_secret),
            wix_instance_id=self.sim.instance_id,
        )

    def reset(self) -> None:
        self.admin.reset()

    def seed(self, n: int, *, same_stamp: bool = False) -> list[RecordKey]:
        contacts: list[dict[str, Any]] = []
        for _ in range(n):
            i = next(self._numbers)
            contact: dict[str, Any] = {
                "info": {
                    "name": {"first": f"Person{i}", "last": "Nordmann"},
                    "emails": {"items": [{"email": f"person{i}@example.com", "primary": True}]},
                }
            }
            if same_stamp:
                contact["createdDate"] = "2025-03-01T10:00:00.123Z"
                contact["updatedDate"] = "2025-03-01T10:00:00.123Z"
            contacts.append(contact)
        return [RecordKey(str(c["id"])) for c in self.admin.seed(contacts)]

    def values(self, i: int) -> dict[str, Any]:
        return {"info.name.first": f"Ny{i}", "info.name.last": "Kontakt"}

    def value_of(self, record: dict[str, Any]) -> Any:
        return record.get("info", {}).get("name", {}).get("first")

    def user_edit(self, key: RecordKey, value: str) -> None:
        self.admin.edit(key.id, {"name": {"first": value, "last": "Nordmann"}})

    def user_delete(self, key: RecordKey) -> None:
        self.admin.delete(key.id)

    def rate_limit(self, times: int) -> None:
        self.admin.add_fault(kind="rate_limit", path="^/contacts/v4/", times=times)

    def expire_tokens(self) -> None:
        self.sim.expire_tokens()

    def clamp(self, page_size: int | None) -> None:
        self.sim.max_page_size = page_size


@contextmanager
def running_simulators() -> Iterator[dict[str, Harness]]:
    """Both simulators, served over HTTP on free ports; a harness per ``system/resource``."""
    po = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    wix = WixSimulator(rate_limit=0)
    try:
        with po.serve() as po_server, wix.server() as wix_server:
            harnesses: list[Harness] = [
                PowerOfficeHarness(po, po_server, name) for name in API_RESOURCE
            ]
            harnesses.append(WixHarness(wix, wix_server))
            yield {f"{h.descriptor.system}/{h.resource}": h for h in harnesses}
    finally:
        wix.close()
