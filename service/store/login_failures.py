"""Login attempts per username, counted in PostgreSQL so every worker and replica agrees.

An attempt is counted *before* its password is checked and the count is cleared by a success,
so parallel guesses cannot slip past the limit between a check and a count.
"""

from __future__ import annotations

import math
from datetime import timedelta

from psycopg import sql

from ..db import Connection, fetch_one

# True when the counted window is over: it is too old, or the lock it led to has run out.
_FRESH_WINDOW = sql.SQL("(f.window_started_at < now() - %(window)s OR coalesce(f.locked_until <= now(), false))")


def begin_attempt(
    conn: Connection, *, username_key: str, max_failures: int, window: int, lockout: int
) -> int:
    """Count one attempt; return how many seconds the username stays locked (0: go ahead).

    A window starts afresh once it is older than `window` seconds or an earlier lock ran out.
    The attempt after `max_failures` unsuccessful ones in a window starts a lock of `lockout`.
    """
    query = sql.SQL(
        """
        INSERT INTO login_failures AS f (username_key, failures, window_started_at)
        VALUES (%(key)s, 1, now())
        ON CONFLICT (username_key) DO UPDATE SET
            failures = CASE WHEN {fresh} THEN 1 ELSE f.failures + 1 END,
            window_started_at = CASE WHEN {fresh} THEN now() ELSE f.window_started_at END,
            locked_until = CASE
                WHEN f.locked_until > now() THEN f.locked_until
                WHEN NOT {fresh} AND f.failures + 1 > %(max)s THEN now() + %(lockout)s
            END
        RETURNING extract(epoch FROM locked_until - now()) AS remaining
        """
    ).format(fresh=_FRESH_WINDOW)
    params = {
        "key": username_key,
        "max": max_failures,
        "window": timedelta(seconds=window),
        "lockout": timedelta(seconds=lockout),
    }
    remaining = fetch_one(conn.execute(query, params))["remaining"]
    return math.ceil(remaining) if remaining and remaining > 0 else 0


def clear_failures(conn: Connection, *, username_key: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE username_key = %s", (username_key,))
