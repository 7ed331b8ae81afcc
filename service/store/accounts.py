"""The accounts table: a user's money accounts, their balances kept current by triggers (0010)."""

from __future__ import annotations

from typing import NoReturn

from psycopg import errors, sql

from ..db import Connection, fetch_one
from ..records import ACCOUNT
from . import assignments, names, placeholders

COLUMNS = names(ACCOUNT.columns)


class NameTaken(Exception):
    """The user already has an account of this name, in some letter case."""


class InUse(Exception):
    """Transactions or transfers still refer to the account."""


def create_account(conn: Connection, *, user_id: int, data: dict) -> dict:
    fields = [name for name in ACCOUNT.writable if name in data]
    query = sql.SQL("INSERT INTO accounts (user_id, {names}) VALUES (%s, {values}) RETURNING {columns}").format(
        names=names(fields),
        values=placeholders(len(fields)),
        columns=COLUMNS,
    )
    try:
        return fetch_one(conn.execute(query, [user_id, *(data[name] for name in fields)]))
    except errors.UniqueViolation as exc:
        _name_taken_or_raise(exc, data)


def default_account(conn: Connection, *, user_id: int) -> dict:
    """The user's default account (every user has exactly one)."""
    query = sql.SQL("SELECT {columns} FROM accounts WHERE user_id = %s AND is_default").format(columns=COLUMNS)
    return fetch_one(conn.execute(query, (user_id,)))


def accounts_named(conn: Connection, *, user_id: int, names: list[str]) -> dict[str, dict]:
    """The user's accounts of these names in any letter case, by the name as given ({id, archived});
    a name of none is absent. Locks them against deletion (FOR KEY SHARE) until the caller's
    transaction ends, as its inserts referring to them would."""
    query = (
        "SELECT n.name AS given, a.id, a.archived FROM unnest(%s::text[]) AS n (name)"
        " JOIN accounts a ON a.user_id = %s AND lower(a.name) = lower(n.name)"
        " FOR KEY SHARE OF a"
    )
    return {row["given"]: row for row in conn.execute(query, (names, user_id))}


def list_accounts(conn: Connection, *, user_id: int, include_archived: bool) -> list[dict]:
    """The user's accounts, the default first, then by name in any letter case."""
    query = sql.SQL(
        "SELECT {columns} FROM accounts WHERE user_id = %s AND (%s OR NOT archived)"
        " ORDER BY is_default DESC, lower(name), id"
    ).format(columns=COLUMNS)
    return conn.execute(query, (user_id, include_archived)).fetchall()


def update_account(conn: Connection, *, user_id: int, account_id: int, changes: dict) -> dict | None:
    """Apply changes (is_default only ever true: the user's previous default stops being one, in
    the caller's transaction). None when the account is not the user's."""
    if changes.get("is_default"):
        # Both rows locked in id order first, as balance updates lock accounts.
        conn.execute(
            "SELECT 1 FROM accounts WHERE user_id = %s AND (is_default OR id = %s) ORDER BY id FOR NO KEY UPDATE",
            (user_id, account_id),
        )
        conn.execute(
            "UPDATE accounts SET is_default = false WHERE user_id = %s AND is_default AND id <> %s",
            (user_id, account_id),
        )
    fields = [name for name in ACCOUNT.writable if name in changes]
    query = sql.SQL("UPDATE accounts SET {assignments} WHERE id = %s AND user_id = %s RETURNING {columns}").format(
        assignments=assignments(fields),
        columns=COLUMNS,
    )
    try:
        return conn.execute(query, [*(changes[name] for name in fields), account_id, user_id]).fetchone()
    except errors.UniqueViolation as exc:
        _name_taken_or_raise(exc, changes)


def _name_taken_or_raise(exc: errors.UniqueViolation, data: dict) -> NoReturn:
    if exc.diag.constraint_name == "accounts_user_name_key":
        raise NameTaken(data.get("name")) from exc
    raise exc


def delete_account(conn: Connection, *, user_id: int, account_id: int) -> bool:
    """Delete an account nothing refers to, never the default; False when there is no such account
    of the user's that is not the default."""
    try:
        return conn.execute(
            "DELETE FROM accounts WHERE id = %s AND user_id = %s AND NOT is_default", (account_id, user_id)
        ).rowcount == 1
    except errors.ForeignKeyViolation as exc:
        raise InUse(account_id) from exc
