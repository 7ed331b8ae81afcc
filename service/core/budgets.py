"""Monthly budgets of one user: a spending limit per category, and what was spent against it.

A budget's category matches as the category filter of GET /transactions does (the trimmed name,
exactly); its amount applies to every month. What was spent comes from the monthly totals, so a
month of budgets costs one index lookup per budget however many transactions the user has.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from ..db import Connection
from ..periods import today
from ..records import BUDGET
from ..store import budgets, owned
from . import quotas
from .errors import Conflict, found

# The most budgets one user may have (GET /budgets answers them all).
MAX_BUDGETS = 1000
_TENTH = Decimal("0.1")


def _exists() -> Conflict:
    return Conflict("budget_exists", "You already have a budget for this category.")


def _month(month: date | None, timezone: ZoneInfo) -> date:
    return month or today(timezone).replace(day=1)


def with_figures(row: dict) -> dict:
    """A budget with spent, remaining (negative when over) and percent_used, rounded half up to one place."""
    percent = (row["spent"] / row["amount"] * 100).quantize(_TENTH, rounding=ROUND_HALF_UP)
    return {**row, "remaining": row["amount"] - row["spent"], "percent_used": f"{percent:.1f}"}


def create(conn: Connection, *, user_id: int, data: dict) -> dict:
    with conn.transaction():
        quotas.make_room(conn, BUDGET, user_id=user_id, cap=MAX_BUDGETS, code="too_many_budgets", what="budgets")
        try:
            return owned.insert(conn, BUDGET, user_id=user_id, data=data)
        except owned.Taken as exc:
            raise _exists() from exc


def month_status(conn: Connection, *, user_id: int, month: date | None, timezone: ZoneInfo) -> dict:
    """Every budget with what was spent in the month (the current one in the tenant's time zone by
    default), and the month's totals."""
    month = _month(month, timezone)
    items = [with_figures(row) for row in budgets.with_spending(conn, user_id=user_id, month=month)]
    return {
        "month": month,
        "items": items,
        "total_budgeted": sum((item["amount"] for item in items), Decimal("0.00")),
        "total_spent": sum((item["spent"] for item in items), Decimal("0.00")),
    }


def get(conn: Connection, *, user_id: int, budget_id: int, month: date | None, timezone: ZoneInfo) -> dict:
    month = _month(month, timezone)
    rows = budgets.with_spending(conn, user_id=user_id, month=month, budget_id=budget_id)
    return {**with_figures(found(rows[0] if rows else None, "budget")), "month": month}


def update(conn: Connection, *, user_id: int, budget_id: int, changes: dict) -> dict:
    try:
        return found(owned.update(conn, BUDGET, user_id=user_id, id=budget_id, changes=changes), "budget")
    except owned.Taken as exc:
        raise _exists() from exc


def delete(conn: Connection, *, user_id: int, budget_id: int) -> None:
    found(owned.delete(conn, BUDGET, user_id=user_id, id=budget_id), "budget")
