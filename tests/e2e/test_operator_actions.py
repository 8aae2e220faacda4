"""Every operator action through the real pipeline: Kafka, PostgreSQL, the three services as
processes and both simulators over HTTP.

One stack for the module (a small seed, deletes propagated but held by a mass-delete breaker
set to zero). Each test publishes actions as the console does (``new_action`` + ``action_key``
to ``<prefix>.operator-actions``), waits for the mapper's audit row, and checks the end state
in the simulators themselves; then publishes the same action again and checks there was one
effect. A *barrier* — another action with the same Kafka key, so on the same partition and
handled after it — tells when a duplicate has been consumed. The last test replays every topic
the mapper consumes from the earliest offset and checks that nothing changes anywhere.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.core.codec import AvroCodec
from services.core.operator_actions import ActionKind, action_key, new_action
from services.demo import mapperdb
from services.demo.main import PO_RESOURCE
from services.mapper.domain import read_hub, read_member
from services.replay.stages import stage_topics
from tests.e2e.test_pipeline import Running, start_stack, stop_stack
from tests.mapper.support import dump_state, reset_group_to_beginning

pytestmark = pytest.mark.integration

RECORDS = 40
TIMEOUT = 90.0
_keys = itertools.count(1)
_phones = itertools.count(1)


class World:
    def __init__(self, running: Running) -> None:
        self.running = running
        self.stack = running.stack
        self.po = running.po
        self.wix = running.wix
        self.layout = running.layout
        self.codec = AvroCodec()
        self.dsn = running.stack.database_dsn
        self.producer = KafkaProducer(bootstrap_servers=self.stack.kafka_bootstrap, acks="all")
        self.used_links: set[str] = set()

    def close(self) -> None:
        self.producer.close()

    # -- actions -----------------------------------------------------------------------------

    def publish(
        self, kind: ActionKind, idempotency_key: str, *, key: bytes | None = None, **targets: Any
    ) -> dict[str, Any]:
        datum = new_action(
            tenant="default",
            actor="operator@example.no",
            role="operator",
            kind=kind,
            reason="resolved in the operator test",
            idempotency_key=idempotency_key,
            **targets,
        )
        value = self.codec.encode("OperatorAction", datum)
        topic = self.layout.operator_actions
        self.producer.send(topic, key=key or action_key(datum), value=value).get(timeout=30)
        return datum

    def act(self, kind: ActionKind, **targets: Any) -> tuple[dict[str, Any], str]:
        """Publish a new action, wait until the mapper applied it; (datum, result)."""
        datum = self.publish(kind, f"req-{next(_keys)}", **targets)
        return datum, self.result(datum["action_id"])

    def result(self, action_id: str) -> str:
        def found() -> str | None:
            rows = self.query(
                "SELECT result FROM mapper_operator_actions WHERE action_id = %s", (action_id,)
            )
            return str(rows[0][0]) if rows else None

        assert eventually(lambda: found() is not None), f"action {action_id} never applied"
        result = found()
        assert result is not None
        return result

    def again(self, datum: dict[str, Any]) -> None:
        """Publish ``datum`` once more (a retried request), then a barrier behind it."""
        value = self.codec.encode("OperatorAction", datum)
        key = action_key(datum)
        self.producer.send(self.layout.operator_actions, key=key, value=value).get(timeout=30)
        barrier = self.publish(
            ActionKind.REDRIVE_DEAD_LETTERS,
            f"barrier-{next(_keys)}",
            key=key,
            deadletter_stage="mapper",
        )
        self.result(barrier["action_id"])
        self.settle()

    def audit_rows(self, action_id: str) -> int:
        rows = self.query(
            "SELECT count(*) FROM mapper_operator_actions WHERE action_id = %s", (action_id,)
        )
        return int(rows[0][0])

    # -- state -------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params).fetchall()

    def settle(self) -> None:
        """Nothing in flight: no pending write on any link, the outbox produced."""

        def quiet() -> bool:
            state = mapperdb.sync_state(self.dsn)
            return state.pending_commands == 0 and state.unproduced_outbox == 0

        assert eventually(quiet), "the pipeline did not settle"
        time.sleep(1.0)  # outcomes and echoes of the last writes
        assert eventually(quiet), "the pipeline did not settle"

    def link_state(self, link_id: str) -> dict[str, Any]:
        [(state,)] = self.query("SELECT state FROM mapper_links WHERE link_id = %s", (link_id,))
        assert isinstance(state, dict)
        return state

    def single_employee_link(self) -> tuple[str, str, str]:
        """An active link of one employee and a Wix contact no other test used: (link id,
        employee id, contact id)."""
        for link in mapperdb.links(self.dsn):
            if (
                link.status == "active"
                and link.contact_id
                and len(link.members) == 1
                and link.members[0][0] == "employees"
                and link.link_id not in self.used_links
            ):
                self.used_links.add(link.link_id)
                return link.link_id, link.members[0][1], str(link.contact_id)
        raise AssertionError("the seed has no more single-employee links")

    def employee(self, record_id: str) -> dict[str, Any]:
        record = self.po.record(PO_RESOURCE["employees"], int(record_id))["record"]
        assert isinstance(record, dict)
        return record

    def wix_first_name(self, contact_id: str) -> str | None:
        return read_hub(self.wix.contact(contact_id)).get("first_name")

    def ambiguous_employee(self, tag: str) -> tuple[str, str, tuple[str, ...]]:
        """Two new Wix contacts sharing a new employee's phone: the employee goes to review.
        Returns (employee id, review id, candidate contact ids)."""
        digits = f"4{next(_phones):07d}"
        phone = f"+47 {digits[:3]} {digits[3:5]} {digits[5:]}"
        contacts = self.wix.seed(
            [
                {
                    "info": {
                        "name": {"first": f"Cand{tag}{n}", "last": "Twin"},
                        "phones": {
                            "items": [
                                {
                                    "tag": "MOBILE",
                                    "countryCode": "NO",
                                    "phone": phone,
                                    "primary": True,
                                }
                            ]
                        },
                    }
                }
                for n in range(2)
            ],
            webhooks=True,
        )
        ids = tuple(sorted(str(c["id"]) for c in contacts))

        def indexed() -> bool:
            rows = self.query(
                "SELECT count(*) FROM mapper_contacts WHERE contact_id = ANY(%s)", (list(ids),)
            )
            return rows[0][0] == 2

        assert eventually(indexed), "the new contacts never reached the mapper's index"
        [employee] = self.po.seed(
            PO_RESOURCE["employees"],
            [
                {
                    "FirstName": f"Person{tag}",
                    "LastName": "Review",
                    "PhoneNumber": phone,
                    "EmailAddress": None,
                    "IsArchived": False,
                }
            ],
        )
        record_id = str(employee["Id"])

        def review() -> list[tuple[Any, ...]]:
            return self.query(
                "SELECT review_id, candidates FROM mapper_review_items WHERE system = "
                "'poweroffice' AND resource = 'employees' AND record_id = %s "
                "AND reason = 'ambiguous_match' AND resolved_at IS NULL",
                (record_id,),
            )

        assert eventually(lambda: bool(review())), "the employee never went to review"
        [(review_id, candidates)] = review()
        assert tuple(sorted(candidates)) == ids
        return record_id, str(review_id), ids

    def contacts_with_phone(self, phone_digits: str) -> list[dict[str, Any]]:
        return [
            c
            for c in self.wix.contacts()
            if any(
                phone_digits in "".join(ch for ch in str(p.get("phone")) if ch.isdigit())
                for p in c.get("info", {}).get("phones", {}).get("items", [])
            )
        ]


def eventually(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


@pytest.fixture(scope="module")
def world(infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    running = start_stack(
        infra_env,
        tmp_path_factory.mktemp("actions"),
        RECORDS,
        extra_env={
            "TETHER_MAPPER_POLICY": json.dumps({"propagate_deletes": True}),
            "TETHER_MAPPER_MAX_DELETES_PER_HOUR": "0",  # every delete is held for review
            "TETHER_RECONCILE_INTERVAL_SECONDS": "3",  # PowerOffice deletes found quickly
        },
    )
    running.stack.start_services()
    running.settle(timeout=240)
    the_world = World(running)
    yield the_world
    the_world.close()
    stop_stack(running)


# ------------------------------------------------------------------------------------------------


def test_link_to_candidate_links_the_record_and_updates_the_chosen_contact(world: World) -> None:
    record_id, review_id, (other, chosen) = world.ambiguous_employee("L")
    untouched = world.wix.contact(other)["revision"]
    datum, result = world.act(ActionKind.LINK_TO_CANDIDATE, review_id=review_id, contact_id=chosen)
    assert result == "applied"
    # the newer PowerOffice name won the first merge: the chosen contact carries it now
    assert eventually(lambda: world.wix_first_name(chosen) == "PersonL")
    world.settle()
    links = {link.contact_id: link for link in mapperdb.links(world.dsn)}
    assert links[chosen].members == (("employees", record_id),)
    assert world.wix.contact(other)["revision"] == untouched
    [(resolution,)] = world.query(
        "SELECT resolution FROM mapper_review_items WHERE review_id = %s", (review_id,)
    )
    assert resolution == "operator:link_to_candidate"
    [(actor, kind, decision)] = world.query(
        "SELECT actor, action_kind, decision FROM mapper_history WHERE event_id = %s",
        (datum["action_id"],),
    )
    assert (actor, kind) == ("operator@example.no", "LINK_TO_CANDIDATE")
    assert decision in ("linked", "conflict")

    revision = world.wix.contact(chosen)["revision"]
    world.again(datum)
    assert world.audit_rows(datum["action_id"]) == 1
    assert world.wix.contact(chosen)["revision"] == revision


def test_an_invalid_action_is_rejected_and_the_partition_goes_on(world: World) -> None:
    _, review_id, _ = world.ambiguous_employee("X")
    _, result = world.act(
        ActionKind.LINK_TO_CANDIDATE, review_id=review_id, contact_id="not-a-candidate"
    )
    assert result == f"rejected: not-a-candidate is not a candidate of review item {review_id}"
    _, result = world.act(ActionKind.UNLINK, link_id="no-such-link")
    assert result == "rejected: unknown link no-such-link"


def test_create_new_contact_creates_one_anyway(world: World) -> None:
    record_id, review_id, candidates = world.ambiguous_employee("C")
    phone = read_member("employees", world.employee(record_id))["phone"]
    assert phone is not None
    digits = "".join(ch for ch in phone if ch.isdigit())[-8:]
    datum, result = world.act(ActionKind.CREATE_NEW_CONTACT, review_id=review_id)
    assert result == "applied"
    # a NEW contact, although two carry the phone (Wix must not refuse it as a duplicate)
    assert eventually(lambda: len(world.contacts_with_phone(digits)) == 3)
    world.settle()
    [created] = [c for c in world.contacts_with_phone(digits) if c["id"] not in candidates]
    assert read_hub(created)["first_name"] == "PersonC"
    links = {link.contact_id: link for link in mapperdb.links(world.dsn)}
    assert links[created["id"]].members == (("employees", record_id),)

    world.again(datum)
    assert len(world.contacts_with_phone(digits)) == 3


def test_ignore_skips_a_record_until_unignored(world: World) -> None:
    link_id, record_id, contact_id = world.single_employee_link()
    before = world.wix_first_name(contact_id)
    ignore, result = world.act(
        ActionKind.IGNORE_RECORD, record=("poweroffice", "employees", record_id)
    )
    assert result == "applied"
    world.po.edit(PO_RESOURCE["employees"], int(record_id), {"FirstName": "WhileIgnored"})

    def skipped() -> bool:
        rows = world.query(
            "SELECT 1 FROM mapper_history WHERE record_id = %s AND resource = 'employees' "
            "AND decision = 'ignored'",
            (record_id,),
        )
        return bool(rows)

    assert eventually(skipped), "the edit of the ignored record was never seen"
    world.settle()
    assert world.wix_first_name(contact_id) == before
    world.again(ignore)
    assert world.audit_rows(ignore["action_id"]) == 1

    unignore, result = world.act(
        ActionKind.UNIGNORE_RECORD, record=("poweroffice", "employees", record_id)
    )
    assert result == "applied"
    assert eventually(lambda: world.wix_first_name(contact_id) == "WhileIgnored")
    world.settle()
    assert world.link_state(link_id)["status"] == "active"
    assert world.query("SELECT count(*) FROM mapper_ignored_records") == [(0,)]
    # a late duplicate of the IGNORE does not ignore the record again
    world.again(ignore)
    world.again(unignore)
    assert world.query("SELECT count(*) FROM mapper_ignored_records") == [(0,)]


def test_unlink_dissolves_a_link_and_keeps_both_records(world: World) -> None:
    link_id, record_id, contact_id = world.single_employee_link()
    datum, result = world.act(ActionKind.UNLINK, link_id=link_id)
    assert result == "applied"
    assert world.link_state(link_id)["status"] == "unlinked"
    before = read_member("employees", world.employee(record_id))["first_name"]
    world.wix.edit(contact_id, {"name": {"first": "AfterUnlink", "last": "Contact"}})

    def recorded() -> bool:
        rows = world.query(
            "SELECT 1 FROM mapper_history WHERE link_id = %s AND system = 'wix' "
            "AND decision = 'unlinked'",
            (link_id,),
        )
        return bool(rows)

    assert eventually(recorded), "the Wix edit after the unlink was never seen"
    world.settle()
    assert read_member("employees", world.employee(record_id))["first_name"] == before
    assert world.wix.contact(contact_id)["id"] == contact_id  # nothing deleted
    version = world.link_state(link_id)["version"]
    world.again(datum)
    assert world.link_state(link_id)["version"] == version


def test_resync_pushes_the_chosen_side_over_a_silent_change(world: World) -> None:
    link_id, record_id, contact_id = world.single_employee_link()
    po_first = read_member("employees", world.employee(record_id))["first_name"]
    last = read_hub(world.wix.contact(contact_id)).get("last_name")
    # changed behind the API's back: no revision bump, no webhook — the engine cannot know
    world.wix.edit(contact_id, {"name": {"first": "Drifted", "last": last}}, silent=True)
    assert world.wix_first_name(contact_id) == "Drifted"
    datum, result = world.act(ActionKind.RESYNC, link_id=link_id, side="poweroffice")
    assert result == "applied"
    assert eventually(lambda: world.wix_first_name(contact_id) == po_first)
    world.settle()
    revision = world.wix.contact(contact_id)["revision"]
    world.again(datum)
    assert world.wix.contact(contact_id)["revision"] == revision


def test_retry_command_resends_a_rejected_write(world: World) -> None:
    link_id, record_id, contact_id = world.single_employee_link()
    world.wix.add_fault(kind="status", status=400, method="PATCH", path=contact_id, times=20)
    try:
        world.po.edit(PO_RESOURCE["employees"], int(record_id), {"LastName": "Retried"})

        def rejected() -> str | None:
            for member in world.link_state(link_id)["members"]:
                error = member.get("last_error")
                if member["ref"]["system"] == "wix" and error and error["outcome"] == "rejected":
                    return str(error["command_id"])
            return None

        assert eventually(lambda: rejected() is not None), "the write was never rejected"
    finally:
        world.wix.clear_faults()
    command_id = rejected()
    assert read_hub(world.wix.contact(contact_id)).get("last_name") != "Retried"
    datum, result = world.act(ActionKind.RETRY_COMMAND, link_id=link_id, command_id=command_id)
    assert result == "applied"
    assert eventually(lambda: read_hub(world.wix.contact(contact_id)).get("last_name") == "Retried")
    world.settle()
    assert rejected() is None
    revision = world.wix.contact(contact_id)["revision"]
    world.again(datum)
    assert world.wix.contact(contact_id)["revision"] == revision


def test_reset_delete_breaker_releases_the_held_delete(world: World) -> None:
    created = [
        link
        for link in mapperdb.links(world.dsn)
        if link.status == "active"
        and link.contact_id
        and len(link.members) == 1
        and link.members[0][0] == "employees"
        and link.link_id not in world.used_links
        and any(
            m["ref"]["system"] == "wix" and m.get("created_by_engine")
            for m in world.link_state(link.link_id)["members"]
        )
    ]
    assert created, "the seed must contain contacts the engine created"
    link = created[0]
    world.used_links.add(link.link_id)
    contact_id = str(link.contact_id)
    world.po.delete(PO_RESOURCE["employees"], int(link.members[0][1]))

    def held() -> list[tuple[Any, ...]]:
        return world.query(
            "SELECT review_id FROM mapper_review_items WHERE reason = 'mass_delete_breaker' "
            "AND link_id = %s AND resolved_at IS NULL",
            (link.link_id,),
        )

    assert eventually(held, timeout=120), "the delete was never held by the breaker"
    assert world.wix.contact(contact_id)["id"] == contact_id  # still there
    [(review_id,)] = held()
    datum, result = world.act(ActionKind.RESET_DELETE_BREAKER, review_id=str(review_id))
    assert result == "applied"

    def gone() -> bool:
        return all(c["id"] != contact_id for c in world.wix.contacts())

    assert eventually(gone)
    world.settle()
    deletes = world.query("SELECT count(*) FROM mapper_outbox WHERE action = 'delete'")
    world.again(datum)
    assert world.query("SELECT count(*) FROM mapper_outbox WHERE action = 'delete'") == deletes


def test_redrive_dead_letters_is_recorded(world: World) -> None:
    datum, result = world.act(
        ActionKind.REDRIVE_DEAD_LETTERS, deadletter_stage="mapper", deadletter_ids=["d-1"]
    )
    assert result == "applied"
    [(detail,)] = world.query(
        "SELECT detail FROM mapper_operator_actions WHERE action_id = %s", (datum["action_id"],)
    )
    assert detail.startswith("recorded: re-drive of mapper dead letters")


def test_replaying_the_mapper_from_the_earliest_offset_changes_nothing(world: World) -> None:
    """Last in the module: every action above is on the topic; replaying them (and every change
    and outcome) leaves the simulators and the mapper's state exactly as they are."""
    world.settle()
    stack = world.stack
    group = f"{stack.topic_prefix}-mapper"
    topics = list(stage_topics("mapper", world.layout))
    counters = _writes(world)
    stack.processes["mapper"].stop()
    before = dump_state(world.dsn)
    reset_group_to_beginning(stack.kafka_bootstrap, group, topics)
    stack.start_service("mapper").wait_http("/readyz", timeout=90)
    assert eventually(lambda: _caught_up(stack.kafka_bootstrap, group, topics), timeout=180)
    time.sleep(2.0)
    assert dump_state(world.dsn) == before
    assert _writes(world) == counters, "a replay writes nothing to either system"


def _writes(world: World) -> tuple[int, int]:
    from services.demo.apicounts import poweroffice_counts, wix_counts

    return (
        poweroffice_counts(world.po.counters())["writes"],
        wix_counts(world.wix.counters())["writes"],
    )


def _caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))
        ]
        end = consumer.end_offsets(partitions)
        return all((consumer.committed(tp) or 0) >= end[tp] for tp in partitions)
    finally:
        consumer.close(autocommit=False)
