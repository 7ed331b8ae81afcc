"""Tokens: admit a request's token (exactly: a revocation counts from the next request), log one out."""

from __future__ import annotations

import jwt

from ..config import Settings
from ..db import Connection
from ..security import LEEWAY_SECONDS, decode_token
from ..store import revoked_tokens
from .errors import Unauthenticated
from .users import token_revoked, user_gone


def authenticate(conn: Connection, settings: Settings, token: str) -> dict:
    """The claims of a valid, unrevoked token of this tenant whose user exists; `sub` as an int.

    Costs one indexed query: the signature is checked in the process, revocation in PostgreSQL, so
    every worker of every replica refuses a revoked token on the very next request.
    """
    try:
        claims = decode_token(settings, token)
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated("invalid_token", "The token is invalid or expired.") from exc
    claims["sub"] = int(claims["sub"])
    status = revoked_tokens.token_status(conn, user_id=claims["sub"], token_version=claims["ver"], jti=claims["jti"])
    if status == "no_user":
        raise user_gone()
    if status == "revoked":
        raise token_revoked()
    return claims


def log_out(conn: Connection, claims: dict) -> None:
    """Revoke this one token; the user's other tokens stay valid."""
    revoked_tokens.revoke(conn, jti=claims["jti"], valid_until=float(claims["exp"]) + LEEWAY_SECONDS)
