"""The daily_totals and monthly_totals tables: one user's income and expense over calendar days.

They are summed from monthly_totals for the whole months of the span and from daily_totals for
the days around them (both kept by triggers, keyed by the tenant's local calendar), so a month
costs one row per type and category however many transactions it holds.
"""

from __future__ import annotations

from datetime import date, timedelta
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
# The user's rows, of one account when %(account_id)s is not null.
_OWNER = sql.SQL("user_id = %(user_id)s AND (%(account_id)s::bigint IS NULL OR account_id = %(account_id)s)")
# The rows of the span: whole months from monthly_totals, the days before and after them from
# daily_totals; the first day of a month stands for the month.
_ROWS = sql.SQL(
    "SELECT month AS day, type, category, total, count FROM monthly_totals"
    " WHERE {owner} AND month >= %(months_from)s AND month < %(months_to)s"
    " UNION ALL SELECT day, type, category, total, count FROM daily_totals"
    " WHERE {owner} AND day >= %(first)s AND day < %(months_from)s"
    " UNION ALL SELECT day, type, category, total, count FROM daily_totals"
    " WHERE {owner} AND day >= %(months_to)s AND day <= %(last)s"
).format(owner=_OWNER)
_DAYS = sql.SQL(
    "SELECT day, type, category, total, count FROM daily_totals"
    " WHERE {owner} AND day BETWEEN %(first)s AND %(last)s"
).format(owner=_OWNER)


def whole_months(first: date, last: date) -> tuple[date, date]:
    """The whole calendar months within first..last, as the first day of the first of them and
    of the month after the last; (first, first) when there are none."""
    start = first if first.day == 1 else (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    end = (last + timedelta(days=1)).replace(day=1)
    return (start, end) if start < end else (first, first)


def _with_net(row: dict) -> dict:
    row["net_balance"] = Decimal(row["total_income"]) - Decimal(row["total_expense"])
    return row


def summarize(
    conn: Connection,
    *,
    user_id: int,
    first: date,
    last: date,
    group_by: str | None,
    max_groups: int,
    account_id: int | None = None,
) -> dict:
    """Sum income and expense over the days first..last; with group_by, also per group, at most
    max_groups + 1 of them (one more than the caller allows, so it can tell the limit was passed)."""
    months_from, months_to = whole_months(first, last)
    params = {
        "user_id": user_id, "account_id": account_id, "first": first, "last": last,
        "months_from": months_from, "months_to": months_to,
    }
    rows = _DAYS if group_by == "day" else _ROWS
    if group_by is None:
        query = sql.SQL("SELECT {totals} FROM ({rows}) AS t").format(totals=_TOTALS, rows=rows)
        return _with_net(fetch_one(conn.execute(query, params)))

    # One scan: the grand total (the () grouping set, sorted first) plus per-group rows. Groups
    # whose transactions were all deleted or moved keep a zero row in the totals; they are left out.
    query = sql.SQL(
        "SELECT {key} AS key, grouping({key}) AS is_total, {totals} FROM ({rows}) AS t"
        " GROUP BY GROUPING SETS (({key}), ())"
        " HAVING sum(count) > 0 OR grouping({key}) = 1"
        " ORDER BY is_total DESC, key NULLS LAST LIMIT %(limit)s"
    ).format(key=_GROUP_KEYS[group_by], totals=_TOTALS, rows=rows)
    summary, *groups = (_with_net(row) for row in conn.execute(query, {**params, "limit": max_groups + 2}))
    summary["groups"] = groups
    return summary


def list_categories(conn: Connection, *, user_id: int, after: str | None, limit: int) -> list[dict]:
    """The user's categories in name order after `after`, with their transaction counts; at most
    limit rows. Read from the monthly totals: a few rows per category and month, not every row."""
    return conn.execute(
        "SELECT category AS name, sum(count)::bigint AS count FROM monthly_totals"
        " WHERE user_id = %s AND category > %s"
        " GROUP BY category HAVING sum(count) > 0 ORDER BY category LIMIT %s",
        # '' is "no category" in the totals; every real name sorts after it.
        (user_id, after or "", limit),
    ).fetchall()
