"""Password hashing (argon2id) and the tenant-bound JSON Web Tokens.

A token is HS256-signed with the key of JWT_SECRET and names it by its id (`kid` header,
JWT_KEY_ID). Verification picks the key by that id among JWT_SECRET and JWT_PREVIOUS_KEYS, so
keys rotate without downtime: a token of a key no longer configured is refused. Besides the
registered claims, `ver` carries the user's token version, which a password change bumps.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import DEFAULT_JWT_KEY_ID, Secret, Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti", "iss", "aud"]
LEEWAY_SECONDS = 10
USER_ID = re.compile(r"[1-9][0-9]{0,18}")
# The token ids the service issues are 22 URL-safe characters; any short visible ASCII is allowed.
TOKEN_ID = re.compile(r"[\x21-\x7e]{1,128}")
# Token versions fit the users.token_version column (integer).
MAX_TOKEN_VERSION = 2**31 - 1

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


def issue_token(settings: Settings, user_id: int, token_version: int = 0) -> IssuedToken:
    """Mint a token for one user at their current token version, valid only at this tenant."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "iss": settings.tenant_id,
        "aud": settings.tenant_id,
        "ver": token_version,
    }
    token = jwt.encode(
        claims, settings.jwt_secret.reveal(), algorithm=ALGORITHM, headers={"kid": settings.jwt_key_id}
    )
    return IssuedToken(token, settings.token_ttl_seconds)


def verification_keys(settings: Settings) -> dict[str, Secret]:
    """The keys a token may be signed with, by key id: the signing key and the previous ones."""
    return {settings.jwt_key_id: settings.jwt_secret, **dict(settings.jwt_previous_keys)}


def decode_token(settings: Settings, token: str) -> dict:
    """Return the claims of a valid token of this tenant; raise jwt.InvalidTokenError otherwise.

    Whether the token was revoked is the database's to say (core.tokens, store.revoked_tokens); `ver` is always
    in the claims returned (0 for a token issued before versions existed).
    """
    claims = _verified_claims(settings, token)
    if claims["exp"] <= time.time() - LEEWAY_SECONDS:
        raise jwt.ExpiredSignatureError("Signature has expired")
    return dict(claims)


# A client sends the same token with every request: its signature and claims are checked once per
# process and remembered (by the whole token, so any other string is checked afresh); only the
# expiry, which changes with the clock, is checked every time. Failures are not remembered.
@functools.lru_cache(maxsize=1024)
def _verified_claims(settings: Settings, token: str) -> dict:
    # The key id picks the key; HS256 alone is accepted whatever the header's alg says.
    kid = jwt.get_unverified_header(token).get("kid", DEFAULT_JWT_KEY_ID)
    key = verification_keys(settings).get(kid) if isinstance(kid, str) else None
    if key is None:
        raise jwt.InvalidTokenError("The token's signing key is unknown or was retired.")
    claims = jwt.decode(
        token,
        key.reveal(),
        algorithms=[ALGORITHM],
        audience=settings.tenant_id,
        issuer=settings.tenant_id,
        leeway=LEEWAY_SECONDS,
        options={"require": REQUIRED_CLAIMS, "strict_aud": True},
    )
    for name in ("iat", "exp"):
        if not _is_number(claims[name]):
            raise jwt.InvalidTokenError(f"The token's {name} is not a NumericDate.")
    if claims["iat"] > time.time() + LEEWAY_SECONDS:
        raise jwt.ImmatureSignatureError("The token is issued in the future.")
    if not isinstance(claims["jti"], str) or not TOKEN_ID.fullmatch(claims["jti"]):
        raise jwt.InvalidTokenError("The token's id is not valid.")
    version = claims.setdefault("ver", 0)
    if type(version) is not int or not 0 <= version <= MAX_TOKEN_VERSION:
        raise jwt.InvalidTokenError("The token's version is not valid.")
    # Only the service's own form (str of a positive id): isdigit() also passes "²" and "١".
    if not USER_ID.fullmatch(str(claims["sub"])):
        raise jwt.InvalidTokenError("The token's subject is not a user id.")
    return claims


def _is_number(value: object) -> bool:
    """A JSON number that is a finite time (not a string, a boolean or NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
