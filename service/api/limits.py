"""Rate limits of login, register and import, per client address and per account.

Counted in PostgreSQL (store.rate_limits), so every worker and replica of the tenant agrees. A
handler calls `enforce` before any work the limit protects (hashing a password, reading a CSV):
a limited request is answered 429 with Retry-After and changes nothing else.
"""

from __future__ import annotations

import ipaddress
import time

from flask import request

from .. import db
from ..errors import ApiError
from ..store import rate_limits
from .common import settings

# How often each worker process deletes ended windows (and spent login failures): often enough that
# the tables hold little more than the live windows, rarely enough to cost nothing per request.
PURGE_INTERVAL_SECONDS = 60.0
_next_purge = 0.0

MESSAGES = {
    "client": "Too many {action} requests from this client; retry after the time in Retry-After.",
    "account": "Too many {action} requests for this account; retry after the time in Retry-After.",
}
# The Swagger description of the 429 these limits answer.
DOCUMENTED_429 = "Too many requests from this client or for this account; retry after Retry-After seconds"
RETRY_AFTER_HEADER = {"Retry-After": {"type": "integer", "description": "Seconds to wait before retrying"}}


def client_address() -> str:
    """The client's address: the TCP peer, or the X-Forwarded-For entry TRUSTED_PROXY_HOPS names.

    An IPv6 client counts as its /64 network, the least a single subscriber is usually given, so
    changing the low bits of its address does not escape the limit.
    """
    raw = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(raw.split("%")[0])
    except ValueError:
        return raw or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def account_key(username: str) -> str:
    """A username as login_failures and the unique index compare it: trimmed, any letter case."""
    return username.strip().lower()


def enforce(action: str, *, account: str) -> None:
    """Count this request against its client's and its account's limits; raise 429 past either.

    One round trip counts both. `action` is 'login', 'register' or 'import'.
    """
    config = settings().rate_limits
    scopes = [("client", client_address()), ("account", account)]
    counters = [(f"{action}:{scope}", subject) for scope, subject in scopes if config.limit(action, scope) > 0]
    counts = rate_limits.hit(db.connection(), counters, window=config.window_seconds) if counters else []
    _purge_now_and_then()
    by_scope = {count.action.partition(":")[2]: count for count in counts}
    exceeded = {scope: count for scope, count in by_scope.items() if count.hits > config.limit(action, scope)}
    if exceeded:
        # The client waits until every limit it is past resets; the message names the client's first.
        scope = "client" if "client" in exceeded else "account"
        raise ApiError(
            429, "rate_limited",
            MESSAGES[scope].format(action=action),
            headers={"Retry-After": str(max(count.resets_in for count in exceeded.values()))},
        )


def _purge_now_and_then() -> None:
    global _next_purge
    now = time.monotonic()
    if now < _next_purge:
        return
    _next_purge = now + PURGE_INTERVAL_SECONDS
    rate_limits.purge_expired(db.connection(), login_failure_window=settings().login_failure_window_seconds)
