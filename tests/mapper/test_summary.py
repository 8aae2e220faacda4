"""The mapper's periodic INFO summary: what it decided since the last one, counts only.

Before: at INFO the mapper logged its start and almost nothing else — an operator wiring the
services by hand could not tell from the logs whether records were linked, held for review or
dead-lettered. Now, every ``mapper_summary_interval_seconds`` (60 s), one INFO line: decisions by
kind, commands by action, conflicts, dead letters, open review items. No ids, no personal data.
"""

from __future__ import annotations

import logging

import pytest

from services.mapper.handler import Handled
from services.mapper.summary import DecisionSummary

from .support import employee, harness, po_event, ts, wix_contact, wix_event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_since_the_last_summary_and_only_when_due() -> None:
    clock = Clock()
    summary = DecisionSummary(60.0, clock=clock)
    summary.add(
        [
            Handled("change", "wix", "create", commands=(("poweroffice", "customers", "create"),)),
            Handled("change", "poweroffice", "linked"),
            Handled("change", "poweroffice", "linked", conflicts=(("email", "newest"),)),
            Handled("change", "-", "dead_letter"),
            Handled("change", "poweroffice", "review"),
        ]
    )
    assert summary.take_if_due() is None  # not yet 60 s
    clock.now += 60
    fields = summary.take_if_due(open_reviews=3)
    assert fields == {
        "window_seconds": 60.0,
        "inputs": 5,
        "decisions": {"create": 1, "dead_letter": 1, "linked": 2, "review": 1},
        "commands": {"create": 1},
        "conflicts": 1,
        "dead_letters": 1,
        "deletes_held": 0,
        "review_items_open": 3,
    }
    clock.now += 60
    # Nothing since: still a line (the loop is alive), with zero counts.
    quiet = summary.take_if_due(open_reviews=3)
    assert quiet is not None and quiet["inputs"] == 0 and quiet["decisions"] == {}


@pytest.mark.integration
def test_the_loop_logs_the_summary_at_info_without_personal_data(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether.mapper")
    with harness(kafka_bootstrap, topic_prefix, pg_dsn, mapper_summary_interval_seconds=0.01) as h:
        h.start()
        h.send_change(wix_event(wix_contact("c-1", email="kari@example.no"), ts(1)))
        h.drain()
        h.send_change(po_event("employees", employee(1, email="kari@example.no"), ts(2)))
        h.drain()
    summaries = [r for r in caplog.records if r.getMessage().startswith("mapper summary")]
    assert summaries and all(r.levelno == logging.INFO for r in summaries)
    decisions: dict[str, int] = {}
    for record in summaries:
        fields = record.fields  # type: ignore[attr-defined]
        for kind, n in fields["decisions"].items():
            decisions[kind] = decisions.get(kind, 0) + n
        assert "kari" not in repr(fields) and "c-1" not in repr(fields)
    assert decisions.get("linked", 0) >= 1
