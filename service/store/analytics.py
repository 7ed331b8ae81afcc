"""Totals of one user's transactions over a period, optionally grouped."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from psycopg import sql

from ..db import Connection, fetch_one

# How each grouping labels a row; months and days are calendar units of the tenant's zone.
# The instant is turned into the zone's wall-clock time before formatting: to_char of a
# timestamptz would format it in the session's zone (UTC), shifting zones east of UTC a day back.
_GROUP_KEYS = {
    "category": sql.SQL("category"),
    "month": sql.SQL("to_char(occurred_at AT TIME ZONE %(tz)s, 'YYYY-MM')"),
    "day": sql.SQL("to_char(occurred_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD')"),
}
_TOTALS = sql.SQL(
    "coalesce(sum(amount) FILTER (WHERE type = 'income'), 0) AS total_income,"
    " coalesce(sum(amount) FILTER (WHERE type = 'expense'), 0) AS total_expense,"
    " count(*) AS count"
)


def _with_net(row: dict) -> dict:
    row["net_balance"] = Decimal(row["total_income"]) - Decimal(row["total_expense"])
    return row


def summarize(
    conn: Connection,
    *,
    user_id: int,
    start: datetime,
    end: datetime,
    tz: str,
    group_by: str | None = None,
) -> dict:
    """Sum income and expense in [start, end); with group_by, also per group."""
    params = {"user_id": user_id, "start": start, "end": end, "tz": tz}
    where = sql.SQL("user_id = %(user_id)s AND occurred_at >= %(start)s AND occurred_at < %(end)s")
    if group_by is None:
        query = sql.SQL("SELECT {totals} FROM transactions WHERE {where}").format(
            totals=_TOTALS, where=where
        )
        return _with_net(fetch_one(conn.execute(query, params)))

    # One scan: per-group rows plus the grand total from the same grouping set.
    query = sql.SQL(
        "SELECT {key} AS key, grouping({key}) AS is_total, {totals} FROM transactions"
        " WHERE {where} GROUP BY GROUPING SETS (({key}), ()) ORDER BY is_total, key NULLS LAST"
    ).format(key=_GROUP_KEYS[group_by], totals=_TOTALS, where=where)
    rows = [_with_net(row) for row in conn.execute(query, params)]
    summary = rows.pop()  # the () grouping set sorts last
    summary["groups"] = rows
    return summary
