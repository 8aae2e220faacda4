"""The replay plan and CLI parsing as pure functions (no Kafka)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from services.core.topics import TopicLayout
from services.replay import plan
from services.replay.main import parse_offset, parse_time
from services.replay.stages import default_group, stage, stage_topics

LAYOUT = TopicLayout(prefix="x")


def test_plan_clamps_targets_into_the_retained_range_and_counts_messages() -> None:
    a, b = LAYOUT.all_commands()[:2]
    ranges = {(a, 0): (10, 50), (a, 1): (0, 5), (b, 0): (0, 0)}
    built = plan.build(
        "loader",
        "x-loader",
        ranges,
        committed={(a, 0): 50, (a, 1): 5},
        targets={(a, 0): 3, (a, 1): 99},
    )
    by_tp = {(p.topic, p.partition): p for p in built.partitions}
    assert by_tp[(a, 0)].start == 10  # before retention: the earliest retained offset
    assert by_tp[(a, 0)].count == 40
    assert by_tp[(a, 1)].start == 5  # past the end: the end, nothing to replay
    assert by_tp[(a, 1)].count == 0
    # no target: the committed offset (or the end when the group never committed) stays
    assert by_tp[(b, 0)].start == 0 and not by_tp[(b, 0)].moves
    assert built.total == 40
    text = plan.render_text(built)
    assert "would reprocess 40 message(s)" in text
    assert a in text
    assert plan.dumps(built).count('"count"') == 3


def test_preview_is_rendered_with_already_sent_commands_marked() -> None:
    built = plan.build("mapper", "x-mapper", {(LAYOUT.outcomes, 0): (0, 2)}, {}, {}).with_preview(
        {
            "inputs": 2,
            "skipped_by_tracking": 0,
            "dead_letters": 0,
            "results": {"noop": 1, "create": 1},
            "commands": [
                {
                    "command_id": "c1",
                    "link_id": "l1",
                    "target": "wix/contacts",
                    "action": "create",
                    "already_in_outbox": True,
                }
            ],
        }
    )
    text = plan.render_text(built)
    assert "1 already in the outbox" in text
    assert "(already sent)" in text
    assert "create=1, noop=1" in text


def test_stage_inputs_come_from_the_topic_layout() -> None:
    assert stage_topics("mapper", LAYOUT) == (
        *LAYOUT.all_changes(),
        LAYOUT.outcomes,
        LAYOUT.operator_actions,
    )
    assert stage_topics("loader", LAYOUT) == tuple(LAYOUT.all_commands())
    with pytest.raises(ValueError, match="nothing to replay"):
        stage_topics("extractor", LAYOUT)
    assert default_group("mapper", "x") == "x-mapper"
    assert default_group("mapper", "x", "custom") == "custom"
    assert stage("loader", LAYOUT, "g").group_id == "g"


def test_times_and_offsets_parse_strictly() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_time("2h", now) == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert parse_time("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("2026-01-01T00:00:00")  # no zone: ambiguous
    topic = LAYOUT.outcomes
    assert parse_offset(f"{topic}:3=42") == ((topic, 3), 42)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_offset(f"{topic}=42")
