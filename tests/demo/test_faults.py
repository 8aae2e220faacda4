"""The chaos suite's pure parts: profiles, the seeded schedule, realism options and the verdict."""

from __future__ import annotations

import random
from typing import Any

import pytest

from services.core.codec import AvroCodec
from services.core.errors import DecodeError
from services.demo import faults
from services.demo.faults import PROFILES, Expectation, verdict

EXPECTED = Expectation(
    linked_records=298, created_contacts=260, matched_existing_contacts=30, review_items=2
)


def passing_report() -> dict[str, Any]:
    return {
        "counts": {
            "linked_records": 298,
            "contacts_created": 260,
            "contacts_matched": 30,
            "in_review": 2,
            "duplicate_contacts": 0,
            "linked_more_than_once": 0,
            "unlinked_records": [],
        },
        "edits": {"made": 8, "lost": []},
        "stranded_partitions": [],
        "verification": {"divergent_links": 0},
        "unexpected_exits": [],
        "poison": {"produced": 9, "not_dead_lettered": []},
        "webhooks": {
            "forged": {"sent": 1, "accepted": 0},
            "oversize": {"sent": 1, "accepted": 0},
            "forged_value_arrived": False,
        },
    }


def test_the_chaos_profile_has_at_least_the_faults_the_issue_asks_for() -> None:
    chaos = PROFILES["chaos"]
    assert chaos.records >= 2000
    assert chaos.service_kills >= 20
    assert chaos.kafka_outages == 2 and chaos.kafka_outage_seconds >= 30
    assert chaos.postgres_kills >= 1
    kinds = {fault.kind for fault in chaos.api_faults}
    assert {"status", "timeout", "lose_response", "drop"} <= kinds
    assert chaos.storms >= 1 and chaos.poison_per_topic >= 1
    assert chaos.forged_webhooks >= 1 and chaos.oversize_webhooks >= 1
    assert chaos.odd_name_edits >= 1


def test_the_demo_and_ci_profiles_never_kill_shared_infrastructure() -> None:
    for name in ("mild", "small"):
        assert PROFILES[name].kafka_outages == 0
        assert PROFILES[name].postgres_kills == 0


def test_the_kill_plan_is_repeatable_from_its_seed_and_hits_every_service() -> None:
    chaos = PROFILES["chaos"]
    plan = faults.kill_plan(chaos, random.Random(3))
    assert plan == faults.kill_plan(chaos, random.Random(3))
    assert plan != faults.kill_plan(chaos, random.Random(4))
    assert len(plan) == chaos.service_kills
    assert {kill.service for kill in plan} == set(faults.SERVICES)
    low, high = chaos.kill_interval
    assert all(low <= kill.after_seconds <= high for kill in plan)
    phases = [kill.phase for kill in plan]
    assert phases == sorted(phases, key=["sync", "edits"].index)  # the sync's kills come first
    assert phases.count("edits") == chaos.service_kills // 3


def test_each_kafka_outage_restarts_another_service_without_a_broker() -> None:
    assert [faults.outage_victim(i) for i in range(3)] == ["extractor", "loader", "mapper"]


def test_a_realism_option_is_passed_only_when_the_simulator_has_its_flag() -> None:
    help_text = {
        "poweroffice": "  --read-lag READ_LAG  seconds reads lag\n",
        "wix": "  --rate-limit RATE_LIMIT\n  --rate-window RATE_WINDOW\n",
    }
    args, status = faults.realism_args(faults.REALISM, help_text)
    assert args == {
        "poweroffice": ["--read-lag", "2"],
        "wix": ["--rate-limit", "240", "--rate-window", "6"],
    }
    assert status["poweroffice_read_lag"] == "on"
    assert status["wix_extended_fields_forbidden"] == "unavailable"


def test_profiles_choose_realism_groups() -> None:
    assert {o.group for o in PROFILES["chaos"].realism_options()} == {"realism", "limits"}
    assert {o.group for o in PROFILES["mild"].realism_options()} == {"realism"}
    assert PROFILES["small"].realism_options() == []


def test_odd_names_start_with_nul_and_are_repeatable() -> None:
    names = faults.odd_names(4, random.Random(1))
    assert names[0] == "Kari\x00Nordmann"
    assert names == faults.odd_names(4, random.Random(1))
    assert len(set(names)) == 4


@pytest.mark.parametrize("message_type", ["ChangeEvent", "Command", "Outcome", "Cursor"])
def test_no_poison_payload_decodes(message_type: str) -> None:
    codec = AvroCodec()
    payloads = faults.poison_payloads(10, random.Random(7))
    assert len(payloads) == 10
    for payload in payloads:
        with pytest.raises(DecodeError):
            codec.decode(payload, message_type)


def test_a_run_with_the_seeds_answer_passes() -> None:
    assert verdict(passing_report(), EXPECTED) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("counts", "contacts_created"), 261, "contacts_created: 261, the seed expects 260"),
        (("counts", "duplicate_contacts"), 1, "duplicate contacts: 1"),
        (("counts", "in_review"), 1, "in_review: 1, the seed expects 2"),
        (("edits", "lost"), [{"edit": 3}], "1 edit(s) did not arrive"),
        (("edits", "made"), 0, "no edits were made"),
        (("stranded_partitions",), [{"topic": "t", "partition": 0}], "stranded partitions"),
        (("stranded_partitions",), None, "stranded partitions"),
        (("verification", "divergent_links"), 2, "divergent links"),
        (("unexpected_exits",), [{"service": "loader"}], "exited without being killed"),
        (("poison", "not_dead_lettered"), [{"offset": 4}], "poison messages not dead-lettered"),
        (("webhooks", "forged"), {"accepted": 1}, "forged webhooks accepted: 1"),
        (("webhooks", "forged_value_arrived"), True, "forged webhook's value reached"),
    ],
)
def test_every_assertion_can_fail(path: tuple[str, ...], value: Any, message: str) -> None:
    report = passing_report()
    target = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    failures = verdict(report, EXPECTED)
    assert len(failures) == 1 and message in failures[0], failures


def test_a_run_that_never_counted_fails() -> None:
    report = passing_report()
    del report["counts"]
    assert verdict(report, EXPECTED) == [
        "no final counts: the run did not converge far enough to count"
    ]
