"""The personal_access_tokens table's own statements: make a token, purge a user's expired ones, and
the one statement that admits a request's token. (Count, list, delete: store.owned.)

Only the SHA-256 of a token is stored (migration 0012 says why a fast hash is right); no read
selects it.
"""

from __future__ import annotations

from datetime import timedelta

from psycopg import sql

from ..db import Connection, fetch_one
from ..records import PERSONAL_ACCESS_TOKEN
from . import names

# last_used_at is written at most this often per token: a token used by every request of a busy
# script costs one row write a minute, not one per request.
LAST_USED_PRECISION = timedelta(minutes=1)


def insert(conn: Connection, *, user_id: int, name: str, scope: str, token_hash: bytes, days: int) -> dict:
    """The user's new token, expiring `days` days from now (the database's now)."""
    query = sql.SQL(
        "INSERT INTO personal_access_tokens (user_id, name, scope, token_hash, expires_at)"
        " VALUES (%s, %s, %s, %s, now() + make_interval(days => %s)) RETURNING {columns}"
    ).format(columns=names(PERSONAL_ACCESS_TOKEN.columns))
    return fetch_one(conn.execute(query, (user_id, name, scope, token_hash, days)))


def purge_expired(conn: Connection, *, user_id: int) -> None:
    """Delete the user's expired tokens (at most the cap of them: each create runs this first)."""
    conn.execute("DELETE FROM personal_access_tokens WHERE user_id = %s AND expires_at <= now()", (user_id,))


def admit(conn: Connection, *, token_hash: bytes) -> dict | None:
    """The token with this hash (`id`, `user_id`, `scope`) if it has not expired and its user exists,
    else None; in the same statement, its last_used_at becomes now unless it was set within the
    last minute. One round trip: an index probe of the unique hash, and the user's primary key.

    The UPDATE re-checks last_used_at on the row it writes, so of two requests at once only the
    first writes it; it never changes user_id, so it takes no lock on the user's row.
    """
    return conn.execute(
        """
        WITH found AS (
            SELECT t.id, t.user_id, t.scope
            FROM personal_access_tokens t
            JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = %(hash)s AND t.expires_at > now()
        ), touched AS (
            UPDATE personal_access_tokens t SET last_used_at = now()
            FROM found f
            WHERE t.id = f.id AND (t.last_used_at IS NULL OR t.last_used_at <= now() - %(precision)s)
        )
        SELECT id, user_id, scope FROM found
        """,
        {"hash": token_hash, "precision": LAST_USED_PRECISION},
    ).fetchone()
