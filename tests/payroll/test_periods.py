from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from payroll.periods import format_period, last_ended_period, parse_period


@pytest.mark.parametrize(
    ("now", "zone", "period"),
    [
        # The month has ended in the zone, though not yet in UTC (Auckland is UTC+13 in October).
        (datetime(2026, 10, 31, 11, 0, tzinfo=UTC), "Pacific/Auckland", date(2026, 10, 1)),
        (datetime(2026, 10, 31, 11, 0, tzinfo=UTC), "UTC", date(2026, 9, 1)),
        # Still October in Los Angeles while November in UTC.
        (datetime(2026, 11, 1, 5, 0, tzinfo=UTC), "America/Los_Angeles", date(2026, 9, 1)),
        (datetime(2026, 11, 1, 7, 0, tzinfo=UTC), "America/Los_Angeles", date(2026, 10, 1)),
        # The year turns.
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "UTC", date(2026, 12, 1)),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 12, 1)),
        # The night the clocks go back in Berlin (25 October 2026) changes nothing about the month.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 9, 1)),
    ],
)
def test_the_period_is_the_latest_month_that_has_ended_in_the_zone(now: datetime, zone: str, period: date) -> None:
    assert last_ended_period(now, ZoneInfo(zone)) == period


def test_periods_are_written_yyyy_mm() -> None:
    assert parse_period("2026-10") == date(2026, 10, 1)
    assert format_period(date(2026, 1, 1)) == "2026-01"
    for bad in ["2026-13", "2026-1", "October", "2026-10-01", ""]:
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_period(bad)
