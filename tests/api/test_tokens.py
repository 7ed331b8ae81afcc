"""Tokens and accounts: claim rules, key ids and rotation, revocation (logout, password change,
account deletion) seen by every worker and replica, since the database decides on every request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import localstack
import pytest
from psycopg import sql

from service.config import DEFAULT_JWT_KEY_ID, ConfigError, Secret, Settings
from service.security import LEEWAY_SECONDS, _verified_claims, decode_token, issue_token
from service.store.revoked_tokens import CLOCK_SKEW_MARGIN
from tests.utils import (
    PASSWORD,
    assert_error,
    bearer,
    count_transactions,
    create,
    insert_user,
    login,
    mint_token,
    register,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "Zq8#v!Lr2@Wm9$Tn4%Yp7^Kd1&Hs6*Bx"
OTHER_SECRET = "pX3&nB7!qL9@wR2#tY6$vM4%kD8^hJ5*"
# `openssl rand -base64 33`: base64 with its padding, so "=" appears inside the value.
PADDED_SECRET = "c2VjcmV0LWtleS1ieXRlcy1mb3Itcm90YXRpb24tMTIzNA=="
NEW_PASSWORD = "another-password@456"
WRONG_PASSWORD = "not-the-password"
VALID_ENV = {
    "TENANT_ID": "tenant1",
    "DATABASE_URL": "postgresql://tenant1_app:db-password@127.0.0.1:5432/tenant1",
    "JWT_SECRET": GOOD_SECRET,
}


def _settings(**changes) -> Settings:
    fields = {
        "tenant_id": "tenant1",
        "database_url": Secret("postgresql://u:p@127.0.0.1/db"),
        "jwt_secret": Secret(GOOD_SECRET),
        **changes,
    }
    return Settings(**fields)


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {
        "sub": "7", "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex, "iss": "tenant1", "aud": "tenant1",
        **changes,
    }
    return {name: value for name, value in claims.items() if value is not ...}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


HMACS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _sign(claims: dict, secret: str = GOOD_SECRET, *, kid: object = ..., algorithm: str = "HS256") -> str:
    """Sign by hand, as PyJWT would, but with any claims and kid (PyJWT refuses to write some)."""
    header = {"alg": algorithm, "typ": "JWT", **({} if kid is ... else {"kid": kid})}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), HMACS[algorithm]).digest()
    return f"{signing_input}.{_b64(signature)}"


def _kid(token: str) -> object:
    return jwt.get_unverified_header(token).get("kid")


def _unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# --- Every claim rule, without a server -----------------------------------------------------


def test_issued_token_names_its_key_and_carries_every_claim():
    settings = _settings(jwt_key_id="2026-01", token_ttl_seconds=600)
    issued = issue_token(settings, 42, 3)
    assert issued.expires_in == 600
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "HS256"
    assert header["kid"] == "2026-01"
    claims = decode_token(settings, issued.token)
    assert set(claims) == {"sub", "iat", "exp", "jti", "iss", "aud", "ver"}
    assert (claims["sub"], claims["iss"], claims["aud"], claims["ver"]) == ("42", "tenant1", "tenant1", 3)
    assert isinstance(claims["aud"], str)
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 60


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti"])
@pytest.mark.parametrize("how", ["missing", "null"])
def test_every_registered_claim_is_required(claim, how):
    token = _sign(_claims(**{claim: ... if how == "missing" else None}))
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(_settings(), token)


@pytest.mark.parametrize(
    "aud",
    [["tenant1", "tenant2"], ["tenant2", "tenant1"], ["tenant1"], ["tenant1", "tenant1"], "tenant2", "Tenant1",
     "tenant", "tenant11", ""],
    ids=["two-tenants", "two-tenants-reversed", "list-of-one", "list-repeated", "other", "other-case", "prefix",
         "longer", "empty"],
)
def test_audience_must_be_exactly_this_tenant_as_a_string(aud):
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(_settings(), _sign(_claims(aud=aud)))


@pytest.mark.parametrize(
    "iss",
    ["tenant", "enant1", "tenant11", "Tenant1", "", ["tenant1"], "tenant1 "],
    ids=["prefix", "suffix", "longer", "other-case", "empty", "list", "trailing-space"],
)
def test_issuer_must_match_exactly_never_partially(iss):
    """PyJWT 2.10.0 accepted a partial issuer match (CVE-2024-53861); the pin keeps us past it."""
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(_settings(), _sign(_claims(iss=iss)))


def test_iat_in_the_future_is_refused_beyond_the_leeway_only():
    now = int(time.time())
    far = _sign(_claims(iat=now + LEEWAY_SECONDS + 60, exp=now + 3600))
    with pytest.raises(jwt.ImmatureSignatureError):
        decode_token(_settings(), far)
    near = _sign(_claims(iat=now + LEEWAY_SECONDS // 2, exp=now + 3600))
    assert decode_token(_settings(), near)["sub"] == "7"


def test_expiry_has_the_same_small_leeway():
    now = int(time.time())
    assert decode_token(_settings(), _sign(_claims(iat=now - 3600, exp=now - LEEWAY_SECONDS // 2)))
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_token(_settings(), _sign(_claims(iat=now - 3600, exp=now - LEEWAY_SECONDS - 60)))


def test_expiry_is_checked_on_every_call_even_once_the_token_is_remembered(monkeypatch):
    settings = _settings(token_ttl_seconds=600)
    token = issue_token(settings, 7).token
    decode_token(settings, token)
    hits = _verified_claims.cache_info().hits
    assert decode_token(settings, token)["sub"] == "7"
    assert _verified_claims.cache_info().hits == hits + 1, "the second check should come from the cache"
    later = time.time() + 600 + LEEWAY_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_token(settings, token)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_hs256_is_accepted(algorithm):
    with pytest.raises(jwt.InvalidAlgorithmError):
        decode_token(_settings(), _sign(_claims(), algorithm=algorithm))


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": "1700000000"}, {"exp": "9999999999"}, {"iat": True}, {"exp": [9999999999]},
        {"jti": ""}, {"jti": 12345}, {"jti": "x" * 129}, {"jti": "a\u0000b"}, {"jti": "caf\u00e9"},
        {"ver": -1}, {"ver": "0"}, {"ver": True}, {"ver": 1.5}, {"ver": 2**31}, {"ver": None},
    ],
    ids=[
        "iat-string", "exp-string", "iat-boolean", "exp-list", "jti-empty", "jti-number", "jti-long", "jti-nul",
        "jti-non-ascii", "ver-negative", "ver-string", "ver-boolean", "ver-fraction", "ver-huge", "ver-null",
    ],
)
def test_claims_of_the_wrong_type_are_refused_not_crashed_on(changes):
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(_settings(), _sign(_claims(**changes)))


def test_token_without_a_version_is_version_0():
    """Tokens issued before versions existed keep working until their user changes password."""
    assert decode_token(_settings(), _sign(_claims()))["ver"] == 0


# --- Key ids ----------------------------------------------------------------------------------


def test_kid_selects_the_key_among_the_signing_key_and_the_previous_ones():
    settings = _settings(jwt_key_id="2", jwt_previous_keys=(("1", Secret(OTHER_SECRET)),))
    assert decode_token(settings, _sign(_claims(sub="1"), OTHER_SECRET, kid="1"))["sub"] == "1"
    assert decode_token(settings, _sign(_claims(sub="2"), GOOD_SECRET, kid="2"))["sub"] == "2"
    # The right kid is not enough: the signature must be of that very key.
    for secret, kid in ((GOOD_SECRET, "1"), (OTHER_SECRET, "2")):
        with pytest.raises(jwt.InvalidSignatureError):
            decode_token(settings, _sign(_claims(), secret, kid=kid))


@pytest.mark.parametrize("kid", ["3", "", "1 ", None, 1, ["1"]], ids=["unknown", "empty", "padded", "null",
                                                                     "number", "list"])
def test_unknown_or_malformed_kid_is_refused(kid):
    settings = _settings(jwt_previous_keys=(("2", Secret(OTHER_SECRET)),))
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(settings, _sign(_claims(), GOOD_SECRET, kid=kid))


def test_token_without_kid_is_taken_as_signed_by_the_default_key_id():
    legacy = _sign(_claims())  # as issued before key ids existed, with the key of the default kid
    assert decode_token(_settings(), legacy)["sub"] == "7"
    # Rotated: the old key is kept under the default kid, so the legacy token still verifies.
    rotated = _settings(jwt_secret=Secret(OTHER_SECRET), jwt_key_id="2",
                        jwt_previous_keys=((DEFAULT_JWT_KEY_ID, Secret(GOOD_SECRET)),))
    assert decode_token(rotated, legacy)["sub"] == "7"
    # Once the default kid's key is removed, the legacy token is refused.
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(_settings(jwt_secret=Secret(OTHER_SECRET), jwt_key_id="2"), legacy)


def test_token_of_a_removed_key_is_refused_even_after_it_was_verified_and_cached():
    old_key = ("1", Secret(GOOD_SECRET))
    during = _settings(jwt_secret=Secret(OTHER_SECRET), jwt_key_id="2", jwt_previous_keys=(old_key,))
    token = _sign(_claims(), GOOD_SECRET, kid="1")
    assert decode_token(during, token)["sub"] == "7"
    after = _settings(jwt_secret=Secret(OTHER_SECRET), jwt_key_id="2")
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(after, token)


def test_settings_with_previous_keys_stay_hashable_for_the_claims_cache():
    settings = Settings.from_env({**VALID_ENV, "JWT_PREVIOUS_KEYS": f"old={OTHER_SECRET}"})
    assert hash(settings) == hash(settings)
    token = issue_token(settings, 5).token
    decode_token(settings, token)
    hits = _verified_claims.cache_info().hits
    decode_token(settings, token)
    assert _verified_claims.cache_info().hits == hits + 1


# --- Key settings ---------------------------------------------------------------------------


def _problem(**changes: str) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID_ENV, **changes})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_key_settings_default_to_jwt_secret_alone_under_kid_1():
    settings = Settings.from_env(VALID_ENV)
    assert settings.jwt_key_id == DEFAULT_JWT_KEY_ID == "1"
    assert settings.jwt_previous_keys == ()


def test_previous_keys_are_kid_secret_pairs_separated_by_commas():
    settings = Settings.from_env(
        {**VALID_ENV, "JWT_KEY_ID": "2026-06", "JWT_PREVIOUS_KEYS": f" 2026-01={OTHER_SECRET} , old_1={PADDED_SECRET},"}
    )
    assert settings.jwt_key_id == "2026-06"
    assert [(kid, key.reveal()) for kid, key in settings.jwt_previous_keys] == [
        ("2026-01", OTHER_SECRET), ("old_1", PADDED_SECRET),
    ]
    for shown in (repr(settings), str(settings)):
        assert OTHER_SECRET not in shown and PADDED_SECRET not in shown


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (f"old={OTHER_SECRET[:31]}", "32 bytes"),
        ("old=change-me-to-a-long-random-string-0123456789", "placeholder"),
        ("old=", "missing"),
        (OTHER_SECRET, "kid=secret"),
        (f"bad kid={OTHER_SECRET}", "kid=secret"),
        (f"={OTHER_SECRET}", "kid=secret"),
        (f"old={OTHER_SECRET},old={PADDED_SECRET}", "repeats"),
        (f"1={OTHER_SECRET}", "repeats"),
    ],
    ids=["short", "placeholder", "empty-secret", "no-kid", "kid-with-space", "empty-kid", "duplicate-kid",
         "kid-of-jwt-secret"],
)
def test_bad_previous_key_is_refused_in_one_line_that_never_shows_a_secret(value, words):
    message = _problem(JWT_PREVIOUS_KEYS=value)
    assert "JWT_PREVIOUS_KEYS" in message
    assert words in message
    for secret in (OTHER_SECRET, OTHER_SECRET[:31], PADDED_SECRET, "change-me-to-a-long-random-string"):
        assert secret not in message


@pytest.mark.parametrize("kid", ["has space", "a/b", "x" * 65, "caf\u00e9", "k\nx", "a=b"])
def test_bad_jwt_key_id_is_refused(kid):
    assert "JWT_KEY_ID" in _problem(JWT_KEY_ID=kid)


def test_development_mode_accepts_a_short_previous_key_but_never_an_empty_one():
    env = {**VALID_ENV, "APP_ENV": "development"}
    assert Settings.from_env({**env, "JWT_PREVIOUS_KEYS": "old=short"}).jwt_previous_keys[0][0] == "old"
    with pytest.raises(ConfigError):
        Settings.from_env({**env, "JWT_PREVIOUS_KEYS": "old="})


def test_check_config_refuses_a_bad_previous_key_with_one_clear_line():
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("JWT_", "APP_ENV"))},
        **VALID_ENV,
        "JWT_PREVIOUS_KEYS": f"old={OTHER_SECRET[:20]}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "service", "check-config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert "JWT_PREVIOUS_KEYS" in lines[0]
    assert OTHER_SECRET[:20] not in result.stderr + result.stdout


# --- Over HTTP: login, logout --------------------------------------------------------------------


@pytest.fixture
def replica(stack, servers):
    """A second gunicorn of tenant1 on the same database, as another replica would be."""
    server = stack.start_server("tenant1", {**servers["tenant1"].env, "WEB_CONCURRENCY": "2"}, localstack.free_port())
    yield server
    server.stop()


def _fresh_get(url: str, token: str, path: str = "/transactions") -> httpx.Response:
    """GET on a new connection, so successive calls can land on different gunicorn workers."""
    headers = {**bearer(token), "Connection": "close"}
    return httpx.get(f"{url}{path}", headers=headers, timeout=30)


def _assert_everywhere(url: str, token: str, status: int, times: int = 12) -> None:
    """Many requests on fresh connections: with 4 workers, every one of them answers some."""
    for _ in range(times):
        response = _fresh_get(url, token)
        assert response.status_code == status, response.text
        if status == 401:
            assert_error(response, 401, "invalid_token")
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


def _every_endpoint(client: httpx.Client, token: str) -> list[httpx.Response]:
    headers = bearer(token)
    return [
        client.get("/transactions", headers=headers),
        client.post("/transactions", json={"type": "income", "amount": "1.00"}, headers=headers),
        client.post("/transaction", json={"type": "income", "amount": 1}, headers={"x-access-token": token}),
        client.get("/transactions/1", headers=headers),
        client.patch("/transactions/1", json={"amount": "2.00"}, headers=headers),
        client.delete("/transactions/1", headers=headers),
        client.get("/transactions/export", headers=headers),
        client.post("/transactions/import", content=b"type,amount\nincome,1.00\n",
                    headers={**headers, "Content-Type": "text/csv"}),
        client.get("/accounts", headers=headers),
        client.post("/accounts", json={"name": "Cash", "kind": "cash"}, headers=headers),
        client.get("/accounts/1", headers=headers),
        client.patch("/accounts/1", json={"name": "Renamed"}, headers=headers),
        client.delete("/accounts/1", headers=headers),
        client.get("/transfers", headers=headers),
        client.post("/transfers", json={"from_account_id": 1, "to_account_id": 2, "amount": "1.00"}, headers=headers),
        client.get("/transfers/1", headers=headers),
        client.patch("/transfers/1", json={"amount": "2.00"}, headers=headers),
        client.delete("/transfers/1", headers=headers),
        client.get("/categories", headers=headers),
        client.get("/analytics", headers=headers),
        client.get("/tokens", headers=headers),
        client.post("/tokens", json={"name": "script", "scope": "read"}, headers=headers),
        client.delete("/tokens/1", headers=headers),
        client.post("/logout", headers=headers),
        client.post("/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=headers),
        client.request("DELETE", "/me", json={"password": PASSWORD}, headers=headers),
    ]


def _assert_refused_everywhere(client: httpx.Client, token: str) -> None:
    for response in _every_endpoint(client, token):
        assert_error(response, 401, "invalid_token")


def test_login_token_carries_the_default_kid_and_the_users_version(client, db):
    user = register(client)
    token = login(client, user["username"])
    assert _kid(token) == DEFAULT_JWT_KEY_ID
    assert _unverified(token)["ver"] == 0
    db.execute("UPDATE users SET token_version = 4 WHERE id = %s", (user["id"],))
    assert _unverified(login(client, user["username"]))["ver"] == 4


def test_logout_revokes_only_the_presented_token_on_every_endpoint(client, db):
    user = register(client)
    token, other = login(client, user["username"]), login(client, user["username"])
    create(client, bearer(token))

    response = client.post("/logout", headers=bearer(token))
    assert response.status_code == 204, response.text
    assert response.content == b""

    _assert_refused_everywhere(client, token)
    # The user's other session is untouched, and so is their data.
    listed = client.get("/transactions", headers=bearer(other))
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1
    assert count_transactions(db) == 1
    # Kept until the token would have expired anyway (plus the leeway), not longer.
    row = db.execute("SELECT jti, extract(epoch FROM expires_at) AS until FROM revoked_tokens").fetchone()
    claims = _unverified(token)
    assert row["jti"] == claims["jti"]
    assert row["until"] == claims["exp"] + LEEWAY_SECONDS


def test_logout_needs_a_valid_token(client):
    assert_error(client.post("/logout"), 401, "authentication_required")
    assert_error(client.post("/logout", headers=bearer("not-a-token")), 401, "invalid_token")


def test_logout_is_seen_by_every_worker_and_by_another_replica(client, servers, replica):
    user = register(client)
    token = login(client, user["username"])
    primary = servers["tenant1"].url
    # Every worker of both replicas has verified (and cached) the token before the logout.
    _assert_everywhere(primary, token, 200)
    _assert_everywhere(replica.url, token, 200, times=6)

    response = httpx.post(f"{replica.url}/logout", headers=bearer(token), timeout=30)
    assert response.status_code == 204, response.text

    _assert_everywhere(primary, token, 401)
    _assert_everywhere(replica.url, token, 401, times=6)


def test_the_database_decides_on_every_request_whether_a_token_is_admitted(db, servers, replica):
    """A token is admitted while its id is not in revoked_tokens and its user's token_version is
    the token's own: both are read from PostgreSQL on every request, so a change made there (here
    by hand, not through /logout or /password) is seen at once by every worker of every replica."""
    user_id = insert_user(db)
    secret = servers["tenant1"].env["JWT_SECRET"]
    to_revoke, stale = mint_token(secret, "tenant1", user_id), mint_token(secret, "tenant1", user_id)
    ahead = mint_token(secret, "tenant1", user_id, ver=1)

    def everywhere(token: str, status: int) -> None:
        _assert_everywhere(servers["tenant1"].url, token, status)
        _assert_everywhere(replica.url, token, status, times=6)

    # Every worker has admitted (and remembered the verified claims of) both version-0 tokens.
    everywhere(to_revoke, 200)
    everywhere(stale, 200)
    everywhere(ahead, 401)

    db.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES (%s, now() + interval '1 hour')",
        (_unverified(to_revoke)["jti"],),
    )
    everywhere(to_revoke, 401)
    everywhere(stale, 200)

    db.execute("UPDATE users SET token_version = 1 WHERE id = %s", (user_id,))
    everywhere(stale, 401)
    everywhere(ahead, 200)


def test_logout_purges_revocations_that_ran_out_and_keeps_the_others(client, db):
    margin = int(CLOCK_SKEW_MARGIN.total_seconds())
    db.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES"
        " ('long-gone-1', now() - make_interval(secs => %(m)s) - interval '1 day'),"
        " ('long-gone-2', now() - make_interval(secs => %(m)s) - interval '1 minute'),"
        " ('within-margin', now() - make_interval(secs => %(m)s) + interval '1 minute'),"
        " ('still-valid', now() + interval '30 minutes')",
        {"m": margin},
    )
    user = register(client)
    token = login(client, user["username"])
    assert client.post("/logout", headers=bearer(token)).status_code == 204
    kept = {row["jti"] for row in db.execute("SELECT jti FROM revoked_tokens")}
    assert kept == {"within-margin", "still-valid", _unverified(token)["jti"]}


# --- Password change -------------------------------------------------------------------------------


def _change(client: httpx.Client, token: str, current: str = PASSWORD, new: str = NEW_PASSWORD) -> httpx.Response:
    return client.post("/password", json={"current_password": current, "new_password": new}, headers=bearer(token))


def _user_row(db, user_id: int) -> dict | None:
    return db.execute("SELECT password_hash, token_version FROM users WHERE id = %s", (user_id,)).fetchone()


def test_password_change_revokes_every_earlier_token_and_returns_a_new_one(client, db, servers, replica):
    user = register(client)
    first, second = login(client, user["username"]), login(client, user["username"])
    _assert_everywhere(servers["tenant1"].url, first, 200, times=8)
    before = _user_row(db, user["id"])

    response = _change(client, second)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    new_token = body["token"]
    assert _unverified(new_token)["ver"] == before["token_version"] + 1

    after = _user_row(db, user["id"])
    assert after["token_version"] == before["token_version"] + 1
    assert after["password_hash"] != before["password_hash"]
    assert after["password_hash"].startswith("$argon2id$")

    # Both earlier tokens, even one issued within the same second, are refused by every worker
    # of every replica, on every endpoint; the new token works at once, and so does a new login.
    for token in (first, second):
        _assert_everywhere(servers["tenant1"].url, token, 401, times=8)
        _assert_everywhere(replica.url, token, 401, times=4)
    _assert_refused_everywhere(client, first)
    _assert_everywhere(replica.url, new_token, 200, times=4)
    assert client.get("/transactions", headers=bearer(new_token)).status_code == 200
    assert_error(client.post("/login", json={"username": user["username"], "password": PASSWORD}), 401)
    fresh = login(client, user["username"], NEW_PASSWORD)
    assert client.get("/transactions", headers=bearer(fresh)).status_code == 200


def test_password_can_change_twice_in_a_row_with_the_token_each_change_returns(client):
    user = register(client)
    token = login(client, user["username"])
    first = _change(client, token, PASSWORD, NEW_PASSWORD)
    assert first.status_code == 200, first.text
    second = _change(client, first.json()["token"], NEW_PASSWORD, "third-password@789")
    assert second.status_code == 200, second.text
    assert_error(client.get("/transactions", headers=bearer(first.json()["token"])), 401, "invalid_token")
    assert client.get("/transactions", headers=bearer(second.json()["token"])).status_code == 200
    login(client, user["username"], "third-password@789")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "short7!"}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "x" * 129}, "new_password"),
        ({"current_password": PASSWORD, "new_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": 12345678}, "new_password"),
        ({"current_password": PASSWORD, "new_password": None}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "pass\ud800word123"}, "new_password"),
        ({"current_password": "", "new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": ["x"], "new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "username": "x@example.com"}, "username"),
    ],
    ids=["no-current", "no-new", "new-7-chars", "new-129-chars", "new-equals-current", "new-number", "new-null",
         "new-lone-surrogate", "current-empty", "current-list", "unknown-field"],
)
def test_invalid_password_change_is_400_and_changes_nothing(client, db, body, field):
    user = register(client)
    token = login(client, user["username"])
    before = _user_row(db, user["id"])
    content = json.dumps(body).encode()  # lone surrogates escaped, as a JavaScript client sends them
    response = client.post("/password", content=content, headers={**bearer(token), "Content-Type": "application/json"})
    error = assert_error(response, 400, "validation_error")
    assert field in error["fields"], error
    assert _user_row(db, user["id"]) == before
    assert client.get("/transactions", headers=bearer(token)).status_code == 200
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"[]", "application/json", 400, "validation_error"),
        (b'{"current_password": ', "application/json", 400, "malformed_json"),
        (b"current_password=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
    ids=["array", "malformed", "form"],
)
def test_password_change_body_that_is_not_a_json_object_is_refused(client, db, content, content_type, status, code):
    user = register(client)
    token = login(client, user["username"])
    before = _user_row(db, user["id"])
    response = client.post("/password", content=content, headers={**bearer(token), "Content-Type": content_type})
    assert_error(response, status, code)
    assert _user_row(db, user["id"]) == before


def _max_failures(servers) -> int:
    return int(servers["tenant1"].env.get("LOGIN_MAX_FAILURES") or 5)


def test_wrong_current_password_is_401_counts_toward_the_lockout_and_changes_nothing(client, db, servers):
    user = register(client)
    token = login(client, user["username"])
    before = _user_row(db, user["id"])

    response = _change(client, token, current=WRONG_PASSWORD)
    error = assert_error(response, 401, "invalid_credentials")
    assert "token" not in error["message"].lower()
    assert _user_row(db, user["id"]) == before
    assert client.get("/transactions", headers=bearer(token)).status_code == 200, "the token stays valid"
    failures = db.execute("SELECT failures FROM login_failures").fetchone()
    assert failures == {"failures": 1}

    # A right password clears the count, as a successful login does.
    login(client, user["username"])
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0

    # Wrong passwords here and at /login share one count: the limit locks both.
    limit = _max_failures(servers)
    for attempt in range(limit):
        if attempt % 2:
            assert_error(client.post("/login", json={"username": user["username"], "password": WRONG_PASSWORD}), 401)
        else:
            assert_error(_change(client, token, current=WRONG_PASSWORD), 401, "invalid_credentials")
    locked = _change(client, token)  # even the right password
    assert_error(locked, 429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) >= 1
    assert_error(client.post("/login", json={"username": user["username"], "password": PASSWORD}), 429)
    locked_delete = client.request("DELETE", "/me", json={"password": PASSWORD}, headers=bearer(token))
    assert_error(locked_delete, 429, "too_many_attempts")
    assert _user_row(db, user["id"]) == before


# --- Account deletion ----------------------------------------------------------------------------


def _delete_me(client: httpx.Client, token: str, password: str = PASSWORD) -> httpx.Response:
    return client.request("DELETE", "/me", json={"password": password}, headers=bearer(token))


# Every column that holds a user's key: the columns of each foreign key to users, and every user_id
# column (the totals tables have no foreign key). Read from the catalog, so a new table is checked too.
USER_COLUMNS = """
    SELECT c.relname AS table_name, a.attname AS column_name, r.attname AS users_column
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
    JOIN pg_attribute r ON r.attrelid = k.confrelid AND r.attnum = k.confkey[array_position(k.conkey, a.attnum)]
    WHERE k.contype = 'f' AND k.confrelid = 'users'::regclass
    UNION
    SELECT c.relname, a.attname, 'id'
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND a.attname = 'user_id' AND NOT a.attisdropped
"""


def _rows_of(db, user: dict) -> dict[str, int]:
    """How many rows refer to the user, by table.column, in every column that holds a user's key."""
    counts = {}
    for column in db.execute(USER_COLUMNS).fetchall():
        query = sql.SQL("SELECT count(*) AS n FROM {} WHERE {} = %s").format(
            sql.Identifier(column["table_name"]), sql.Identifier(column["column_name"])
        )
        found = db.execute(query, (user[column["users_column"]],)).fetchone()
        counts[f"{column['table_name']}.{column['column_name']}"] = found["n"]
    return counts


def _totals(db, table: str) -> dict[int, tuple[int, Decimal]]:
    query = sql.SQL("SELECT user_id, sum(count)::int AS n, sum(total) AS total FROM {} GROUP BY user_id")
    rows = db.execute(query.format(sql.Identifier(table)))
    return {row["user_id"]: (row["n"], row["total"]) for row in rows}


def test_delete_me_deletes_the_user_with_every_transaction_and_total(client, db, servers, replica):
    user = register(client)
    token, other_session = login(client, user["username"]), login(client, user["username"])
    keep = register(client)
    keep_headers = bearer(login(client, keep["username"]))
    for amount in ("10.00", "20.50"):
        create(client, bearer(token), amount=amount, category="food")
    create(client, bearer(token), type="income", amount="100.00", occurred_at="2025-03-15T12:00:00+00:00")
    client.post("/transactions", json={"type": "expense", "amount": "1.00"},
                headers={**bearer(token), "Idempotency-Key": "delete-me-key"})
    # An account besides Main, and a transfer between them.
    savings = client.post("/accounts", json={"name": "Savings", "kind": "savings", "opening_balance": "50.00"},
                          headers=bearer(token))
    assert savings.status_code == 201, savings.text
    main_id = next(item["id"] for item in client.get("/accounts", headers=bearer(token)).json()["items"]
                   if item["is_default"])
    moved = client.post("/transfers", json={"from_account_id": savings.json()["id"], "to_account_id": main_id,
                                            "amount": "12.00"}, headers=bearer(token))
    assert moved.status_code == 201, moved.text
    # A budget, and a monthly rule that has made its first transaction (a day and a month of totals more).
    budget = client.post("/budgets", json={"category": "food", "amount": "300.00"}, headers=bearer(token))
    assert budget.status_code == 201, budget.text
    start = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
    rule = client.post("/recurring-transactions", headers=bearer(token), json={
        "type": "expense", "amount": "9.00", "category": "rent", "frequency": "monthly", "start_date": start
    })
    assert rule.status_code == 201, rule.text
    # A personal access token, used once (so its last use is noted too).
    pat = client.post("/tokens", json={"name": "script", "scope": "read"}, headers=bearer(token))
    assert pat.status_code == 201, pat.text
    pat_token = pat.json()["token"]
    assert client.get("/transactions", headers=bearer(pat_token)).status_code == 200
    # A webhook, with a delivery queued (a test event's: webhook_deliveries has no user_id to find).
    webhook = client.post("/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": ["*"]},
                          headers=bearer(token))
    assert webhook.status_code == 201, webhook.text
    assert client.post(f"/webhooks/{webhook.json()['id']}/test", headers=bearer(token)).status_code == 202
    create(client, keep_headers, amount="7.00", category="food")
    kept_accounts = client.get("/accounts", headers=keep_headers).json()
    kept_analytics = client.get("/analytics", params={"group_by": "category"}, headers=keep_headers).json()
    assert _totals(db, "daily_totals")[user["id"]][0] == 5
    assert _totals(db, "monthly_totals")[user["id"]][0] == 5
    _assert_everywhere(replica.url, token, 200, times=4)
    stored_user = db.execute("SELECT * FROM users WHERE id = %s", (user["id"],)).fetchone()
    before = _rows_of(db, stored_user)
    empty = sorted(column for column, count in before.items() if count == 0)
    assert not empty, f"give the user a row in {empty} above, so that the check after the deletion means something"

    response = _delete_me(client, token)
    assert response.status_code == 204, response.text
    assert response.content == b""

    assert _user_row(db, user["id"]) is None
    left = {column: count for column, count in _rows_of(db, stored_user).items() if count}
    assert not left, f"rows of the deleted user remain: {left}"
    assert db.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = %s",
                      (webhook.json()["id"],)).fetchone()["n"] == 0
    # The other user's rows and totals are exactly as they were.
    assert _totals(db, "daily_totals") == {keep["id"]: (1, Decimal("7.00"))}
    assert _totals(db, "monthly_totals") == {keep["id"]: (1, Decimal("7.00"))}
    assert client.get("/analytics", params={"group_by": "category"}, headers=keep_headers).json() == kept_analytics
    assert client.get("/accounts", headers=keep_headers).json() == kept_accounts

    for session in (token, other_session, pat_token):
        _assert_refused_everywhere(client, session)
        _assert_everywhere(replica.url, session, 401, times=4)
    assert_error(client.post("/login", json={"username": user["username"], "password": PASSWORD}), 401)

    # The username is free again, for a new account that inherits nothing.
    again = register(client, user["username"])
    assert again["id"] != user["id"]
    fresh = bearer(login(client, user["username"]))
    assert client.get("/transactions", headers=fresh).json()["items"] == []
    assert client.get("/transfers", headers=fresh).json()["items"] == []
    fresh_accounts = client.get("/accounts", headers=fresh).json()
    assert [(item["name"], item["balance"]) for item in fresh_accounts["items"]] == [("Main", "0.00")]
    assert client.get("/analytics", params={"period": "current_year"}, headers=fresh).json()["count"] == 0


def test_delete_me_with_a_wrong_password_is_401_and_deletes_nothing(client, db):
    user = register(client)
    token = login(client, user["username"])
    create(client, bearer(token))
    assert_error(_delete_me(client, token, WRONG_PASSWORD), 401, "invalid_credentials")
    assert _user_row(db, user["id"]) is not None
    assert count_transactions(db) == 1
    assert db.execute("SELECT failures FROM login_failures").fetchone() == {"failures": 1}
    assert client.get("/transactions", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code", "field"),
    [
        (b"{}", "application/json", 400, "validation_error", "password"),
        (b'{"password": 12345678}', "application/json", 400, "validation_error", "password"),
        (b'{"password": ""}', "application/json", 400, "validation_error", "password"),
        (b'{"password": "password@123", "force": true}', "application/json", 400, "validation_error", "force"),
        (b'"password@123"', "application/json", 400, "validation_error", "_schema"),
        (b'{"password": ', "application/json", 400, "malformed_json", None),
        (b"", None, 415, "unsupported_media_type", None),
    ],
    ids=["empty-object", "number", "empty-password", "unknown-field", "json-string", "malformed", "no-body"],
)
def test_invalid_delete_me_body_is_refused_and_deletes_nothing(client, db, content, content_type, status, code, field):
    user = register(client)
    token = login(client, user["username"])
    headers = bearer(token) | ({"Content-Type": content_type} if content_type else {})
    error = assert_error(client.request("DELETE", "/me", content=content, headers=headers), status, code)
    if field:
        assert field in error["fields"], error
    assert _user_row(db, user["id"]) is not None
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0


# --- Never a password or its hash in a response ------------------------------------------------------


def test_no_account_response_ever_contains_a_password_or_its_hash(client, db):
    user = register(client)
    token = login(client, user["username"])
    responses = [
        _change(client, token, current=WRONG_PASSWORD),
        _change(client, token, current=PASSWORD, new="short"),
        _change(client, token),
    ]
    new_token = responses[-1].json()["token"]
    stored_hash = _user_row(db, user["id"])["password_hash"]
    responses += [
        _delete_me(client, new_token, WRONG_PASSWORD),
        client.post("/logout", headers=bearer(new_token)),
        _delete_me(client, new_token, NEW_PASSWORD),
    ]
    assert [r.status_code for r in responses] == [401, 400, 200, 401, 204, 401]
    for response in responses:
        text = response.text + json.dumps(dict(response.headers))
        for forbidden in ("$argon2", stored_hash, "password_hash", PASSWORD, NEW_PASSWORD, WRONG_PASSWORD):
            assert forbidden not in text, (forbidden, text)
    for token_text in (token, new_token):
        assert set(_unverified(token_text)) == {"sub", "iat", "exp", "jti", "iss", "aud", "ver"}


# --- Signing-key rotation without downtime ------------------------------------------------------------


def test_unknown_kid_and_other_keys_are_401_over_http(client, db, servers):
    user_id = insert_user(db)
    secret = servers["tenant1"].env["JWT_SECRET"]
    control = _sign(_claims(sub=str(user_id)), secret, kid="1")
    assert client.get("/transactions", headers=bearer(control)).status_code == 200
    for token in (
        _sign(_claims(sub=str(user_id)), secret, kid="2"),
        _sign(_claims(sub=str(user_id)), OTHER_SECRET, kid="1"),
        _sign(_claims(sub=str(user_id)), secret, kid=None),
    ):
        assert_error(client.get("/transactions", headers=bearer(token)), 401, "invalid_token")


def test_signing_key_rotates_without_downtime(client, stack, servers):
    """The three steps of a rotation, each a rolling restart of the replicas: (1) the new key is
    accepted, (2) it signs while the old one is still accepted, (3) once every old token has
    expired the old key is removed and its tokens are refused."""
    base = {**servers["tenant1"].env, "WEB_CONCURRENCY": "2"}
    old_secret, new_secret = base["JWT_SECRET"], secrets.token_urlsafe(48)
    user = register(client)
    old_token = login(client, user["username"])  # from the running server: kid 1
    legacy_token = _sign(_claims(sub=str(user["id"])), old_secret)  # issued before key ids existed
    assert _kid(old_token) == "1"

    def start(**changes: str) -> localstack.Server:
        return stack.start_server("tenant1", {**base, **changes}, localstack.free_port())

    step1 = start(JWT_PREVIOUS_KEYS=f"2={new_secret}")
    step2 = start(JWT_SECRET=new_secret, JWT_KEY_ID="2", JWT_PREVIOUS_KEYS=f"1={old_secret}")
    try:
        with httpx.Client(base_url=step2.url, timeout=30) as at_step2, httpx.Client(base_url=step1.url) as at_step1:
            new_token = login(at_step2, user["username"])
            assert _kid(new_token) == "2"
            assert _kid(login(at_step1, user["username"])) == "1"
        # Mid-rollout, replicas of steps 1 and 2 serve side by side: every token works on both.
        for server in (step1, step2):
            for token in (old_token, legacy_token, new_token):
                _assert_everywhere(server.url, token, 200, times=4)
        # A replica never told of the new key refuses its tokens: why step 1 comes first.
        _assert_everywhere(servers["tenant1"].url, new_token, 401, times=4)
    finally:
        step1.stop()
    step3 = start(JWT_SECRET=new_secret, JWT_KEY_ID="2")
    try:
        _assert_everywhere(step3.url, new_token, 200, times=4)
        _assert_everywhere(step3.url, old_token, 401, times=4)
        _assert_everywhere(step3.url, legacy_token, 401, times=4)
        # Step 2 replicas still running beside step 3 keep accepting both until they are replaced.
        _assert_everywhere(step2.url, old_token, 200, times=2)
    finally:
        step3.stop()
        step2.stop()
