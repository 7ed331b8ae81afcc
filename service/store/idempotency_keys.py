"""The idempotency_keys table: the first result of a keyed create, kept for its retries."""

from __future__ import annotations

from datetime import timedelta

from psycopg.types.json import Jsonb

from ..db import Connection

# Keys are honoured for at least this long after their first use.
KEY_LIFETIME = timedelta(hours=24)


def claim(conn: Connection, *, user_id: int, key: str, operation: str, request_hash: str) -> dict | None:
    """Reserve the key for this request, or return the earlier request's operation, request_hash
    and result.

    Runs inside the caller's transaction: a concurrent request with the same key blocks on the
    row until this one commits (and then sees its result) or rolls back (and then claims it).
    """
    conn.execute(
        "DELETE FROM idempotency_keys WHERE user_id = %s AND created_at < now() - %s",
        (user_id, KEY_LIFETIME),
    )
    claimed = conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, operation, request_hash) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (user_id, key) DO NOTHING RETURNING key",
        (user_id, key, operation, request_hash),
    ).fetchone()
    if claimed:
        return None
    return conn.execute(
        "SELECT operation, request_hash, body AS result FROM idempotency_keys WHERE user_id = %s AND key = %s",
        (user_id, key),
    ).fetchone()


def save_result(conn: Connection, *, user_id: int, key: str, result: dict) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET body = %s WHERE user_id = %s AND key = %s",
        (Jsonb(result), user_id, key),
    )
