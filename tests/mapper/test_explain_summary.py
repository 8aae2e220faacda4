"""Explain's one-line answer for a failed create: the cause and the fix, and a retry promised
only when a retry can succeed (pure: no infrastructure)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.mapper.domain import ErrorInfo
from services.mapper.explain import create_failed_summary

AT = datetime(2026, 1, 1, tzinfo=UTC)


def error(code: str | None, message: str = "", outcome: str = "failed") -> ErrorInfo:
    return ErrorInfo(outcome=outcome, command_id="cmd-1", code=code, message=message, at=AT)


def test_extended_fields_permission_is_named_with_its_fix_and_no_retry_promise():
    summary = create_failed_summary(
        "create_failed",
        error(
            "PERMISSION_DENIED", "[wix] extended_fields failed status=403 code=PERMISSION_DENIED"
        ),
    )
    assert "extended fields permission missing" in summary
    assert "give the Wix API key" in summary
    assert "next change retries" not in summary


def test_ambiguous_keyless_create_names_the_cause():
    summary = create_failed_summary(
        "create_rejected", error("KEYLESS_CREATE_AMBIGUOUS", "x", "rejected")
    )
    assert "extended fields permission missing" in summary
    assert "several name-only Wix contacts match" in summary


def test_other_permanent_failures_do_not_promise_a_retry():
    for code in ("PERMISSION_DENIED", "UNAUTHENTICATED", "ContractError", None):
        summary = create_failed_summary("create_failed", error(code))
        assert "retries it" not in summary, code
        assert "re-drive" in summary


def test_transient_failures_are_retried():
    summary = create_failed_summary(
        "create_failed", error("ServerError", "gave up after 8 attempts: [wix] create failed")
    )
    assert "retries it" in summary
