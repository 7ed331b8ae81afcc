"""Totals of one user's income and expense over a span of the tenant's calendar days.

They are summed from daily_totals (kept by triggers, keyed by the tenant's local day), so a
month costs a few hundred rows however many transactions it holds.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from psycopg import sql

from ..db import Connection, fetch_one

# How each grouping labels a row: a category (NULL for none), a month or a day.
_GROUP_KEYS = {
    "category": sql.SQL("nullif(category, '')"),
    "month": sql.SQL("to_char(day, 'YYYY-MM')"),
    "day": sql.SQL("to_char(day, 'YYYY-MM-DD')"),
}
_TOTALS = sql.SQL(
    "coalesce(sum(total) FILTER (WHERE type = 'income'), 0) AS total_income,"
    " coalesce(sum(total) FILTER (WHERE type = 'expense'), 0) AS total_expense,"
    " coalesce(sum(count), 0)::bigint AS count"
)
_WHERE = sql.SQL("user_id = %(user_id)s AND day BETWEEN %(first)s AND %(last)s")


def _with_net(row: dict) -> dict:
    row["net_balance"] = Decimal(row["total_income"]) - Decimal(row["total_expense"])
    return row


def summarize(
    conn: Connection, *, user_id: int, first: date, last: date, group_by: str | None = None
) -> dict:
    """Sum income and expense over the days first..last; with group_by, also per group."""
    params = {"user_id": user_id, "first": first, "last": last}
    if group_by is None:
        query = sql.SQL("SELECT {totals} FROM daily_totals WHERE {where}").format(totals=_TOTALS, where=_WHERE)
        return _with_net(fetch_one(conn.execute(query, params)))

    # One scan: per-group rows plus the grand total from the same grouping set. Groups whose
    # transactions were all deleted or moved keep a zero row in daily_totals; they are left out.
    query = sql.SQL(
        "SELECT {key} AS key, grouping({key}) AS is_total, {totals} FROM daily_totals"
        " WHERE {where} GROUP BY GROUPING SETS (({key}), ())"
        " HAVING sum(count) > 0 OR grouping({key}) = 1"
        " ORDER BY is_total, key NULLS LAST"
    ).format(key=_GROUP_KEYS[group_by], totals=_TOTALS, where=_WHERE)
    rows = [_with_net(row) for row in conn.execute(query, params)]
    summary = rows.pop()  # the () grouping set sorts last
    summary["groups"] = rows
    return summary
