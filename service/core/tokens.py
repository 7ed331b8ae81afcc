"""Tokens: admit a request's token, a login token (a JWT) or a personal access token (exactly: a
revocation counts from the next request); log a login token out."""

from __future__ import annotations

import jwt

from ..config import Settings
from ..db import Connection
from ..security import LEEWAY_SECONDS, decode_token
from ..store import personal_access_tokens, revoked_tokens
from . import Connections, access_tokens
from .errors import TokenRefused, token_revoked, user_gone

# The scope that may do everything (the other, "read", only GET and HEAD; schemas.TOKEN_SCOPES). A
# login token has it, and may also do what a personal access token never may
# (api.common.login_token_only).
READ_WRITE = "read_write"


def authenticate(db: Connections, settings: Settings, token: str) -> dict:
    """The claims of a valid, unrevoked token of this tenant whose user exists: `sub` (the user's id,
    an int), `scope`, and `pat`, the id of a personal access token (None for a login token).

    A personal access token (`fin_pat_...`) is admitted by one statement on its hash
    (`_personal_token`). For a login token, the signature and claims are checked in the process
    first (a forged or expired token is refused without a connection, even while the database is
    down); then revocation costs one indexed query in PostgreSQL. Either way the database decides on
    every request, so every worker of every replica refuses a revoked or deleted token on the very
    next one.
    """
    if token.startswith(access_tokens.PREFIX):
        return _personal_token(db, token)
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
    return {**claims, "scope": READ_WRITE, "pat": None}


def _personal_token(db: Connections, token: str) -> dict:
    """A personal access token's claims. One statement checks that its hash is stored, that it has
    not expired and that its user exists, and notes its use (store.personal_access_tokens.admit). A
    string of the wrong form is refused without a query."""
    found = None
    if access_tokens.FORM.fullmatch(token):
        found = personal_access_tokens.admit(db.connection(), token_hash=access_tokens.token_hash(token))
    if found is None:
        raise TokenRefused("invalid_token", "The token is invalid, expired or deleted.")
    return {"sub": found["user_id"], "scope": found["scope"], "pat": found["id"]}


def log_out(conn: Connection, claims: dict) -> None:
    """Revoke this one token; the user's other tokens stay valid."""
    revoked_tokens.revoke(conn, jti=claims["jti"], valid_until=float(claims["exp"]) + LEEWAY_SECONDS)
