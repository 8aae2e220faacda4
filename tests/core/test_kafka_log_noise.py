"""kafka-python's harmless start-up lines are quieted; its real errors never are.

Before: every service start printed kafka-python WARNING/ERROR lines an operator reads as trouble
(seen in the services' logs, kafka-python 3.0.12): the client's own event-loop timing diagnostic
("Task ... ran for 0.543s (>0.100s threshold). It is blocking the event loop ..."), "group_id is
None: disabling auto-commit." for the group-less reads, and — while topics are being created —
"No partition metadata for topic X" / "Topic X not found in cluster metadata" several times a
second. The filter demotes exactly those (the topic ones only in the start-up window); a broker
that refuses connections, a topic still missing after start-up, and anything unlisted pass.
"""

from __future__ import annotations

import io
import json
import logging

from services.core.runtime import KafkaNoiseFilter, configure_logging


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(logger: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, msg, args, None)


SELECTOR = (
    "Task %r ran for %.3fs (>%.3fs threshold). It is blocking the event loop -- likely a tight "
    "sync loop inside a coroutine. Other pollers will time out."
)


def test_harmless_lines_are_dropped_and_real_errors_pass() -> None:
    clock = Clock()
    noise = KafkaNoiseFilter(startup_seconds=60.0, clock=clock)
    dropped = [
        record("kafka.net.selector", logging.WARNING, SELECTOR, "<Task>", 0.543, 0.1),
        record(
            "kafka.coordinator.consumer",
            logging.WARNING,
            "group_id is None: disabling auto-commit.",
        ),
        record(
            "kafka.coordinator.assignors.range",
            logging.WARNING,
            "No partition metadata for topic %s",
            "t.changes",
        ),
        record(
            "kafka.cluster", logging.ERROR, "Topic %s not found in cluster metadata", "t.changes"
        ),
    ]
    assert [noise.filter(r) for r in dropped] == [False] * 4
    real = [
        record(
            "kafka.net.manager",
            logging.ERROR,
            "Connection failed: %s",
            "KafkaConnectionError: 111 ECONNREFUSED",
        ),
        record(
            "kafka.net.manager",
            logging.WARNING,
            "Bootstrap connection to %s failed: %s (backoff %.2f secs)",
            "b-0",
            "x",
            0.1,
        ),
        record(
            "kafka.coordinator",
            logging.ERROR,
            "Group Coordinator lookup for group %s failed: %s",
            "g",
            "e",
        ),
        # Same words, other logger: not the diagnostic.
        record(
            "kafka.consumer.fetcher",
            logging.WARNING,
            "Task ran for 9s (>0.1s threshold). It is blocking the event loop",
        ),
        record("tether.mapper", logging.ERROR, "Topic x not found in cluster metadata"),
    ]
    assert [noise.filter(r) for r in real] == [True] * 5
    clock.now += 61  # after start-up, a topic that is still missing is a real problem
    late = record(
        "kafka.cluster", logging.ERROR, "Topic %s not found in cluster metadata", "t.changes"
    )
    assert noise.filter(late) is True
    assert noise.filter(dropped[0]) is False  # the timing diagnostic stays quiet


def test_configured_logging_applies_the_filter(monkeypatch: object) -> None:
    stream = io.StringIO()
    import sys

    old = sys.stderr
    sys.stderr = stream
    try:
        configure_logging("svc", "INFO")
    finally:
        sys.stderr = old
    logging.getLogger("kafka.net.selector").warning(SELECTOR, "<Task>", 0.5, 0.1)
    logging.getLogger("kafka.net.manager").error("Connection failed: %s", "ECONNREFUSED")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["level"]) for e in lines] == [("kafka.net.manager", "error")]
    logging.getLogger().handlers.clear()
