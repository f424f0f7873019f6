"""The local host's NCRONTAB schedules fire when the real host's would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from localdev.ncrontab import CronError, NCrontab

T = datetime(2026, 11, 21, 10, 7, 30, tzinfo=UTC)  # a Saturday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", datetime(2026, 11, 21, 10, 10, 0, tzinfo=UTC)),
        ("*/10 * * * * *", datetime(2026, 11, 21, 10, 7, 40, tzinfo=UTC)),
        ("0 0 9 * * MON-FRI", datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)),
        ("30 15 2 1 JAN *", datetime(2027, 1, 1, 2, 15, 30, tzinfo=UTC)),
        ("0 0 0 29 2 *", datetime(2028, 2, 29, 0, 0, 0, tzinfo=UTC)),
        ("0 0,30 10 * * *", datetime(2026, 11, 21, 10, 30, 0, tzinfo=UTC)),
        ("5-10/5 * * * * *", datetime(2026, 11, 21, 10, 8, 5, tzinfo=UTC)),
    ],
)
def test_next_occurrence(expression, expected):
    assert NCrontab.parse(expression).next_after(T) == expected


def test_next_is_strictly_after_a_matching_moment():
    schedule = NCrontab.parse("30 7 10 * * *")

    assert schedule.matches(T)
    assert schedule.next_after(T) == datetime(2026, 11, 22, 10, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "61 * * * * *", "* * * * 13 *", "*/0 * * * * *", "a * * * * *", "5-1 * * * * *"],
)
def test_malformed_schedules_are_refused(expression):
    with pytest.raises(CronError):
        NCrontab.parse(expression)
