"""Personal access tokens: long-lived tokens a user makes for scripts, each with a scope and an expiry.

A token is `fin_pat_` and 32 random bytes in base64url (256 bits). It is shown once, in the answer
to its creation; the database keeps only its SHA-256, which is all a request's admission needs
(core.tokens.authenticate). A token is refused from the request after its deletion on, by every
worker and replica, since admission reads the database every time.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ..db import Connection
from ..records import PERSONAL_ACCESS_TOKEN
from ..store import owned, personal_access_tokens
from . import quotas
from .errors import found

PREFIX = "fin_pat_"
# secrets.token_urlsafe(32): 32 bytes as 43 base64url characters, without padding.
_RANDOM_BYTES = 32
FORM = re.compile(rf"^{PREFIX}[A-Za-z0-9_-]{{43}}$")
# The most tokens one user may have (GET /tokens answers them all).
MAX_TOKENS = 50


def token_hash(token: str) -> bytes:
    """What the database keeps of a token: the SHA-256 of the whole string."""
    return hashlib.sha256(token.encode()).digest()


def create(conn: Connection, *, user_id: int, name: str, scope: str, expires_in_days: int) -> dict:
    """A new token of the user's, with its secret under `token` (never stored, never shown again).

    The user's expired tokens are deleted first, so they never count toward the cap."""
    token = PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    with conn.transaction():
        # The user's row first, as DELETE /me takes it before the tokens it cascades to.
        owned.lock_user(conn, user_id=user_id)
        personal_access_tokens.purge_expired(conn, user_id=user_id)
        quotas.make_room(
            conn, PERSONAL_ACCESS_TOKEN, user_id=user_id, cap=MAX_TOKENS, code="too_many_tokens",
            what="personal access tokens",
        )
        row = personal_access_tokens.insert(
            conn, user_id=user_id, name=name, scope=scope, token_hash=token_hash(token), days=expires_in_days
        )
    return {**row, "token": token}


def list_all(conn: Connection, *, user_id: int) -> list[dict]:
    """The user's tokens, oldest first, expired ones included; never a secret or its hash."""
    return owned.list_all(conn, PERSONAL_ACCESS_TOKEN, user_id=user_id)


def delete(conn: Connection, *, user_id: int, token_id: int) -> None:
    found(owned.delete(conn, PERSONAL_ACCESS_TOKEN, user_id=user_id, id=token_id), "token")
