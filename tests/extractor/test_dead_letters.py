"""The extractor's dead letters: the same invalid record seen again is recognised as a repeat.

A malformed PowerOffice record never enters the known set, so every reconciliation pass (and
every poll whose overlap window still holds it) reads it again. Its dead letter has one
deterministic identity per (source, record content — which includes its id and version): a
repeat in the same process is counted, not parked again; another process (a restart) parks it
with the same ``dead_letter_id``, so consumers of the dead-letter topic can recognise it.
"""

from __future__ import annotations

from services.core.kafka import make_producer
from services.extractor.emitter import dead_letter_identity
from tests.extractor.support import Harness

REPEATS = "tether_extractor_dead_letter_repeats_total"


def _seed_malformed(harness: Harness) -> None:
    (good,) = harness.po.seed("employees", [{"FirstName": "Ok", "LastName": "X"}])
    harness.po_admin.seed(
        "employees",
        [
            {
                "Id": 990001,
                "FirstName": 123,  # wrong type: a ContractError
                "LastName": "Typo",
                # recent (within the topics' retention): every reconciliation reads it again
                "LastChangedDateTimeOffset": good["LastChangedDateTimeOffset"],
            }
        ],
        validate=False,
    )


def test_the_same_invalid_record_is_parked_once_per_process_and_with_one_identity(
    harness: Harness,
) -> None:
    _seed_malformed(harness)
    extractor = harness.extractor()
    extractor.poll_all()
    extractor.reconcile_all()
    extractor.reconcile_all()
    dead = harness.dead_letters()
    employees = [d for d in dead if b'"Id":990001' in d["payload"]]
    assert len(employees) == 1, [d["dead_letter_id"] for d in employees]
    labels = {"system": "poweroffice", "resource": "employees"}
    assert harness.metric(extractor, REPEATS, labels) == 2  # counted, not re-parked

    # A second process (a restart) does not remember: it parks again, with the same identity.
    harness.stop(extractor)
    again = harness.extractor()
    again.reconcile_all()
    employees = [d for d in harness.dead_letters() if b'"Id":990001' in d["payload"]]
    assert len(employees) == 2
    assert len({d["dead_letter_id"] for d in employees}) == 1


def test_dead_letter_identity_is_per_source_and_content() -> None:
    one = dead_letter_identity("poweroffice/employees", b'{"Id":1,"FirstName":123}')
    assert one == dead_letter_identity("poweroffice/employees", b'{"Id":1,"FirstName":123}')
    assert one != dead_letter_identity("poweroffice/employees", b'{"Id":1,"FirstName":124}')
    assert one != dead_letter_identity("poweroffice/customers", b'{"Id":1,"FirstName":123}')


def test_poison_on_the_cursors_topic_becomes_a_dead_letter_not_a_silent_skip(
    harness: Harness,
) -> None:
    # Before, the extractor logged "ignoring an undecodable cursor": the bytes were dropped
    # silently. (A key-less message cannot land here: the broker refuses it on a compacted topic.)
    harness.po.seed("employees", [{"FirstName": "Ok", "LastName": "X"}])
    first = harness.extractor()
    first.poll_all()  # writes real cursors
    harness.stop(first)
    producer = make_producer(harness.settings(), "poison")
    for value in (b"\x00garbage", b"\xc3\x01 not a cursor"):
        producer.send(harness.layout.cursors, key=b"default/wix/contacts/poll", value=value).get(
            timeout=30
        )
    producer.close()

    for _ in range(2):  # a restart parks it again, with the same id
        extractor = harness.extractor()  # start() loads the cursors
        harness.stop(extractor)
    letters = [d for d in harness.dead_letters() if d["source_topic"] == harness.layout.cursors]
    assert len(letters) == 4
    assert len({d["dead_letter_id"] for d in letters}) == 2
    assert {d["error_class"] for d in letters} == {"DecodeError"}
