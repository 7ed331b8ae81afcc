"""Users: create, find by username (any case), fetch by id."""

from __future__ import annotations

from psycopg import errors

from ..db import Connection, fetch_one


class UsernameTaken(Exception):
    """Another account already has this username, in some letter case."""


def create_user(conn: Connection, *, username: str, password_hash: str) -> dict:
    try:
        with conn.transaction():
            return fetch_one(
                conn.execute(
                    "INSERT INTO users (username, password_hash) VALUES (%s, %s)"
                    " RETURNING id, username, created_at",
                    (username, password_hash),
                )
            )
    except errors.UniqueViolation as exc:
        raise UsernameTaken(username) from exc


def find_user_by_username(conn: Connection, username: str) -> dict | None:
    return conn.execute(
        "SELECT id, username, password_hash FROM users WHERE lower(username) = lower(%s)",
        (username,),
    ).fetchone()


def get_user(conn: Connection, user_id: int) -> dict | None:
    return conn.execute("SELECT id, username FROM users WHERE id = %s", (user_id,)).fetchone()
