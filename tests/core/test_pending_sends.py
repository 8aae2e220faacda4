"""``PendingSends``: what it does when Kafka is away, on a scripted producer (the real broker
outage is ``tests/loader/test_loader_outage.py``)."""

from __future__ import annotations

from typing import Any

from kafka.errors import KafkaTimeoutError

from services.core.errors import TransportError
from services.core.kafka import PendingSends


class Future:
    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None

    def failed(self) -> bool:
        return self.exception is not None


class Producer:
    """``flush`` raises while ``away``; the test decides how each future ends."""

    def __init__(self) -> None:
        self.away = False
        self.futures: list[Future] = []

    def send(self) -> Future:
        if self.away:
            raise TransportError("no metadata")
        future = Future()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        if self.away:
            raise KafkaTimeoutError("Timeout waiting for future")


def sends(producer: Producer) -> PendingSends:
    return PendingSends(producer)  # type: ignore[arg-type]


def test_a_flush_timeout_is_not_yet_never_an_error() -> None:
    producer = Producer()
    pending = sends(producer)
    pending.add(producer.send)
    producer.away = True
    assert pending.settle(0.01) is False
    assert pending.flush_timeouts == 1 and len(pending) == 1
    producer.away = False
    producer.futures[0].is_done = True
    assert pending.settle(0.01) is True
    assert len(pending) == 0


def test_a_send_the_producer_gave_up_on_is_sent_again() -> None:
    producer = Producer()
    pending = sends(producer)
    pending.add(producer.send)
    first = producer.futures[0]
    first.is_done, first.exception = True, KafkaTimeoutError("expired in accumulator")
    assert pending.settle(0.01) is False  # failed: to be sent again
    assert pending.resent == 1
    assert pending.settle(0.01) is False  # sent again, not acknowledged yet
    assert len(producer.futures) == 2
    producer.futures[1].is_done = True
    assert pending.settle(0.01) is True


def test_a_send_that_cannot_start_is_retried_at_the_next_settle() -> None:
    producer = Producer()
    pending = sends(producer)
    producer.away = True
    pending.add(producer.send)  # raises inside: kept, not lost, not raised
    assert len(pending) == 1 and producer.futures == []
    producer.away = False
    assert pending.settle(0.01) is False
    assert len(producer.futures) == 1
    producer.futures[0].is_done = True
    assert pending.settle(0.01) is True


def test_nothing_pending_settles_at_once() -> None:
    calls: list[Any] = []

    class Silent(Producer):
        def flush(self, timeout: float | None = None) -> None:
            calls.append(timeout)

    assert sends(Silent()).settle(5.0) is True
    assert calls == []
