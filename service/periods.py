"""Calendar periods and date bounds, computed in the tenant's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def today(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The calendar day in the time zone at `now` (the clock's now by default)."""
    return (now or datetime.now(UTC)).astimezone(tz).date()


def resolve_period(period: str, today: date) -> tuple[date, date]:
    """Return the first and last day (inclusive) of a named period around `today`."""
    if period == "current_month":
        first = today.replace(day=1)
    elif period == "last_month":
        first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    elif period == "current_year":
        return date(today.year, 1, 1), date(today.year, 12, 31)
    elif period == "last_year":
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    else:
        raise ValueError(f"unknown period {period!r}")
    next_month = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, next_month - timedelta(days=1)


def start_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The instant a calendar day begins in the time zone."""
    return datetime.combine(day, time.min, tzinfo=tz)


def instant_bounds(
    start: date | datetime | None, end: date | datetime | None, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """Turn inclusive from/to filters (dates or instants) into a half-open [start, end)."""
    if isinstance(start, datetime):
        lower = start
    elif isinstance(start, date):
        lower = start_of_day(start, tz)
    else:
        lower = None
    if isinstance(end, datetime):
        upper = end + timedelta(microseconds=1)
    elif isinstance(end, date):
        upper = start_of_day(end + timedelta(days=1), tz)
    else:
        upper = None
    return lower, upper
