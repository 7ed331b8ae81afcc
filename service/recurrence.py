"""When a recurring rule's occurrences fall: pure calendar arithmetic, no database.

Occurrence n of a rule falls on start_date + n x interval units (days, weeks, months or years),
always counted from start_date: a monthly rule from 31 January falls on 28 or 29 February and on
31 March; a yearly rule from 29 February falls on 28 February in other years.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

FREQUENCIES = ("daily", "weekly", "monthly", "yearly")
# Each frequency's unit: days or months, and how many of them one interval counts.
_UNITS = {"daily": ("days", 1), "weekly": ("days", 7), "monthly": ("months", 1), "yearly": ("months", 12)}
# No occurrence falls after this day (the service's latest date).
LAST_DAY = date(2999, 12, 31)


def add_months(day: date, months: int) -> date:
    """The same day of the month `months` later, or that month's last day when it is shorter."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return day.replace(year=year, month=month + 1, day=min(day.day, calendar.monthrange(year, month + 1)[1]))


def occurrence(start: date, frequency: str, interval: int, n: int) -> date | None:
    """The date of occurrence n (0 is start itself), or None past LAST_DAY."""
    unit, per_interval = _UNITS[frequency]
    steps = n * interval * per_interval
    if unit == "days":
        return start + timedelta(days=steps) if steps <= (LAST_DAY - start).days else None
    if (start.year * 12 + start.month - 1) + steps > LAST_DAY.year * 12 + LAST_DAY.month - 1:
        return None
    return add_months(start, steps)


def _first_index_after(start: date, frequency: str, interval: int, after: date) -> int:
    """The smallest n whose occurrence falls after `after`."""
    if after < start:
        return 0
    unit, per_interval = _UNITS[frequency]
    step = interval * per_interval
    if unit == "days":
        return (after - start).days // step + 1
    # Occurrence n lies in the month n x step months after start's; the first in or after the month
    # of `after` is n or n + 1.
    n = ((after.year - start.year) * 12 + after.month - start.month) // step
    candidate = occurrence(start, frequency, interval, n)
    return n + 1 if candidate is not None and candidate <= after else n


def dates_after(rule: dict, after: date | None, *, until: date, limit: int) -> list[date]:
    """A rule's occurrences ({start_date, frequency, interval, end_date}) after `after` (from its
    start when None), up to `until` and its end_date, at most `limit` of them."""
    last = min(until, rule["end_date"] or LAST_DAY)
    n = _first_index_after(rule["start_date"], rule["frequency"], rule["interval"], after) if after else 0
    found: list[date] = []
    while len(found) < limit:
        day = occurrence(rule["start_date"], rule["frequency"], rule["interval"], n)
        if day is None or day > last:
            break
        found.append(day)
        n += 1
    return found


def next_after(rule: dict, after: date | None) -> date | None:
    """A rule's first occurrence after `after` (its first when None), or None when none is left."""
    following = dates_after(rule, after, until=LAST_DAY, limit=1)
    return following[0] if following else None
