"""Fixtures of the connector contract suite: every test runs once per connector resource."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.contract.harness import Calls, Harness, running_simulators

CASES = [
    "poweroffice/employees",
    "poweroffice/customers",
    "poweroffice/contact_persons",
    "wix/contacts",
]


@pytest.fixture(scope="session")
def harnesses() -> Iterator[dict[str, Harness]]:
    with running_simulators() as running:
        yield running


@pytest.fixture(params=CASES)
def harness(request: pytest.FixtureRequest, harnesses: dict[str, Harness]) -> Iterator[Harness]:
    chosen = harnesses[request.param]
    chosen.reset()
    yield chosen
    chosen.clamp(None)


@pytest.fixture
def calls() -> Calls:
    return Calls()
