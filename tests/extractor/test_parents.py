"""Whose contact person (``services.extractor.parents``): known customers, lookups, the cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.connectors.poweroffice.connector import CONTACT_PERSON_PARENT
from services.core.errors import NotFoundError, ServerError
from services.extractor.changes import Change, Operation, Origin
from services.extractor.known import KnownSet
from services.extractor.parents import ParentKinds


def customer_known(known: KnownSet, record_id: str, *, deleted: bool = False) -> None:
    known.apply(
        Change(
            system="poweroffice",
            resource="customers",
            record_id=record_id,
            operation=Operation.DELETE if deleted else Operation.UPSERT,
            origin=Origin.POLL,
            source_timestamp=datetime(2025, 1, 1, tzinfo=UTC),
            source_version="2025-01-01T00:00:00.0000000Z",
            version_key=1,
        )
    )


class Lookup:
    """``GET /Customers/{id}``: ids in ``customers`` answer, others are 404."""

    def __init__(self, customers: set[int], error: Exception | None = None) -> None:
        self.customers = customers
        self.error = error
        self.asked: list[int] = []

    def __call__(self, parent_id: str) -> object:
        customer_id = int(parent_id)
        self.asked.append(customer_id)
        if self.error is not None:
            raise self.error
        if customer_id not in self.customers:
            raise NotFoundError("no such customer", system="poweroffice", status=404)
        return {"Id": customer_id}


def test_a_known_customer_needs_no_call_and_others_are_looked_up_once() -> None:
    known = KnownSet("poweroffice", "customers")
    customer_known(known, "10")
    lookup = Lookup({20})
    parents = ParentKinds(known, lookup, role=CONTACT_PERSON_PARENT)
    assert parents.kind("10") == "customer" and lookup.asked == []
    assert parents.kind("20") == "customer"  # a customer the known set has not seen yet
    assert parents.kind("30") == "supplier"  # no customer role: a supplier's contact person
    assert parents.kind("30") == "supplier" and parents.kind("20") == "customer"
    assert lookup.asked == [20, 30] and parents.lookups == 2
    assert parents.kind(None) is None and parents.kind("x") is None


def test_answers_expire_and_a_deleted_customer_is_asked_about() -> None:
    now = [0.0]
    known = KnownSet("poweroffice", "customers")
    customer_known(known, "10", deleted=True)
    lookup = Lookup(set())
    parents = ParentKinds(known, lookup, role=CONTACT_PERSON_PARENT, ttl=60, clock=lambda: now[0])
    assert parents.kind("10") == "supplier"
    now[0] = 59.0
    assert parents.kind("10") == "supplier" and lookup.asked == [10]
    lookup.customers.add(10)  # the contact got the customer role meanwhile
    now[0] = 61.0
    assert parents.kind("10") == "customer" and lookup.asked == [10, 10]


def test_a_failing_lookup_propagates_and_caches_nothing() -> None:
    lookup = Lookup(set(), ServerError("down", system="poweroffice", status=503))
    parents = ParentKinds(KnownSet("poweroffice", "customers"), lookup, role=CONTACT_PERSON_PARENT)
    with pytest.raises(ServerError):
        parents.kind("30")
    lookup.error = None
    assert parents.kind("30") == "supplier" and lookup.asked == [30, 30]


def test_a_404_for_a_fresh_contact_persons_parent_is_not_taken_as_supplier_while_reads_lag() -> (
    None
):
    # A customer and its contact person created a moment ago; reads lag the writes by 1 s, so
    # GET /Customers/{id} still says 404. That 404 must not make (and cache) a "supplier".
    from pydantic import SecretStr

    from services.connectors.poweroffice.client import PowerOfficeClient
    from services.connectors.poweroffice.models import parse_timestamp
    from services.connectors.poweroffice.simulator import (
        Credentials,
        ManualClock,
        PowerOfficeSimulator,
        SimulatorLimits,
    )
    from services.connectors.poweroffice.stream import PowerOfficeStream
    from services.core.budget import ApiBudget
    from services.extractor.parents import ParentNotSettledError, parent_lookup

    clock = ManualClock()
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(read_lag_seconds=1.0), clock=clock)
    creds = Credentials()
    with sim.serve() as server:
        client = PowerOfficeClient(
            application_key=SecretStr(creds.application_key),
            client_key=SecretStr(creds.client_key),
            subscription_key=SecretStr(creds.subscription_key),
            budget=ApiBudget("poweroffice-test", 0),
            base_url=sim.base_url(server),
            token_url=sim.token_url(server),
        )
        with client:
            customer = sim.store.create("customers", {"Name": "Fresh AS"})
            person = sim.store.create(
                "contactpersons", {"FirstName": "Ida", "LastName": "Lie"}, contact_id=customer["Id"]
            )
            # an old supplier's contact person (any ContactId; long created)
            (supplier_person,) = sim.seed(
                "contactpersons",
                [
                    {
                        "FirstName": "Sven",
                        "LastName": "Lev",
                        "ContactId": 777,
                        "CreatedDateTimeOffset": "2024-01-01T00:00:00.0000000Z",
                    }
                ],
            )
            parents = ParentKinds(
                KnownSet("poweroffice", "customers"),
                parent_lookup(PowerOfficeStream(client, "customers"), "poweroffice"),
                role=CONTACT_PERSON_PARENT,
                now=clock,
                settle_seconds=30.0,
            )
            created = parse_timestamp(person["CreatedDateTimeOffset"])
            with pytest.raises(ParentNotSettledError) as info:
                parents.kind(str(customer["Id"]), created)
            assert info.value.retriable  # the page is read again next cycle
            clock.advance(1.0)  # the replica caught up
            assert parents.kind(str(customer["Id"]), created) == "customer"
            old = parse_timestamp(supplier_person["CreatedDateTimeOffset"])
            assert parents.kind("777", old) == "supplier"
            assert parents.lookups == 3
