"""Rate-limit counters in PostgreSQL, so every worker and replica of the tenant counts together.

Each (action, subject) has a fixed window that starts with its first hit and lasts `window`
seconds. Counting is one upsert for every counter of a request: one round trip, and race-free,
since concurrent hits of one counter queue on its row. Ended windows are deleted now and then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from ..db import Connection


@dataclass(frozen=True)
class Count:
    action: str
    subject: str
    hits: int
    # Seconds until the window ends (at least 1).
    resets_in: int


def hit(conn: Connection, counters: list[tuple[str, str]], *, window: int) -> list[Count]:
    """Count one hit on each (action, subject) and return every counter's hits in its window.

    The counters are locked in the order given; callers give their kinds in one fixed order
    (client before account), so two requests never wait on each other's rows in a cycle.
    """
    rows = conn.execute(
        """
        INSERT INTO rate_limits AS r (action, subject, hits, window_ends_at)
        SELECT k.action, k.subject, 1, now() + %(window)s
        FROM unnest(%(actions)s::text[], %(subjects)s::text[]) WITH ORDINALITY AS k(action, subject, n)
        ORDER BY k.n
        ON CONFLICT (action, subject) DO UPDATE SET
            hits = CASE WHEN r.window_ends_at <= now() THEN 1 ELSE r.hits + 1 END,
            window_ends_at = CASE
                WHEN r.window_ends_at <= now() THEN excluded.window_ends_at ELSE r.window_ends_at
            END
        RETURNING action, subject, hits, extract(epoch FROM window_ends_at - now()) AS remaining
        """,
        {
            "actions": [action for action, _ in counters],
            "subjects": [subject for _, subject in counters],
            "window": timedelta(seconds=window),
        },
    ).fetchall()
    return [
        Count(row["action"], row["subject"], row["hits"], max(1, math.ceil(row["remaining"])))
        for row in rows
    ]


def purge_expired(conn: Connection, *, login_failure_window: int) -> None:
    """Delete the counters whose window is over, and the login-failure rows that no longer count.

    A login_failures row no longer counts when its lock has run out, or when it has no lock and
    its window is older than `login_failure_window`: the next attempt would start afresh anyway.
    """
    conn.execute(
        """
        WITH ended AS (DELETE FROM rate_limits WHERE window_ends_at <= now())
        DELETE FROM login_failures
        WHERE locked_until <= now()
           OR (locked_until IS NULL AND window_started_at < now() - %(window)s)
        """,
        {"window": timedelta(seconds=login_failure_window)},
    )
