"""Rate limits of login, register and import, per client address and per account.

Counted in PostgreSQL (store.rate_limits), so every worker and replica of the tenant agrees. Call
`enforce` before the work a limit protects (hashing a password, reading a CSV): a limited request
is refused with Throttled and changes nothing else.
"""

from __future__ import annotations

import time

from ..config import Settings
from ..store import rate_limits
from . import Connections
from .errors import Throttled

# How often each worker process deletes ended windows (and spent login failures): often enough that
# the tables hold little more than the live windows, rarely enough to cost nothing per request.
PURGE_INTERVAL_SECONDS = 60.0
_next_purge = 0.0

MESSAGES = {
    "client": "Too many {action} requests from this client; retry after the time in Retry-After.",
    "account": "Too many {action} requests for this account; retry after the time in Retry-After.",
}


def account_key(username: str) -> str:
    """A username as login_failures and the unique index compare it: trimmed, any letter case."""
    return username.strip().lower()


def enforce(db: Connections, settings: Settings, action: str, *, client: str, account: str) -> None:
    """Count this request against its client's and its account's limits; raise Throttled past either.

    One round trip counts both (none when both limits are off). `action` is 'login', 'register' or
    'import'.
    """
    config = settings.rate_limits
    scopes = [("client", client), ("account", account)]
    counters = [(f"{action}:{scope}", subject) for scope, subject in scopes if config.limit(action, scope) > 0]
    counts = rate_limits.hit(db.connection(), counters, window=config.window_seconds) if counters else []
    _purge_now_and_then(db, settings)
    by_scope = {count.action.partition(":")[2]: count for count in counts}
    exceeded = {scope: count for scope, count in by_scope.items() if count.hits > config.limit(action, scope)}
    if exceeded:
        # The client waits until every limit it is past resets; the message names the client's first.
        scope = "client" if "client" in exceeded else "account"
        raise Throttled(
            "rate_limited",
            MESSAGES[scope].format(action=action),
            retry_after=max(count.resets_in for count in exceeded.values()),
        )


def _purge_now_and_then(db: Connections, settings: Settings) -> None:
    global _next_purge
    now = time.monotonic()
    if now < _next_purge:
        return
    _next_purge = now + PURGE_INTERVAL_SECONDS
    rate_limits.purge_expired(db.connection(), login_failure_window=settings.login_failure_window_seconds)
