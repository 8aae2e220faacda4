"""Exactly-once effect: kill -9 at each point of the loop, restart, and replay from offset 0.

The crash tests run ``tether mapper`` as a real process with ``TETHER_MAPPER_CRASH_POINT`` (it
ends with ``os._exit(137)`` at that point, like ``kill -9``): between the PostgreSQL commit and
the produce, and between the produce and the offset commit (before the rows are marked
produced). They restart it without, stop it with SIGTERM, and compare what reached the command
topics with the outbox: the set of command ids is exactly the outbox's, none lost, none
invented; after the second crash the rows produced before it are produced again (same
``command_id``: the loader de-duplicates, see ``docs/mapper.md``), after the first none twice.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from kafka import KafkaAdminClient

from .support import (
    DEADLINE_SECONDS,
    Harness,
    customer,
    dump_state,
    employee,
    harness,
    mapper_process,
    outcome_event,
    po_event,
    reset_group_to_beginning,
    ts,
    wix_contact,
    wix_event,
)

pytestmark = pytest.mark.integration

RECORDS = 12


@contextmanager
def processes() -> Iterator[Callable[[subprocess.Popen[bytes]], subprocess.Popen[bytes]]]:
    """Processes started in the block are killed if a test fails before stopping them."""
    started: list[subprocess.Popen[bytes]] = []

    def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        started.append(proc)
        return proc

    try:
        yield track
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def send_new_employees(h: Harness) -> None:
    for i in range(1, RECORDS + 1):
        h.send_change(po_event("employees", employee(i, phone=f"9{i:07d}"), ts(i)))


def wait_until_done(h: Harness, proc: subprocess.Popen[bytes], port: int) -> None:
    """Until the process is ready, every input is behind its tracking rows, the outbox is
    empty and the group's Kafka offsets are committed to the end (step 4 ran)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        assert proc.poll() is None, "the restarted mapper died"
        assert time.monotonic() < deadline, "the restarted mapper did not finish"
        if ready(port) and db_done(h) and committed_offsets(h) == h.sent:
            return
        time.sleep(0.2)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def db_done(h: Harness) -> bool:
    [(consumed, unproduced)] = h.query(
        "SELECT (SELECT coalesce(sum(next_offset), 0) FROM mapper_positions), "
        "(SELECT count(*) FROM mapper_outbox WHERE produced_at IS NULL)"
    )
    return bool(consumed == h.sent and unproduced == 0)


def committed_offsets(h: Harness) -> int:
    admin = KafkaAdminClient(bootstrap_servers=h.settings.kafka_bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({h.settings.group_id: None})[h.settings.group_id]
    finally:
        admin.close()
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ``after_mark`` (produced and marked, offsets not committed) is the replay case below.
@pytest.mark.parametrize("point", ["after_db_commit", "after_produce"])
def test_kill_9_loses_no_command_and_duplicates_no_command_id(
    point: str, kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, tmp_path: Path
) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h, processes() as started:
        send_new_employees(h)
        log = tmp_path / "mapper.log"
        # Static membership: the restarted process takes the dead one's partitions at once.
        member = {"TETHER_MAPPER_GROUP_INSTANCE_ID": "mapper-0"}
        crashing = started(
            mapper_process(h.settings, log, TETHER_MAPPER_CRASH_POINT=point, **member)
        )
        assert crashing.wait(timeout=DEADLINE_SECONDS) == 137, log.read_text()[-3000:]
        [(in_outbox, unproduced)] = h.query(
            "SELECT count(*), count(*) FILTER (WHERE produced_at IS NULL) FROM mapper_outbox"
        )
        assert in_outbox >= 1
        on_topic = h.commands()
        assert unproduced == in_outbox, "the crash came before the rows were marked"
        assert len(on_topic) == (in_outbox if point == "after_produce" else 0)

        port = free_port()
        restarted = started(mapper_process(h.settings, log, TETHER_HTTP_PORT=str(port), **member))
        wait_until_done(h, restarted, port)
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0, "SIGTERM must drain and exit cleanly"

        expected = {row[0] for row in h.query("SELECT command_id FROM mapper_outbox")}
        commands = h.commands()
        ids = Counter(c["command_id"] for c in commands)
        assert len(expected) == RECORDS, "one create per new record"
        assert set(ids) == expected, "no command lost, none invented"
        assert all(c["action"] == "CREATE" for c in commands)
        if point == "after_produce":
            # The rows produced before the crash are produced again: same ids, same payloads.
            assert set(ids.values()) <= {1, 2} and 2 in ids.values()
        else:
            assert set(ids.values()) == {1}, "no command id twice"


def test_replaying_every_topic_from_offset_zero_changes_nothing(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h:
        h.start()
        h.send_change(wix_event(wix_contact("c-1", email="kari@example.no"), ts(1)))
        h.drain()
        h.send_change(po_event("customers", customer(7), ts(2)))
        h.send_change(po_event("employees", employee(1), ts(2)))
        h.drain()
        [create] = [c for c in h.commands() if c["action"] == "CREATE"]
        created = wix_contact("c-new", phone="+4791234567", revision=1, at=ts(3))
        h.send_outcome(outcome_event(create, "CREATED", target_record=created, target_id="c-new"))
        h.drain()
        h.send_change(
            wix_event(
                wix_contact("c-new", first="Ole", phone="+4791234567", revision=2, at=ts(4)), ts(4)
            )
        )
        h.drain()
        commands = h.commands()
        assert len(commands) >= 3  # update of c-1 (phone), the create, the update of employee 1
        before = dump_state(h.dsn)
        h.stop()

        reset_group_to_beginning(
            kafka_bootstrap, h.settings.group_id, [*h.layout.all_changes(), h.layout.outcomes]
        )
        mapper = h.start(replay=True)
        h.drain()
        assert mapper.replayed == h.sent, "every message was read again and skipped"
        assert h.commands() == commands, "a replay emits no command"
        assert dump_state(h.dsn) == before, "a replay leaves the state as it was"
