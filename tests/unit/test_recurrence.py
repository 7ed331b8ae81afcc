"""When a recurring rule's occurrences fall (service.recurrence): counted from start_date, month ends
and leap days clamped, intervals, end dates, the latest day, and resuming after any date."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from service.recurrence import LAST_DAY, add_months, dates_after, next_after, occurrence


def rule(start: date, frequency: str, interval: int = 1, end: date | None = None) -> dict:
    return {"start_date": start, "frequency": frequency, "interval": interval, "end_date": end}


def test_a_monthly_rule_from_the_31st_falls_on_each_months_last_day_and_back_on_the_31st():
    dates = dates_after(rule(date(2026, 1, 31), "monthly"), None, until=date(2026, 8, 31), limit=100)
    assert dates == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30),
                     date(2026, 5, 31), date(2026, 6, 30), date(2026, 7, 31), date(2026, 8, 31)]


def test_in_a_leap_year_the_31st_falls_on_29_february():
    assert occurrence(date(2028, 1, 31), "monthly", 1, 1) == date(2028, 2, 29)


def test_a_yearly_rule_from_29_february_falls_on_28_february_in_other_years():
    dates = dates_after(rule(date(2024, 2, 29), "yearly"), None, until=date(2032, 12, 31), limit=100)
    assert dates == [date(2024, 2, 29), date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28),
                     date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28), date(2032, 2, 29)]


@pytest.mark.parametrize(
    ("frequency", "interval", "second"),
    [("daily", 3, date(2026, 1, 4)), ("weekly", 2, date(2026, 1, 15)), ("monthly", 3, date(2026, 4, 1)),
     ("yearly", 2, date(2028, 1, 1))],
)
def test_the_interval_counts_units_of_the_frequency(frequency, interval, second):
    assert occurrence(date(2026, 1, 1), frequency, interval, 1) == second


def test_the_end_date_is_the_last_day_an_occurrence_may_fall_on():
    weekly = rule(date(2026, 1, 1), "weekly", end=date(2026, 1, 22))
    assert dates_after(weekly, None, until=LAST_DAY, limit=100)[-1] == date(2026, 1, 22)
    assert next_after(weekly, date(2026, 1, 22)) is None
    assert next_after(rule(date(2026, 1, 1), "weekly", end=date(2026, 1, 21)), date(2026, 1, 15)) is None


def test_no_occurrence_falls_after_the_latest_day():
    assert occurrence(date(2999, 12, 1), "monthly", 1, 1) is None
    assert occurrence(date(2999, 12, 31), "daily", 1, 1) is None
    assert occurrence(date(2999, 12, 31), "daily", 1, 0) == date(2999, 12, 31)
    assert next_after(rule(date(2999, 6, 1), "yearly"), date(2999, 6, 1)) is None


def test_add_months_across_years_and_backwards_in_the_calendar():
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 1, 15), 24) == date(2028, 1, 15)


def test_resuming_after_any_date_gives_exactly_the_later_occurrences():
    """dates_after(after) is the rule's full list of occurrences with those up to `after` removed,
    for random rules and dates (the arithmetic that finds where to resume never skips or repeats)."""
    rng = random.Random(14)
    for _ in range(2000):
        start = date(2020, 1, 1) + timedelta(days=rng.randrange(3000))
        frequency = rng.choice(["daily", "weekly", "monthly", "yearly"])
        interval = rng.choice([1, 1, 2, 3, 7, 12, 366])
        end = start + timedelta(days=rng.randrange(4000)) if rng.random() < 0.5 else None
        subject = rule(start, frequency, interval, end)
        until = start + timedelta(days=rng.randrange(5000))
        every = dates_after(subject, None, until=until, limit=10_000)
        after = start + timedelta(days=rng.randrange(-30, 5000))
        assert dates_after(subject, after, until=until, limit=10_000) == [day for day in every if day > after]
        assert every == sorted(set(every))
