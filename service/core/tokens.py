"""Tokens: admit a request's token (exactly: a revocation counts from the next request), log one out."""

from __future__ import annotations

import jwt

from ..config import Settings
from ..db import Connection
from ..security import LEEWAY_SECONDS, decode_token
from ..store import revoked_tokens
from . import Connections
from .errors import TokenRefused, token_revoked, user_gone


def authenticate(db: Connections, settings: Settings, token: str) -> dict:
    """The claims of a valid, unrevoked token of this tenant whose user exists; `sub` as an int.

    The signature and claims are checked in the process first (a forged or expired token is refused
    without a connection, even while the database is down); then revocation costs one indexed query
    in PostgreSQL, so every worker of every replica refuses a revoked token on the very next request.
    """
    try:
        claims = decode_token(settings, token)
    except jwt.InvalidTokenError as exc:
        raise TokenRefused("invalid_token", "The token is invalid or expired.") from exc
    claims["sub"] = int(claims["sub"])
    status = revoked_tokens.token_status(
        db.connection(), user_id=claims["sub"], token_version=claims["ver"], jti=claims["jti"]
    )
    if status == "no_user":
        raise user_gone()
    if status == "revoked":
        raise token_revoked()
    return claims


def log_out(conn: Connection, claims: dict) -> None:
    """Revoke this one token; the user's other tokens stay valid."""
    revoked_tokens.revoke(conn, jti=claims["jti"], valid_until=float(claims["exp"]) + LEEWAY_SECONDS)
