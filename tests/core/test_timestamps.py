from datetime import UTC, datetime

import pytest

from services.core.timestamps import parse_api_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-09-30T08:03:00.1234567Z", datetime(2021, 9, 30, 8, 3, 0, 123456, UTC)),
        ("2020-10-18T13:40:57.803Z", datetime(2020, 10, 18, 13, 40, 57, 803000, UTC)),
        ("2020-10-18T13:42:11.943838123Z", datetime(2020, 10, 18, 13, 42, 11, 943838, UTC)),
        ("2021-09-25 08:03:00.1234567 -00:00", datetime(2021, 9, 25, 8, 3, 0, 123456, UTC)),
        ("2021-09-30T10:03:00+02:00", datetime(2021, 9, 30, 8, 3, 0, 0, UTC)),
        ("2021-09-30T00:00:00Z", datetime(2021, 9, 30, tzinfo=UTC)),
    ],
)
def test_api_timestamps_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse_api_timestamp(text) == expected


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_api_timestamp("yesterday")
