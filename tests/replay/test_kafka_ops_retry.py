"""Admin calls retry Kafka's retriable errors, and only those.

On a fresh cluster the first group-offset request answers ``GroupCoordinatorNotAvailable`` while
the broker creates ``__consumer_offsets``; the console's dead-letter list (``plan_redrive`` ->
``KafkaOps.committed``) answered 503 ``TransportError`` to its first request on a new broker
(found by ``scripts/fresh-machine.sh --test``: ``tests/console/test_actions_kafka.py`` failed there
with ``KeyError: 'items'`` and passed on a broker that already had the topic).
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import CoordinatorNotAvailableError, InvalidTopicError

from services.core.errors import TransportError
from services.replay.kafka_ops import KafkaOps


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return ("answer", args)


def test_a_retriable_error_is_retried_until_the_call_succeeds() -> None:
    call = Flaky([CoordinatorNotAvailableError(), CoordinatorNotAvailableError()])
    assert KafkaOps._call(call, "g") == ("answer", ("g",))
    assert call.calls == 3


def test_a_non_retriable_error_fails_at_once() -> None:
    call = Flaky([InvalidTopicError()])
    with pytest.raises(TransportError, match="InvalidTopicError"):
        KafkaOps._call(call)
    assert call.calls == 1


def test_a_retriable_error_that_outlasts_the_budget_is_a_transport_error() -> None:
    call = Flaky([CoordinatorNotAvailableError() for _ in range(1000)])
    with pytest.raises(TransportError, match="CoordinatorNotAvailableError"):
        KafkaOps._call(call, retry_seconds=0.5)
    assert 1 < call.calls < 1000
