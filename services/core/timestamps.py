"""Parsing the timestamps the SaaS APIs send, and the clock port.

PowerOffice Go sends up to 7 fractional digits (``2021-09-30T08:03:00.1234567Z``), sometimes an
offset instead of ``Z``; Wix sends milliseconds (``2020-10-18T13:40:57.803Z``) and webhooks up to
nanoseconds. :func:`parse_api_timestamp` accepts all of these and returns an aware UTC datetime
(microsecond precision: digits past the sixth are truncated, so compare the original strings
when 100 ns matter, as the PowerOffice cursor does).

Imports: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

_FRACTION = re.compile(r"\.(\d+)")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_api_timestamp(value: str) -> datetime:
    """ISO-8601 with any number of fractional digits and ``Z``/offset -> aware UTC datetime."""
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
