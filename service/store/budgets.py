"""The budgets table's own statement: budgets with what was spent in their category in a month, read
from monthly_totals (one row per account and category of the month), never from the transactions.
(Create, read, change, delete: store.owned.)"""

from __future__ import annotations

from datetime import date

from psycopg import sql

from ..db import Connection
from ..records import BUDGET

_COLUMNS = sql.SQL(", ").join(sql.Identifier("b", name) for name in BUDGET.columns)


def with_spending(conn: Connection, *, user_id: int, month: date, budget_id: int | None = None) -> list[dict]:
    """The user's budgets (only `budget_id` when given) by category, each with `spent`: the sum of its
    category's expenses in the month starting on `month`, over every account."""
    query = sql.SQL(
        "SELECT {columns}, coalesce(("
        "  SELECT sum(m.total) FROM monthly_totals m"
        "  WHERE m.user_id = b.user_id AND m.month = %(month)s AND m.type = 'expense' AND m.category = b.category"
        " ), 0) AS spent"
        " FROM budgets b WHERE b.user_id = %(user_id)s AND (%(id)s::bigint IS NULL OR b.id = %(id)s)"
        " ORDER BY b.category, b.id"
    ).format(columns=_COLUMNS)
    return conn.execute(query, {"user_id": user_id, "month": month, "id": budget_id}).fetchall()
