"""Dead letters name their record and the fix, and never promise a retry that fails the same way.

Before: a dead letter's log line was ``dead letter: <message>`` with the topic position only —
which record (system/resource/id) and what to change had to be dug out of the payload; an
``explain`` of a record whose input was dead-lettered said "seen, not linked (last decision:
dead_letter, ContractError)", and of a record whose last write was refused "linked; the last
write rejected", with no fix. Now both name the record and, where the cause is known, the fix.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.core.codec import AvroCodec
from services.core.deadletters import DeadLetterWriter, fix_hint, record_of_key
from services.core.errors import (
    AuthenticationError,
    ContractError,
    PermissionDeniedError,
    TransportError,
    ValidationError,
)
from services.core.metrics import CoreMetrics
from services.core.topics import TopicLayout, record_key
from services.mapper.domain.state import ErrorInfo
from services.mapper.explain import write_failed_summary

SAME_WAY = "fails the same way"


def test_fix_hints_name_the_cause_and_promise_no_retry_that_would_fail() -> None:
    extended = PermissionDeniedError(
        "extended_fields.tether-link-id: permission denied", system="wix", status=403
    )
    hint = fix_hint(extended)
    assert hint is not None and "extended fields permission missing" in hint and SAME_WAY in hint
    other = fix_hint(PermissionDeniedError("forbidden", system="poweroffice", status=403))
    assert other is not None and "permission" in other and "poweroffice" in other
    assert SAME_WAY in other
    creds = fix_hint(AuthenticationError("bad key", system="wix", status=401))
    assert creds is not None and "credentials" in creds and SAME_WAY in creds
    contract = fix_hint(ContractError("contact has no id"))
    assert contract is not None and "contact has no id" in contract
    assert "at its source" in contract and SAME_WAY in contract
    refused = fix_hint(ValidationError("bad email", system="wix", status=400))
    assert refused is not None and "at its source" in refused and SAME_WAY in refused
    transient = fix_hint(TransportError("timed out"))
    assert transient is not None and "transient" in transient
    assert fix_hint(RuntimeError("bug")) is None


def test_the_record_is_named_from_the_message_key() -> None:
    assert record_of_key(record_key("t1", "wix", "contacts", "c-1")) == "wix/contacts/c-1"
    assert record_of_key(b"9c6f0a4e-link") == "link 9c6f0a4e-link"
    assert record_of_key(None) is None
    assert record_of_key(b"\xff\xfe") is None


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        assert value is not None
        self.sent.append((topic, value, key))
        return None


def test_the_dead_letter_and_its_log_line_name_the_record_and_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tether.deadletters")
    producer, codec = Producer(), AvroCodec()
    writer = DeadLetterWriter(
        producer,
        codec,
        TopicLayout(prefix="t", partitions=1),
        "loader",
        CoreMetrics(CollectorRegistry(), "loader"),
    )
    error = PermissionDeniedError("extended_fields: permission denied", system="wix", status=403)
    writer.park(b"{}", error, key=record_key("t1", "poweroffice", "employees", "42"))
    [(_, value, _)] = producer.sent
    letter = codec.decode(value, "DeadLetter")
    assert "poweroffice/employees/42" in letter["error_message"]
    assert "extended fields permission missing" in letter["error_message"]
    [line] = [r for r in caplog.records if r.name == "tether.deadletters"]
    assert "poweroffice/employees/42" in line.getMessage()
    assert "extended fields permission missing" in line.getMessage()
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["record"] == "poweroffice/employees/42" and fields["fix"]


def test_explain_names_the_fix_of_a_refused_write() -> None:
    at = datetime(2026, 12, 5, tzinfo=UTC)
    refused = ErrorInfo(
        outcome="rejected",
        command_id="c",
        code="PermissionDeniedError",
        message="[wix] extended_fields: permission denied status=403",
        at=at,
    )
    summary = write_failed_summary(refused)
    assert "extended fields permission missing" in summary and SAME_WAY in summary
    flaky = ErrorInfo(outcome="failed", command_id="c", code="ServerError", at=at)
    assert "transient" in write_failed_summary(flaky)
