"""Unit tests of service.periods: named periods and the instants that bound calendar days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.periods import instant_bounds, resolve_period, start_of_day

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("today", "first", "last"),
    [
        (date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 14), date(2026, 2, 1), date(2026, 2, 28)),
        (date(2024, 2, 29), date(2024, 2, 1), date(2024, 2, 29)),
        (date(2026, 4, 30), date(2026, 4, 1), date(2026, 4, 30)),
        (date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_current_month_spans_first_to_last_day_of_the_month(today, first, last):
    assert resolve_period("current_month", today) == (first, last)


def test_current_month_of_a_31_day_month_ends_on_the_31st():
    assert resolve_period("current_month", date(2026, 7, 15)) == (date(2026, 7, 1), date(2026, 7, 31))


def test_current_month_of_february_in_a_common_year_has_28_days():
    assert resolve_period("current_month", date(2025, 2, 28)) == (date(2025, 2, 1), date(2025, 2, 28))


def test_current_month_of_february_in_a_leap_year_has_29_days():
    assert resolve_period("current_month", date(2028, 2, 3)) == (date(2028, 2, 1), date(2028, 2, 29))


def test_february_of_a_century_year_not_divisible_by_400_has_28_days():
    assert resolve_period("current_month", date(2100, 2, 10)) == (date(2100, 2, 1), date(2100, 2, 28))


def test_february_of_a_year_divisible_by_400_has_29_days():
    assert resolve_period("current_month", date(2000, 2, 10)) == (date(2000, 2, 1), date(2000, 2, 29))


def test_last_month_in_january_is_previous_december():
    assert resolve_period("last_month", date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_last_month_on_the_first_of_january_is_previous_december():
    assert resolve_period("last_month", date(2026, 1, 1)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_last_month_in_march_of_a_leap_year_is_february_with_29_days():
    assert resolve_period("last_month", date(2024, 3, 31)) == (date(2024, 2, 1), date(2024, 2, 29))


def test_last_month_in_march_of_a_common_year_is_february_with_28_days():
    assert resolve_period("last_month", date(2026, 3, 1)) == (date(2026, 2, 1), date(2026, 2, 28))


def test_last_month_on_the_31st_is_the_whole_previous_30_day_month():
    assert resolve_period("last_month", date(2026, 5, 31)) == (date(2026, 4, 1), date(2026, 4, 30))


def test_last_month_after_a_30_day_month_ends_on_the_31st():
    assert resolve_period("last_month", date(2026, 9, 30)) == (date(2026, 8, 1), date(2026, 8, 31))


@pytest.mark.parametrize("day", [date(2026, 1, 1), date(2026, 6, 15), date(2026, 12, 31)])
def test_current_year_is_january_first_to_december_31st(day):
    assert resolve_period("current_year", day) == (date(2026, 1, 1), date(2026, 12, 31))


@pytest.mark.parametrize("day", [date(2025, 1, 1), date(2025, 12, 31)])
def test_last_year_is_the_whole_previous_calendar_year(day):
    assert resolve_period("last_year", day) == (date(2024, 1, 1), date(2024, 12, 31))


def test_every_day_of_a_leap_year_resolves_to_its_own_month():
    day = date(2024, 1, 1)
    while day.year == 2024:
        first, last = resolve_period("current_month", day)
        assert first == day.replace(day=1)
        assert first <= day <= last
        assert (last + timedelta(days=1)).day == 1
        assert last.month == day.month
        day += timedelta(days=1)


@pytest.mark.parametrize("name", ["", "this_month", "CURRENT_MONTH", "custom", "last_week"])
def test_unknown_period_is_refused(name):
    with pytest.raises(ValueError, match="unknown period"):
        resolve_period(name, date(2026, 5, 5))


def test_start_of_day_is_local_midnight():
    assert start_of_day(date(2026, 1, 15), NEW_YORK) == utc(2026, 1, 15, 5)
    assert start_of_day(date(2026, 7, 15), NEW_YORK) == utc(2026, 7, 15, 4)
    assert start_of_day(date(2026, 1, 15), BERLIN) == utc(2026, 1, 14, 23)


def test_instant_bounds_of_dates_cover_whole_local_days_across_dst():
    lower, upper = instant_bounds(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK)
    assert lower == utc(2026, 3, 8, 5)
    assert upper == utc(2026, 3, 9, 4)


def test_instant_bounds_of_date_times_keep_the_instants_and_include_the_end():
    start = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK)
    end = utc(2026, 3, 8, 12)
    lower, upper = instant_bounds(start, end, NEW_YORK)
    assert lower == start
    assert upper == end + timedelta(microseconds=1)
    assert upper > end


def test_instant_bounds_without_limits_are_open():
    assert instant_bounds(None, None, NEW_YORK) == (None, None)
    lower, upper = instant_bounds(date(2026, 11, 1), None, NEW_YORK)
    assert (lower, upper) == (utc(2026, 11, 1, 4), None)
    lower, upper = instant_bounds(None, date(2026, 11, 1), NEW_YORK)
    assert (lower, upper) == (None, utc(2026, 11, 2, 5))


def test_instant_bounds_mix_a_date_start_with_a_date_time_end():
    lower, upper = instant_bounds(date(2026, 10, 31), utc(2026, 11, 1, 6), NEW_YORK)
    assert lower == utc(2026, 10, 31, 4)
    assert upper == utc(2026, 11, 1, 6, 0, 0, 1)
