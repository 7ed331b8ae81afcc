"""The users table: create, find by username (any case), read credentials, change the password, delete."""

from __future__ import annotations

from psycopg import errors

from ..db import Connection, fetch_one


class UsernameTaken(Exception):
    """Another account already has this username, in some letter case."""


def create_user(conn: Connection, *, username: str, password_hash: str) -> dict:
    try:
        return fetch_one(
            conn.execute(
                "INSERT INTO users (username, password_hash) VALUES (%s, %s) RETURNING id, username, created_at",
                (username, password_hash),
            )
        )
    except errors.UniqueViolation as exc:
        raise UsernameTaken(username) from exc


def find_user_by_username(conn: Connection, username: str) -> dict | None:
    return conn.execute(
        "SELECT id, username, password_hash, token_version FROM users WHERE lower(username) = lower(%s)",
        (username,),
    ).fetchone()


def get_credentials(conn: Connection, user_id: int) -> dict | None:
    """The user's username, password hash and token version (never to be shown to anyone)."""
    return conn.execute(
        "SELECT id, username, password_hash, token_version FROM users WHERE id = %s", (user_id,)
    ).fetchone()


def change_password(
    conn: Connection, *, user_id: int, token_version: int, old_hash: str, new_hash: str
) -> int | None:
    """Set a new password hash and bump the token version, which revokes every earlier token.

    Applies only if neither the hash nor the version changed since they were read (a concurrent
    change wins, and this one is refused); returns the new version, or None if refused.
    """
    row = conn.execute(
        "UPDATE users SET password_hash = %(new)s, token_version = token_version + 1"
        " WHERE id = %(id)s AND token_version = %(version)s AND password_hash = %(old)s"
        " RETURNING token_version",
        {"id": user_id, "version": token_version, "old": old_hash, "new": new_hash},
    ).fetchone()
    return None if row is None else row["token_version"]


def delete_user(conn: Connection, *, user_id: int, token_version: int) -> bool:
    """Delete the user, unless their tokens were revoked meanwhile; their transactions and
    idempotency keys go with them (ON DELETE CASCADE), their daily and monthly totals too
    (trigger users_totals)."""
    return (
        conn.execute(
            "DELETE FROM users WHERE id = %s AND token_version = %s", (user_id, token_version)
        ).rowcount
        == 1
    )
