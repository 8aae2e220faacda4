"""The PowerOffice simulator's bulk seed checks unique values against one index per batch
(``PowerOfficeStore.seed``; scanning every stored record per seeded record made seeding 100k
records quadratic) — with the same answers as the per-record scan the API paths use."""

from __future__ import annotations

import pytest

from services.connectors.poweroffice.simstore import PowerOfficeStore, ProblemDetailsError


def employee(number: int | None, reference: str | None = None) -> dict[str, object]:
    return {
        "FirstName": "Ola",
        "LastName": "Nordmann",
        "Number": number,
        "ExternalImportReference": reference,
    }


def test_a_seed_rejects_a_number_already_stored() -> None:
    store = PowerOfficeStore()
    store.seed("employees", [employee(1), employee(2)])
    with pytest.raises(ProblemDetailsError, match="Number is already in use"):
        store.seed("employees", [employee(3), employee(2)])


def test_a_seed_rejects_a_duplicate_within_its_own_batch() -> None:
    store = PowerOfficeStore()
    with pytest.raises(ProblemDetailsError, match="ExternalImportReference is already in use"):
        store.seed("employees", [employee(1, "ref-a"), employee(2, " REF-A ")])


def test_seeded_values_are_checked_by_the_api_paths_afterwards() -> None:
    store = PowerOfficeStore()
    [first] = store.seed("employees", [employee(1, "ref-a")])
    with pytest.raises(ProblemDetailsError, match="ExternalImportReference is already in use"):
        store.create("employees", employee(None, "Ref-A"))
    # The record keeps its own values on a seed of another (no clash with itself).
    store.seed("employees", [employee(5, "ref-b")])
    assert first["Number"] == 1


def test_a_deleted_records_values_may_be_seeded_again() -> None:
    store = PowerOfficeStore()
    [first] = store.seed("employees", [employee(7, "ref-x")])
    store.delete("employees", int(first["Id"]))
    [again] = store.seed("employees", [employee(7, "ref-x")])
    assert again["Number"] == 7 and again["Id"] != first["Id"]
