"""Analytics of one user: totals over a period (optionally grouped), and the categories in use."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from ..db import Connection
from ..periods import resolve_period, today
from ..schemas import MAX_GROUPS
from ..store import totals
from . import accounts
from .errors import Invalid


def summary(
    conn: Connection,
    *,
    user_id: int,
    timezone: ZoneInfo,
    period: str | None = None,
    first: date | None = None,
    last: date | None = None,
    group_by: str | None = None,
    account_id: int | None = None,
) -> dict:
    """Income, expense, net balance and count over a calendar period of the tenant's time zone
    (the current month by default) or over the days first..last; with group_by, also per group; with
    account_id, of that account only (transfers never count)."""
    if account_id is not None:
        accounts.check_owned(conn, user_id=user_id, account_id=account_id, field="account_id")
    if first is not None and last is not None:
        period = "custom"
    else:
        period = period or "current_month"
        first, last = resolve_period(period, today(timezone))
    result = totals.summarize(
        conn, user_id=user_id, first=first, last=last, group_by=group_by, max_groups=MAX_GROUPS, account_id=account_id
    )
    if len(result.get("groups", ())) > MAX_GROUPS:
        raise Invalid(
            "too_many_groups",
            f"The answer would hold more than {MAX_GROUPS} groups by {group_by};"
            " ask for a shorter span (from/to) or a coarser group_by.",
        )
    return {**result, "period": period, "from_": first, "to": last, "group_by": group_by}


def categories(conn: Connection, *, user_id: int, after: str | None, limit: int) -> tuple[list[dict], str | None]:
    """One page of the user's categories by name after `after`, with their transaction counts, and
    the last name of the page when more follow."""
    items = totals.list_categories(conn, user_id=user_id, after=after, limit=limit + 1)
    return items[:limit], items[limit - 1]["name"] if len(items) > limit else None
