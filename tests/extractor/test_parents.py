"""Whose contact person (``services.extractor.parents``): known customers, lookups, the cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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

    def __call__(self, customer_id: int) -> object:
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
    parents = ParentKinds(known, lookup)
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
    parents = ParentKinds(known, lookup, ttl=60, clock=lambda: now[0])
    assert parents.kind("10") == "supplier"
    now[0] = 59.0
    assert parents.kind("10") == "supplier" and lookup.asked == [10]
    lookup.customers.add(10)  # the contact got the customer role meanwhile
    now[0] = 61.0
    assert parents.kind("10") == "customer" and lookup.asked == [10, 10]


def test_a_failing_lookup_propagates_and_caches_nothing() -> None:
    lookup = Lookup(set(), ServerError("down", system="poweroffice", status=503))
    parents = ParentKinds(KnownSet("poweroffice", "customers"), lookup)
    with pytest.raises(ServerError):
        parents.kind("30")
    lookup.error = None
    assert parents.kind("30") == "supplier" and lookup.asked == [30, 30]
