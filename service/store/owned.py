"""A user's records of any table described in service/records.py: count, insert, read, change,
delete one by id. Every statement is scoped to its owner: another user's id is simply not found."""

from __future__ import annotations

from psycopg import errors, sql

from ..db import Connection, fetch_one
from ..records import Record
from . import assignments, names, placeholders


class Taken(Exception):
    """A unique constraint refused the insert or the change; `constraint` names it."""

    def __init__(self, constraint: str | None) -> None:
        super().__init__(constraint)
        self.constraint = constraint


def lock_user(conn: Connection, *, user_id: int, share: bool = False) -> None:
    """Hold the user's row until the caller's transaction ends: changes that check a rule over all of
    the user's records of a kind (at most so many, one default) then run one after another, each
    seeing what the previous committed. (FOR NO KEY UPDATE: writes that only check their foreign key
    to the user are not held up.) With `share`, only keep the user from being deleted meanwhile (FOR
    KEY SHARE, as a foreign key's check would), taken before the rows the deletion cascades to."""
    strength = "KEY SHARE" if share else "NO KEY UPDATE"
    conn.execute(sql.SQL("SELECT 1 FROM users WHERE id = %s FOR {}").format(sql.SQL(strength)), (user_id,))


def count(conn: Connection, record: Record, *, user_id: int) -> int:
    query = sql.SQL("SELECT count(*) AS n FROM {table} WHERE user_id = %s").format(table=sql.Identifier(record.table))
    return fetch_one(conn.execute(query, (user_id,)))["n"]


def insert(conn: Connection, record: Record, *, user_id: int, data: dict) -> dict:
    """Insert the user's record of the writable fields in `data` (and any others the caller passes)."""
    fields = [name for name in data if name in record.columns]
    query = sql.SQL("INSERT INTO {table} (user_id, {names}) VALUES (%s, {values}) RETURNING {columns}").format(
        table=sql.Identifier(record.table),
        names=names(fields),
        values=placeholders(len(fields)),
        columns=names(record.columns),
    )
    try:
        return fetch_one(conn.execute(query, [user_id, *(data[name] for name in fields)]))
    except errors.UniqueViolation as exc:
        raise Taken(exc.diag.constraint_name) from exc


def get(conn: Connection, record: Record, *, user_id: int, id: int, lock: bool = False) -> dict | None:
    """The user's record, locked until the caller's transaction ends when `lock`."""
    query = sql.SQL("SELECT {columns} FROM {table} WHERE id = %s AND user_id = %s{lock}").format(
        columns=names(record.columns),
        table=sql.Identifier(record.table),
        lock=sql.SQL(" FOR NO KEY UPDATE" if lock else ""),
    )
    return conn.execute(query, (id, user_id)).fetchone()


def update(conn: Connection, record: Record, *, user_id: int, id: int, changes: dict) -> dict | None:
    """Apply changes (of columns of the record) and stamp updated_at; None when the record is not the user's."""
    fields = [name for name in changes if name in record.columns]
    query = sql.SQL(
        "UPDATE {table} SET {assignments}, updated_at = now() WHERE id = %s AND user_id = %s RETURNING {columns}"
    ).format(table=sql.Identifier(record.table), assignments=assignments(fields), columns=names(record.columns))
    try:
        return conn.execute(query, [*(changes[name] for name in fields), id, user_id]).fetchone()
    except errors.UniqueViolation as exc:
        raise Taken(exc.diag.constraint_name) from exc


def delete(conn: Connection, record: Record, *, user_id: int, id: int) -> bool:
    query = sql.SQL("DELETE FROM {table} WHERE id = %s AND user_id = %s").format(table=sql.Identifier(record.table))
    return conn.execute(query, (id, user_id)).rowcount == 1


def list_all(conn: Connection, record: Record, *, user_id: int) -> list[dict]:
    """The user's records, oldest first."""
    query = sql.SQL("SELECT {columns} FROM {table} WHERE user_id = %s ORDER BY id").format(
        columns=names(record.columns), table=sql.Identifier(record.table)
    )
    return conn.execute(query, (user_id,)).fetchall()
