"""Replaying the real mapper (its loop in-process, real Kafka and PostgreSQL).

A few changes are synced; the mapper stops; a dry run previews the replay with the mapper's own
handler and changes nothing; execute resets the group's offsets and rewinds the tracking rows;
the restarted mapper reprocesses every input — and causes no new command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.mapper.support import (
    Harness,
    dump_state,
    employee,
    harness,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

from .conftest import committed, run_cli, wait_group_empty

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(
    kafka_bootstrap: str,
    topic_prefix: str,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Any:
    """A mapper that synced three changes, then stopped; the CLI's environment set."""
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h:
        h.start()
        h.send_change(po_event("employees", employee(1, email="ola@example.no"), ts(1)))
        h.send_change(po_event("employees", employee(2, first="Kari", phone="913 00 000"), ts(2)))
        h.send_change(wix_event(wix_contact("c-9", "Per", "Olsen", email="per@example.no"), ts(3)))
        h.drain()
        h.stop()
        wait_group_empty(kafka_bootstrap, h.settings.group_id)
        for key, value in {
            "TETHER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "TETHER_TOPIC_PREFIX": topic_prefix,
            "TETHER_TOPIC_PARTITIONS": str(h.settings.topic_partitions),
            "TETHER_POSTGRES_DSN": pg_dsn,
            "TETHER_SECRETS_DIR": str(tmp_path / "no-secrets"),
        }.items():
            monkeypatch.setenv(key, value)
        yield h


def outbox_ids(h: Harness) -> list[str]:
    return [row[0] for row in h.query("SELECT command_id FROM mapper_outbox ORDER BY seq")]


def test_dry_run_previews_with_the_mappers_handler_and_leaves_no_trace(
    synced: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced
    group = h.settings.group_id
    processed = h.sent
    # One more change arrives while the mapper is stopped: the replay would create its contact.
    h.send_change(po_event("employees", employee(3, first="Nils", phone="914 00 000"), ts(4)))
    offsets = committed(h.settings.kafka_bootstrap_servers, group)
    state = dump_state(h.dsn)
    sent_before = outbox_ids(h)
    assert sent_before, "the sync wrote commands"

    code, planned = run_cli(capsys, "stage", "mapper", "--earliest")
    assert code == 0
    assert planned["messages"] == h.sent
    preview = planned["preview"]
    assert (preview["inputs"], preview["skipped_by_tracking"]) == (h.sent, 0)
    # The synced inputs decide nothing new; the new employee yields one new create to Wix.
    assert sum(preview["results"].values()) == h.sent
    assert preview["results"].get("create") == 1
    new = [c for c in preview["commands"] if not c["already_in_outbox"]]
    assert [(c["action"], c["target"]) for c in new] == [("create", "wix/contacts")]
    assert all(c["command_id"] not in sent_before for c in new)

    code, kept = run_cli(capsys, "stage", "mapper", "--earliest", "--keep-tracking")
    assert code == 0
    assert kept["preview"]["skipped_by_tracking"] == processed  # processed inputs skip again
    assert kept["preview"]["results"] == {"create": 1}

    code, limited = run_cli(capsys, "stage", "mapper", "--earliest", "--preview-limit", "1")
    assert code == 0 and "preview-limit" in limited["preview"]["skipped"]

    # No side effects: offsets, every mapper table (tracking rows, links, outbox) unchanged.
    assert committed(h.settings.kafka_bootstrap_servers, group) == offsets
    assert dump_state(h.dsn) == state


def test_execute_on_the_stopped_mapper_reprocesses_without_duplicate_commands(
    synced: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced
    group = h.settings.group_id
    commands_before = h.commands()
    outbox_before = outbox_ids(h)

    code, done = run_cli(capsys, "stage", "mapper", "--earliest", "--execute")
    assert code == 0, done
    assert set(committed(h.settings.kafka_bootstrap_servers, group).values()) == {0}
    assert {p["tracking"] for p in done["partitions"] if p["tracking"] is not None} == {0}

    mapper = h.start(replay=True)
    h.drain()
    assert mapper.consumed == h.sent
    assert mapper.replayed == 0  # every input was decided again, none skipped
    assert outbox_ids(h) == outbox_before
    assert h.commands() == commands_before  # nothing new on the command topics
