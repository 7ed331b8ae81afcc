"""The transfers table: money a user moves between their own accounts (both balances kept by triggers)."""

from __future__ import annotations

from psycopg import sql

from ..db import Connection
from ..records import TRANSFER, Position
from . import names, placeholders

COLUMNS = names(TRANSFER.columns)


def create_transfer(conn: Connection, *, user_id: int, data: dict) -> dict | None:
    """Insert a transfer between two of the user's accounts that are not archived; None (nothing
    written) when either is not the user's or is archived."""
    fields = [name for name in TRANSFER.writable if name in data]
    query = sql.SQL(
        "INSERT INTO transfers (user_id, {names}) SELECT %s, {values}"
        # Both accounts locked in id order, as the balance trigger locks them: an archive committing
        # meanwhile is seen, not missed.
        " WHERE (SELECT count(*) FROM (SELECT FROM accounts WHERE user_id = %s AND id IN (%s, %s) AND NOT archived"
        " ORDER BY id FOR NO KEY UPDATE) AS usable) = 2"
        " RETURNING {columns}"
    ).format(
        names=names(fields),
        values=placeholders(len(fields)),
        columns=COLUMNS,
    )
    params = [user_id, *(data[name] for name in fields), user_id, data["from_account_id"], data["to_account_id"]]
    return conn.execute(query, params).fetchone()


def list_transfers(
    conn: Connection, *, user_id: int, filters: dict, limit: int, after: Position | None
) -> tuple[list[dict], Position | None]:
    """One page of the user's transfers, newest first, and where it ended (None on the last page).

    Filters: account_id (either side), start and end (instants, end exclusive)."""
    conditions = [sql.SQL("user_id = %s")]
    params: list = [user_id]
    if filters.get("account_id") is not None:
        conditions.append(sql.SQL("%s IN (from_account_id, to_account_id)"))
        params.append(filters["account_id"])
    for name, condition in (("start", "occurred_at >= %s"), ("end", "occurred_at < %s")):
        if filters.get(name) is not None:
            conditions.append(sql.SQL(condition))
            params.append(filters[name])
    if after is not None:
        conditions.append(sql.SQL("(occurred_at, id) < (%s, %s)"))
        params += [after.key, after.id]
    query = sql.SQL(
        "SELECT {columns} FROM transfers WHERE {where} ORDER BY occurred_at DESC, id DESC LIMIT %s"
    ).format(columns=COLUMNS, where=sql.SQL(" AND ").join(conditions))
    rows = conn.execute(query, [*params, limit + 1]).fetchall()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, Position("-occurred_at", rows[-1]["occurred_at"], rows[-1]["id"])
