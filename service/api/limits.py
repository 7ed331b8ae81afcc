"""The HTTP side of the rate limits (core.rate_limits): who the client is, and their Swagger description."""

from __future__ import annotations

import ipaddress

from flask import request

from .. import db
from ..core import rate_limits
from .common import settings

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


def enforce(action: str, *, account: str) -> None:
    """Count this request against its client's and its account's limits of `action`; 429 past either."""
    rate_limits.enforce(db.connection(), settings(), action, client=client_address(), account=account)
