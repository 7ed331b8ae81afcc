"""The revoked_tokens table (and users' token versions): the one query that admits a token, and logout.

A token is refused when its user is gone, when the user's token version moved past the token's
(a password change), or when its id is in revoked_tokens (a logout). All of it lives in
PostgreSQL, so every worker of every replica sees a revocation on the very next request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from ..db import Connection

TokenStatus = Literal["valid", "revoked", "no_user"]

# A revocation is kept this long past the token's expiry (which already includes the leeway),
# so an app server whose clock runs behind the database's still finds it.
CLOCK_SKEW_MARGIN = timedelta(minutes=5)
# Each logout purges at most this many expired revocations: a bounded cost per request that
# keeps the table at about the number of logged-out tokens still within their lifetime.
PURGE_BATCH = 100


def token_status(conn: Connection, *, user_id: int, token_version: int, jti: str) -> TokenStatus:
    """Whether a verified token may be used: one indexed query, by primary keys only."""
    row = conn.execute(
        "SELECT u.token_version = %(version)s AS current,"
        " EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = %(jti)s) AS revoked"
        " FROM users u WHERE u.id = %(user_id)s",
        {"user_id": user_id, "version": token_version, "jti": jti},
    ).fetchone()
    if row is None:
        return "no_user"
    return "valid" if row["current"] and not row["revoked"] else "revoked"


def revoke(conn: Connection, *, jti: str, valid_until: float) -> None:
    """Revoke one token until `valid_until` (epoch seconds, its exp plus the leeway), and purge
    a batch of revocations that have run out, in the same statement."""
    conn.execute(
        """
        WITH purged AS (
            DELETE FROM revoked_tokens WHERE jti IN (
                SELECT jti FROM revoked_tokens
                WHERE expires_at < now() - %(margin)s
                ORDER BY expires_at
                LIMIT %(batch)s
                FOR UPDATE SKIP LOCKED
            )
        )
        INSERT INTO revoked_tokens (jti, expires_at)
        VALUES (%(jti)s, to_timestamp(%(valid_until)s))
        ON CONFLICT (jti) DO NOTHING
        """,
        {"jti": jti, "valid_until": valid_until, "margin": CLOCK_SKEW_MARGIN, "batch": PURGE_BATCH},
    )
