"""The recurring_transactions table's own statements: the due rules, their occurrences made into
transactions, and how far each rule has got. (Create, read, change, delete: store.owned.)"""

from __future__ import annotations

from datetime import date, datetime

from psycopg import sql

from ..db import Connection, fetch_one
from ..records import RECURRING
from . import names

COLUMNS = names(RECURRING.columns)


def lock_next_due(conn: Connection, *, today: date, skip: list[int]) -> dict | None:
    """One rule (of any user) with an occurrence due by `today`, not among `skip`, locked until the
    caller's transaction ends, with its user's row (FOR KEY SHARE, taken as the user's deletion
    takes them: the user, then the rule). A rule another run holds, or whose user is being deleted,
    is passed over, not waited for."""
    query = sql.SQL(
        "SELECT r.user_id, {columns} FROM recurring_transactions r JOIN users u ON u.id = r.user_id"
        " WHERE r.next_occurrence <= %s AND r.id <> ALL (%s)"
        " ORDER BY r.next_occurrence, r.id LIMIT 1 FOR KEY SHARE OF u SKIP LOCKED FOR NO KEY UPDATE OF r SKIP LOCKED"
    ).format(columns=sql.SQL(", ").join(sql.Identifier("r", name) for name in RECURRING.columns))
    return conn.execute(query, (today, skip)).fetchone()


def insert_occurrences(conn: Connection, *, rule: dict, user_id: int, instants: list[datetime]) -> int:
    """Insert one transaction of the rule at each instant, into the rule's account unless it is
    archived (then none: its occurrences are skipped); returns how many were inserted."""
    return conn.execute(
        "INSERT INTO transactions (user_id, account_id, type, amount, description, category, occurred_at, recurring_id)"
        " SELECT a.user_id, a.id, %s, %s, %s, %s, o.at, %s"
        " FROM accounts a CROSS JOIN unnest(%s::timestamptz[]) AS o (at)"
        " WHERE a.id = %s AND a.user_id = %s AND NOT a.archived"
        # Locked as the balance trigger would: an archive committing meanwhile is seen, not missed.
        " FOR NO KEY UPDATE OF a",
        (
            rule["type"], rule["amount"], rule["description"], rule["category"], rule["id"],
            instants, rule["account_id"], user_id,
        ),
    ).rowcount


def advance(
    conn: Connection, *, user_id: int, rule_id: int, last_occurrence: date, next_occurrence: date | None
) -> dict:
    query = sql.SQL(
        "UPDATE recurring_transactions SET last_occurrence = %s, next_occurrence = %s"
        " WHERE id = %s AND user_id = %s RETURNING {columns}"
    ).format(columns=COLUMNS)
    return fetch_one(conn.execute(query, (last_occurrence, next_occurrence, rule_id, user_id)))
