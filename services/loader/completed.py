"""Which commands already have an outcome — the loader's de-duplication index, kept in Kafka.

The loader owns no database. The outcomes topic is its record of what it did: every command that
got an outcome is listed there by ``command_id``. ``OutcomeFollower`` reads that topic from the
beginning (all partitions, no consumer group) into ``CompletedCommands`` and keeps following it,
so it also learns the outcomes other loader replicas produce. The service waits until the
follower has caught up with the topic's end offsets as of start-up (``/readyz`` says so) before
it applies any command; the loader adds the ids of its own outcomes itself, the moment a command
finishes.

What it cannot see — a write whose outcome was never produced (a crash in between), or another
replica's outcome not yet read — is covered by the targets' natural idempotency (``targets``).

The index holds ids for the topic's retention (14 days by default): older re-sends are still
caught by natural idempotency.

Imports: kafka-python, the core codec/errors/settings modules and ``messages``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.errors import DecodeError, TransportError
from services.core.kafka import make_admin, make_consumer
from services.core.settings import TetherSettings
from services.loader.messages import outcome_command_id

log = logging.getLogger("tether.loader.completed")


def topic_partitions(settings: TetherSettings, topics: list[str]) -> dict[str, list[int]]:
    """Partition ids of each topic that exists (a metadata request for just these topics; a
    consumer's ``partitions_for_topic`` would fetch the metadata of every topic)."""
    admin = make_admin(settings)
    try:
        described = admin.describe_topics(topics)
    except KafkaError as exc:
        raise TransportError(f"cannot describe topics: {type(exc).__name__}") from exc
    finally:
        admin.close()
    return {
        str(d["name"]): sorted(int(p["partition_index"]) for p in d["partitions"])
        for d in described
        if d.get("error_code") == 0 and d.get("partitions")
    }


def make_metadata_consumer(settings: TetherSettings, name: str, **overrides: Any) -> KafkaConsumer:
    """A consumer outside any group (assigned partitions, no commits)."""
    return make_consumer(
        settings, None, client_id=f"{settings.kafka_client_id_prefix}-{name}", **overrides
    )


class CompletedCommands:
    """A thread-safe set of command ids that have an outcome."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, command_id: str) -> None:
        with self._lock:
            self._ids.add(command_id)

    def __contains__(self, command_id: object) -> bool:
        with self._lock:
            return command_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


class OutcomeFollower:
    """Reads the outcomes topic into ``CompletedCommands`` in a background thread."""

    def __init__(
        self,
        settings: TetherSettings,
        topic: str,
        codec: AvroCodec,
        completed: CompletedCommands,
        *,
        on_progress: Callable[[int], None] | None = None,
        poll_timeout_ms: int = 200,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._codec = codec
        self._completed = completed
        self._on_progress = on_progress
        self._poll_timeout_ms = poll_timeout_ms
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="outcome-follower", daemon=True)
        self.read = 0
        self.undecodable = 0

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    @property
    def failed(self) -> BaseException | None:
        """The error that stopped the follower (a bug: it retries Kafka errors itself)."""
        return self._failed

    def start(self) -> OutcomeFollower:
        self._thread.start()
        return self

    def wait_caught_up(self, timeout: float, stopping: threading.Event | None = None) -> bool:
        """Block until the start-up end offsets are read (or ``timeout`` / ``stopping``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._caught_up.wait(0.1):
                return True
            if self._failed is not None or not self._thread.is_alive():
                return False
            if stopping is not None and stopping.is_set():
                return False
        return self._caught_up.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _consumer(self) -> KafkaConsumer:
        return make_metadata_consumer(self._settings, "loader-outcomes", max_poll_records=2000)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except (KafkaError, TransportError) as exc:
                log.warning("outcome follower: %s; reconnecting", type(exc).__name__)
                self._stop.wait(1.0)
            except Exception as exc:
                self._failed = exc
                log.exception("outcome follower failed")
                return

    def _follow(self) -> None:
        partitions: list[int] = []
        while not partitions and not self._stop.is_set():
            partitions = topic_partitions(self._settings, [self._topic]).get(self._topic, [])
            if not partitions:
                self._stop.wait(0.5)
        if not partitions:
            return
        consumer = self._consumer()
        try:
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            targets = dict(consumer.end_offsets(tps))
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=self._poll_timeout_ms)
                for batch in batches.values():
                    for record in batch:
                        self._take(record.value)
                if not self._caught_up.is_set() and all(
                    consumer.position(tp) >= end for tp, end in targets.items()
                ):
                    log.info(
                        "completed-commands index loaded",
                        extra={"fields": {"outcomes": self.read, "ids": len(self._completed)}},
                    )
                    self._caught_up.set()
        finally:
            consumer.close()

    def _take(self, payload: bytes | None) -> None:
        self.read += 1
        if payload is None:
            return
        try:
            self._completed.add(outcome_command_id(self._codec, payload))
        except DecodeError:
            self.undecodable += 1  # the mapper dead-letters bad outcomes; nothing to index
        if self._on_progress is not None:
            self._on_progress(len(self._completed))
