"""Failed-login counters per username, shared by every worker and replica of the tenant."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg


def _key(username: str) -> str:
    return username.strip().lower()


def locked_for(conn: psycopg.Connection, *, username: str) -> int:
    """Return how many seconds logins for this username stay refused (0: not locked)."""
    row = conn.execute(
        "SELECT extract(epoch FROM locked_until - now()) AS remaining FROM login_failures"
        " WHERE username_key = %s AND locked_until > now()",
        (_key(username),),
    ).fetchone()
    return math.ceil(row["remaining"]) if row else 0


def record_failure(
    conn: psycopg.Connection, *, username: str, max_failures: int, window: int, lockout: int
) -> None:
    """Count one failure in the current window; lock the username once it reaches the limit."""
    conn.execute(
        """
        INSERT INTO login_failures AS f (username_key, failures, window_started_at, locked_until)
        VALUES (%(key)s, 1, now(), CASE WHEN %(max)s <= 1 THEN now() + %(lockout)s END)
        ON CONFLICT (username_key) DO UPDATE SET
            failures = CASE WHEN f.window_started_at < now() - %(window)s THEN 1
                            ELSE f.failures + 1 END,
            window_started_at = CASE WHEN f.window_started_at < now() - %(window)s THEN now()
                                     ELSE f.window_started_at END,
            locked_until = CASE
                WHEN f.window_started_at >= now() - %(window)s AND f.failures + 1 >= %(max)s
                THEN now() + %(lockout)s
                ELSE f.locked_until END
        """,
        {
            "key": _key(username),
            "max": max_failures,
            "window": timedelta(seconds=window),
            "lockout": timedelta(seconds=lockout),
        },
    )


def clear_failures(conn: psycopg.Connection, *, username: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE username_key = %s", (_key(username),))
