"""Password hashing (argon2id) and the tenant-bound JSON Web Tokens."""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti", "iss", "aud"]
LEEWAY_SECONDS = 10
USER_ID = re.compile(r"[1-9][0-9]{0,18}")

_hasher = PasswordHasher()  # argon2id with the RFC 9106 low-memory parameters: 64 MiB per hash
# At most this many hashes at once per process, so a burst of logins on every thread cannot take
# threads x 64 MiB (more than the container's memory limit); the others wait their turn.
MAX_CONCURRENT_HASHES = 2
_hashing = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)
# Verified against when the username is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant work whether or not the account exists."""
    try:
        with _hashing:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def issue_token(settings: Settings, user_id: int) -> IssuedToken:
    """Mint a token for one user, valid only at this tenant."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "iss": settings.tenant_id,
        "aud": settings.tenant_id,
    }
    token = jwt.encode(claims, settings.jwt_secret.reveal(), algorithm=ALGORITHM)
    return IssuedToken(token, settings.token_ttl_seconds)


def decode_token(settings: Settings, token: str) -> dict:
    """Return the claims of a valid token of this tenant; raise jwt.InvalidTokenError otherwise."""
    claims = _verified_claims(settings, token)
    if claims["exp"] <= time.time() - LEEWAY_SECONDS:
        raise jwt.ExpiredSignatureError("Signature has expired")
    return dict(claims)


# A client sends the same token with every request: its signature and claims are checked once per
# process and remembered (by the whole token, so any other string is checked afresh); only the
# expiry, which changes with the clock, is checked every time. Failures are not remembered.
@functools.lru_cache(maxsize=1024)
def _verified_claims(settings: Settings, token: str) -> dict:
    claims = jwt.decode(
        token,
        settings.jwt_secret.reveal(),
        algorithms=[ALGORITHM],
        audience=settings.tenant_id,
        issuer=settings.tenant_id,
        leeway=LEEWAY_SECONDS,
        options={"require": REQUIRED_CLAIMS, "strict_aud": True},
    )
    if claims["iat"] > time.time() + LEEWAY_SECONDS:
        raise jwt.ImmatureSignatureError("The token is issued in the future.")
    # Only the service's own form (str of a positive id): isdigit() also passes "²" and "١".
    if not USER_ID.fullmatch(str(claims["sub"])):
        raise jwt.InvalidTokenError("The token's subject is not a user id.")
    return claims
