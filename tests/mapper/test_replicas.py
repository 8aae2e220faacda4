"""Several replicas: consumer-group partitioning plus PostgreSQL locks keep the effect exact.

An employee and a private customer of the same person share an e-mail but arrive on different
topics, so two replicas may handle them at the same moment. Whatever the interleaving, each
person gets exactly one Wix create, and both records end in the same link.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from .support import (
    DEADLINE_SECONDS,
    customer,
    employee,
    harness,
    make_context,
    po_event,
    ts,
)

pytestmark = pytest.mark.integration

PEOPLE = 20


def test_two_replicas_create_each_contact_once(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    from services.mapper.loop import Mapper

    with harness(kafka_bootstrap, topic_prefix, pg_dsn, max_poll_records=5) as h:
        replicas = [Mapper(make_context(h.settings), h.settings) for _ in range(2)]
        errors: list[BaseException] = []
        done = threading.Event()

        def consumed_everything() -> bool:
            [(consumed,)] = h.query("SELECT coalesce(sum(next_offset), 0) FROM mapper_positions")
            return bool(consumed == h.sent)

        def run(mapper: Any) -> None:
            try:
                mapper.run(done.is_set)
            except BaseException as exc:  # surfaced by the test below
                errors.append(exc)
                done.set()

        threads = [threading.Thread(target=run, args=(m,)) for m in replicas]
        for thread in threads:
            thread.start()
        partitions = 2 * (len(h.layout.all_changes()) + 2)  # + outcomes, operator actions
        try:
            # Both replicas joined and split the partitions, then the input arrives.
            wait(lambda: assigned(replicas) == partitions and not errors)
            for i in range(PEOPLE):
                email = f"person{i}@example.no"
                h.send_change(
                    po_event("employees", employee(100 + i, first=f"P{i}", email=email), ts(1))
                )
                h.send_change(
                    po_event(
                        "customers",
                        customer(500 + i, first=f"P{i}", last="Nordmann", email=email),
                        ts(1),
                    )
                )
            wait(consumed_everything)
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=30)
        assert errors == []
        assert sum(m.consumed for m in replicas) >= h.sent
        assert all(m.consumed > 0 for m in replicas), "both replicas took partitions"

        creates = [c for c in h.commands() if c["action"] == "CREATE"]
        assert len(creates) == PEOPLE, "one Wix contact per person, never two"
        assert len({c["link_id"] for c in creates}) == PEOPLE
        [(links, members)] = h.query(
            "SELECT count(DISTINCT link_id), count(*) FROM mapper_link_members"
        )
        assert (links, members) == (PEOPLE, 2 * PEOPLE)


def assigned(replicas: list[Any]) -> int:
    counts = [len(m.consumer.assignment()) if m.consumer is not None else 0 for m in replicas]
    return sum(counts) if all(counts) else 0


def wait(condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the replicas did not get there"
        time.sleep(0.1)
