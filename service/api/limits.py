"""The HTTP side of the rate limits (core.rate_limits): who the client is, and their Swagger description."""

from __future__ import annotations

import ipaddress

from flask import request
from flask_restx import Namespace

from .. import db
from ..core import rate_limits
from .common import settings
from .docs import RETRY_AFTER, database_unavailable, refusal

TOO_MANY = "Too many requests from this client or for this account"


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
    rate_limits.enforce(db, settings(), action, client=client_address(), account=account)


def documented(ns: Namespace, *, also: str = "", codes: tuple[str, ...] = ()):
    """Decorator: document the 429 of a rate-limited operation (`also`: its other reasons for one,
    `codes` theirs), and the 503 of the database that counts its requests."""

    def decorate(method):
        method = database_unavailable(ns)(method)
        why = f"{TOO_MANY} (rate_limited){also}; retry after Retry-After seconds"
        return refusal(ns, 429, why, "rate_limited", *codes, headers=RETRY_AFTER)(method)

    return decorate
