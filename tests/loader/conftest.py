"""Fixtures of the loader tests: both simulators for the session, a fresh loader per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.loader.support import LoaderHarness, Stack
from tests.support.own_infra import OwnInfra


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = Stack.start()
    yield running
    running.stop()


@pytest.fixture
def sims(stack: Stack) -> Stack:
    """The simulators, emptied (records, faults, counters) for this test."""
    stack.wix.reset()
    stack.po.reset()
    return stack


@pytest.fixture
def loader(sims: Stack, kafka_bootstrap: str, topic_prefix: str) -> Iterator[LoaderHarness]:
    harness = LoaderHarness(sims, kafka_bootstrap, topic_prefix).start()
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def own_infra() -> Iterator[OwnInfra]:
    """A Kafka and PostgreSQL of these tests' own, which they may stop and start."""
    infra = OwnInfra.up()
    yield infra
    infra.down()
