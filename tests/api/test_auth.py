"""Accounts, logins, lockouts and tokens, over HTTP against the real gunicorns."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
import threading
import time

import httpx
import jwt
import localstack
import pytest

from tests.utils import (
    PASSWORD,
    assert_error,
    count_transactions,
    insert_user,
    login,
    mint_token,
    new_username,
    register,
)

ORIGINAL_CREDENTIALS = {"username": "sam.johnson@gmail.com", "password": "password@123"}
WRONG_PASSWORD = "not-the-password"


def _secret(servers, tenant: str = "tenant1") -> str:
    return servers[tenant].env["JWT_SECRET"]


def _max_failures(servers) -> int:
    return int(servers["tenant1"].env.get("LOGIN_MAX_FAILURES") or 5)


def _lockout_seconds(servers) -> int:
    return int(servers["tenant1"].env.get("LOGIN_LOCKOUT_SECONDS") or 900)


def _analytics(client: httpx.Client, token: str | bytes | None, header: str = "x-access-token") -> httpx.Response:
    headers = {} if token is None else {header: token}
    return client.get("/analytics", params={"period": "current_month"}, headers=headers)


def _assert_refused_token(response: httpx.Response, code: str = "invalid_token") -> None:
    assert_error(response, 401, code)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


def _fresh_post(url: str, path: str, body: dict) -> httpx.Response:
    """POST on a new connection, so successive calls can land on different gunicorn workers."""
    return httpx.post(f"{url}{path}", json=body, headers={"Connection": "close"}, timeout=30)


def _users(db) -> list[dict]:
    return db.execute("SELECT id, username, password_hash FROM users ORDER BY id").fetchall()


# --- The original clients -------------------------------------------------------------------


def test_original_clients_requests_succeed_unchanged(client):
    registered = client.post("/register", json=ORIGINAL_CREDENTIALS)
    assert registered.status_code == 201, registered.text

    logged_in = client.post("/login", json=ORIGINAL_CREDENTIALS)
    assert logged_in.status_code == 200, logged_in.text
    headers = {"x-access-token": logged_in.json()["token"]}

    with_description = client.post(
        "/transaction",
        json={"type": "income", "amount": 10000.0, "description": "Income from salary"},
        headers=headers,
    )
    assert with_description.status_code == 201, with_description.text
    assert with_description.json()["amount"] == "10000.00"
    assert with_description.json()["description"] == "Income from salary"

    without_description = client.post("/transaction", json={"type": "income", "amount": 10000.0}, headers=headers)
    assert without_description.status_code == 201, without_description.text
    assert without_description.json()["description"] is None

    current = client.get("/analytics?period=current_month", headers=headers)
    assert current.status_code == 200, current.text
    assert current.json()["period"] == "current_month"
    assert current.json()["total_income"] == "20000.00"
    assert current.json()["net_balance"] == "20000.00"
    assert current.json()["count"] == 2

    last = client.get("/analytics?period=last_month", headers=headers)
    assert last.status_code == 200, last.text
    assert last.json()["period"] == "last_month"
    assert last.json()["total_income"] == "0.00"
    assert last.json()["count"] == 0

    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


def test_authorization_bearer_header_is_accepted_like_x_access_token(client):
    user = register(client)
    token = login(client, user["username"])
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": f"bearer {token}"}):
        response = client.post("/transaction", json={"type": "expense", "amount": 5}, headers=headers)
        assert response.status_code == 201, response.text
    assert _analytics(client, f"Bearer {token}", header="Authorization").json()["count"] == 2


# --- Register -------------------------------------------------------------------------------


def test_register_returns_201_with_only_id_and_username(client, db):
    username = new_username()
    response = client.post("/register", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "username"}
    stored = _users(db)
    assert [(row["id"], row["username"]) for row in stored] == [(body["id"], username)]
    assert stored[0]["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in stored[0]["password_hash"]


def test_taken_username_is_refused_whatever_its_case_without_revealing_the_account(client, db):
    original = register(client, "sam.johnson@gmail.com")
    for taken_as in ("SAM.JOHNSON@GMAIL.COM", "Sam.Johnson@Gmail.com", "  sam.johnson@gmail.com "):
        response = client.post("/register", json={"username": taken_as, "password": "another-password-1"})
        error = assert_error(response, 409, "username_taken")
        assert str(original["id"]) not in json.dumps(error)
        assert "sam.johnson" not in response.text.lower()
        assert "$argon2" not in response.text
    stored = _users(db)
    assert [(row["id"], row["username"]) for row in stored] == [(original["id"], "sam.johnson@gmail.com")]
    # The existing account keeps its password: the refused registrations changed nothing.
    login(client, "SAM.JOHNSON@GMAIL.COM")
    response = client.post("/login", json={"username": "sam.johnson@gmail.com", "password": "another-password-1"})
    assert_error(response, 401, "invalid_credentials")


@pytest.mark.parametrize("length", [8, 128])
def test_password_of_8_to_128_characters_is_accepted(client, length):
    password = ("Pw1-" * 40)[:length]
    user = register(client, password=password)
    login(client, user["username"], password)


@pytest.mark.parametrize("length", [0, 7, 129])
def test_password_shorter_than_8_or_longer_than_128_is_refused(client, db, length):
    response = client.post("/register", json={"username": new_username(), "password": ("Pw1-" * 40)[:length]})
    error = assert_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"password"}
    assert isinstance(error["fields"]["password"], list) and error["fields"]["password"]
    assert all(isinstance(message, str) for message in error["fields"]["password"])
    assert _users(db) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "sam.johnson@gmail.com"}, "password"),
        ({"username": "sam.johnson@gmail.com", "password": PASSWORD, "is_admin": True}, "is_admin"),
        ({"username": "sam.johnson@gmail.com", "password": PASSWORD, "id": 1}, "id"),
        ({"username": 12345678, "password": PASSWORD}, "username"),
        ({"username": ["sam.johnson@gmail.com"], "password": PASSWORD}, "username"),
        ({"username": None, "password": PASSWORD}, "username"),
        ({"username": "sam.johnson@gmail.com", "password": 12345678}, "password"),
        ({"username": "sam.johnson@gmail.com", "password": {"value": PASSWORD}}, "password"),
        ({"username": "sam.johnson@gmail.com", "password": True}, "password"),
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "x" * 255, "password": PASSWORD}, "username"),
    ],
    ids=[
        "missing-username", "missing-password", "unknown-is_admin", "unknown-id", "number-username",
        "list-username", "null-username", "number-password", "object-password", "boolean-password",
        "short-username", "long-username",
    ],
)
def test_invalid_register_body_is_refused_field_by_field_and_stores_nothing(client, db, body, field):
    error = assert_error(client.post("/register", json=body), 400, "validation_error")
    assert field in error["fields"], error
    assert _users(db) == []


@pytest.mark.parametrize("username", ["   ", " \t a \n "], ids=["spaces", "one-letter-padded"])
def test_username_too_short_once_trimmed_is_refused_with_400(client, db, username):
    error = assert_error(client.post("/register", json={"username": username, "password": PASSWORD}), 400)
    assert error["code"] == "validation_error"
    assert "username" in error["fields"]
    assert _users(db) == []


@pytest.mark.parametrize(
    "body",
    [
        {"username": "sam\u0000johnson@gmail.com", "password": PASSWORD},
        {"username": "sam\ud800johnson@gmail.com", "password": PASSWORD},
        {"username": "sam.johnson@gmail.com", "password": "password\ud800123"},
    ],
    ids=["nul-in-username", "lone-surrogate-in-username", "lone-surrogate-in-password"],
)
@pytest.mark.parametrize("path", ["/register", "/login"])
def test_credentials_the_database_cannot_store_are_refused_with_400(client, db, path, body):
    # json.dumps escapes the lone surrogate as \\ud800, as a JavaScript client would send it.
    content = json.dumps(body).encode()
    response = client.post(path, content=content, headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, "validation_error")
    assert set(error["fields"]) <= {"username", "password"}
    assert _users(db) == []
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b'["sam.johnson@gmail.com", "password@123"]', {"Content-Type": "application/json"}, 400, "validation_error"),
        (b'{"username": "sam.johnson@gmail.com",', {"Content-Type": "application/json"}, 400, "malformed_json"),
        (b"username=sam.johnson%40gmail.com&password=password%40123",
         {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ],
    ids=["json-array", "malformed-json", "form-encoded"],
)
def test_register_body_that_is_not_a_json_object_is_refused(client, db, content, headers, status, code):
    assert_error(client.post("/register", content=content, headers=headers), status, code)
    assert _users(db) == []


def test_no_response_ever_contains_a_password_or_its_hash(client, db):
    username = new_username()
    responses = [
        client.post("/register", json={"username": username, "password": PASSWORD}),
        client.post("/register", json={"username": username.upper(), "password": PASSWORD}),
        client.post("/login", json={"username": username, "password": PASSWORD}),
        client.post("/login", json={"username": username, "password": WRONG_PASSWORD}),
    ]
    assert [response.status_code for response in responses] == [201, 409, 200, 401]
    stored_hash = _users(db)[0]["password_hash"]
    for response in responses:
        text = response.text + json.dumps(dict(response.headers))
        assert "$argon2" not in text
        assert stored_hash not in text
        assert PASSWORD not in text
        assert "password_hash" not in text


# --- Login ----------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_for_one_hour(client, servers):
    user = register(client)
    response = client.post("/login", json={"username": user["username"], "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["token"], _secret(servers), algorithms=["HS256"], audience="tenant1", issuer="tenant1")
    assert claims["sub"] == str(user["id"])
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["jti"]


def test_login_username_is_case_insensitive_and_trimmed(client):
    user = register(client, "Sam.Johnson@Gmail.com")
    token = login(client, "  sam.johnson@GMAIL.com ")
    assert _analytics(client, token).status_code == 200
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == str(user["id"])


def test_unknown_user_and_wrong_password_get_the_identical_401(client):
    user = register(client)
    wrong_password = client.post("/login", json={"username": user["username"], "password": WRONG_PASSWORD})
    unknown_user = client.post("/login", json={"username": new_username(), "password": WRONG_PASSWORD})
    assert_error(wrong_password, 401, "invalid_credentials")
    assert_error(unknown_user, 401, "invalid_credentials")
    assert wrong_password.content == unknown_user.content
    for name in ("content-type", "www-authenticate", "retry-after"):
        assert wrong_password.headers.get(name) == unknown_user.headers.get(name)


def test_malformed_login_is_400_and_not_counted_as_a_failure(client, db):
    user = register(client)
    for body in ({"username": user["username"]}, {"username": user["username"], "password": 123456789}):
        assert_error(client.post("/login", json=body), 400, "validation_error")
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0


def _fail(url: str, username: str) -> httpx.Response:
    response = _fresh_post(url, "/login", {"username": username, "password": WRONG_PASSWORD})
    assert_error(response, 401, "invalid_credentials")
    return response


def _assert_locked(response: httpx.Response, servers) -> None:
    assert_error(response, 429, "too_many_attempts")
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), response.headers
    assert 1 <= int(retry_after) <= _lockout_seconds(servers)
    assert "token" not in response.text


@pytest.fixture
def replica(stack, servers):
    """A second gunicorn of tenant1 on the same database, as another replica would be."""
    server = stack.start_server("tenant1", servers["tenant1"].env, localstack.free_port())
    yield server
    server.stop()


def test_lockout_counts_failures_across_replicas_and_workers(client, db, servers, replica):
    first = servers["tenant1"].url
    user = register(client)
    username = user["username"]
    limit = _max_failures(servers)
    assert limit >= 2, "the test needs failures on both replicas"
    for attempt in range(limit):
        _fail(first if attempt % 2 == 0 else replica.url, username)
    # One shared count, whichever replica and worker saw each failure.
    assert db.execute("SELECT failures FROM login_failures").fetchone() == {"failures": limit}

    # Neither replica (nor any of their workers) lets even the right password in now.
    for url in (replica.url, first, replica.url, first):
        _assert_locked(_fresh_post(url, "/login", {"username": username, "password": PASSWORD}), servers)
    _assert_locked(_fresh_post(first, "/login", {"username": username.upper(), "password": PASSWORD}), servers)


def test_parallel_guesses_never_get_more_tries_than_the_limit(client, servers, replica):
    username = register(client)["username"]
    guesses = 4 * _max_failures(servers)
    urls = [servers["tenant1"].url, replica.url]
    barrier = threading.Barrier(guesses)

    def guess(index: int) -> int:
        barrier.wait()
        body = {"username": username, "password": WRONG_PASSWORD}
        return _fresh_post(urls[index % 2], "/login", body).status_code

    with concurrent.futures.ThreadPoolExecutor(guesses) as pool:
        statuses = list(pool.map(guess, range(guesses)))
    assert statuses.count(401) == _max_failures(servers)
    assert statuses.count(429) == guesses - _max_failures(servers)


def test_lockout_of_one_username_leaves_other_usernames_alone(client, servers):
    locked, other = register(client), register(client)
    for _ in range(_max_failures(servers)):
        _fail(servers["tenant1"].url, locked["username"])
    _assert_locked(client.post("/login", json={"username": locked["username"], "password": PASSWORD}), servers)
    token = login(client, other["username"])
    assert _analytics(client, token).status_code == 200


def test_failures_in_any_letter_case_count_toward_the_same_lockout(client, servers):
    user = register(client, "Case.Test@example.com")
    variants = ["case.test@example.com", "CASE.TEST@EXAMPLE.COM", " Case.Test@example.com "]
    for attempt in range(_max_failures(servers)):
        _fail(servers["tenant1"].url, variants[attempt % len(variants)])
    _assert_locked(client.post("/login", json={"username": user["username"], "password": PASSWORD}), servers)


def test_right_password_logs_in_again_once_the_lock_expires(client, db, servers):
    user = register(client)
    for _ in range(_max_failures(servers)):
        _fail(servers["tenant1"].url, user["username"])
    _assert_locked(client.post("/login", json={"username": user["username"], "password": PASSWORD}), servers)

    updated = db.execute(
        "UPDATE login_failures SET locked_until = now() - interval '1 second',"
        " window_started_at = now() - interval '1 hour'"
    ).rowcount
    assert updated == 1
    token = login(client, user["username"])
    assert _analytics(client, token).status_code == 200
    # A successful login forgets the earlier failures.
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0


def test_successful_login_resets_the_failure_count(client, db, servers):
    user = register(client)
    for _ in range(_max_failures(servers) - 1):
        _fail(servers["tenant1"].url, user["username"])
    login(client, user["username"])
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0
    _fail(servers["tenant1"].url, user["username"])
    login(client, user["username"])


def test_configured_limit_and_lockout_apply_and_relock_in_each_new_window(client, db, stack, servers):
    env = {**servers["tenant1"].env, "LOGIN_MAX_FAILURES": "1", "LOGIN_LOCKOUT_SECONDS": "120"}
    strict = stack.start_server("tenant1", env, localstack.free_port())
    try:
        user = register(client)
        right = {"username": user["username"], "password": PASSWORD}
        _fail(strict.url, user["username"])
        locked = _fresh_post(strict.url, "/login", right)
        assert_error(locked, 429, "too_many_attempts")
        assert 100 <= int(locked.headers["Retry-After"]) <= 120

        db.execute(
            "UPDATE login_failures SET locked_until = now() - interval '1 second',"
            " window_started_at = now() - interval '1 hour'"
        )
        # The first failure of a new window reaches the limit of 1 again.
        _fail(strict.url, user["username"])
        assert_error(_fresh_post(strict.url, "/login", right), 429, "too_many_attempts")
    finally:
        strict.stop()


# --- Tokens ---------------------------------------------------------------------------------


def test_token_minted_like_the_service_is_accepted(client, db, servers):
    """The control for the refusals below: only the one changed claim makes them fail."""
    user_id = insert_user(db)
    assert _analytics(client, mint_token(_secret(servers), "tenant1", user_id)).status_code == 200


def test_token_of_another_tenant_is_refused(client, client2):
    # tenant1 has a user with the same id, so only the tenant binding can refuse the token.
    own = register(client)
    foreign = register(client2)
    assert own["id"] == foreign["id"]
    foreign_token = login(client2, foreign["username"])
    assert _analytics(client2, foreign_token).status_code == 200
    _assert_refused_token(_analytics(client, foreign_token))
    _assert_refused_token(_analytics(client, f"Bearer {foreign_token}", header="Authorization"))


def test_token_of_tenant1_is_refused_by_tenant2(client, client2):
    own = register(client)
    register(client2)
    _assert_refused_token(_analytics(client2, login(client, own["username"])))


def test_expired_token_is_refused(client, db, servers):
    user_id = insert_user(db)
    now = int(time.time())
    token = mint_token(_secret(servers), "tenant1", user_id, iat=now - 3700, exp=now - 60)
    _assert_refused_token(_analytics(client, token))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_token_with_tampered_signature_is_refused(client, db, servers):
    user_id = insert_user(db)
    header, payload, signature = mint_token(_secret(servers), "tenant1", user_id).split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    _assert_refused_token(_analytics(client, f"{header}.{payload}.{flipped}"))


def test_token_with_altered_claims_and_the_old_signature_is_refused(client, db, servers):
    victim = insert_user(db)
    attacker = insert_user(db)
    header, payload, signature = mint_token(_secret(servers), "tenant1", attacker).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = _b64({**claims, "sub": str(victim)})
    _assert_refused_token(_analytics(client, f"{header}.{forged}.{signature}"))


def test_token_signed_with_another_key_is_refused(client, db):
    user_id = insert_user(db)
    _assert_refused_token(_analytics(client, mint_token("k" * 20 + "another-tenant-signing-key", "tenant1", user_id)))


@pytest.mark.parametrize("alg", ["none", "None"])
@pytest.mark.parametrize("header", ["x-access-token", "Authorization"])
def test_an_issued_token_relabelled_alg_none_and_unsigned_is_refused(client, header, alg):
    """The alg-none forgery: a token the server issued, claims and key id intact, whose header
    now says alg none and whose signature is gone; HS256 is required whatever the header says."""
    token = login(client, register(client)["username"])
    _, payload, _ = token.split(".")
    unsigned = f"{_b64({**jwt.get_unverified_header(token), 'alg': alg})}.{payload}."
    scheme = "Bearer " if header == "Authorization" else ""
    assert _analytics(client, scheme + token, header=header).status_code == 200
    _assert_refused_token(_analytics(client, scheme + unsigned, header=header))


def test_token_signed_with_another_hmac_algorithm_is_refused(client, db, servers):
    user_id = insert_user(db)
    _assert_refused_token(_analytics(client, mint_token(_secret(servers), "tenant1", user_id, algorithm="HS512")))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "tenant2", "iss": "tenant2"},
        {"aud": "tenant2"},
        {"iss": "tenant2"},
        {"aud": "Tenant1"},
        {"iss": ""},
    ],
    ids=["aud-and-iss-tenant2", "aud-tenant2", "iss-tenant2", "aud-other-case", "iss-empty"],
)
def test_token_with_the_right_key_but_another_tenants_audience_or_issuer_is_refused(client, db, servers, claims):
    user_id = insert_user(db)
    _assert_refused_token(_analytics(client, mint_token(_secret(servers), "tenant1", user_id, **claims)))


@pytest.mark.parametrize("audience", [["tenant1", "tenant2"], ["tenant2", "tenant1"], ["tenant1"]])
def test_token_whose_audience_is_a_list_is_refused(client, db, servers, audience):
    user_id = insert_user(db)
    _assert_refused_token(_analytics(client, mint_token(_secret(servers), "tenant1", user_id, aud=audience)))


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "sub", "iss", "aud"])
def test_token_missing_a_required_claim_is_refused(client, db, servers, claim):
    user_id = insert_user(db)
    _assert_refused_token(_analytics(client, mint_token(_secret(servers), "tenant1", user_id, drop=(claim,))))


def test_token_issued_in_the_future_is_refused(client, db, servers):
    user_id = insert_user(db)
    now = int(time.time())
    token = mint_token(_secret(servers), "tenant1", user_id, iat=now + 600, exp=now + 3600)
    _assert_refused_token(_analytics(client, token))


@pytest.mark.parametrize(
    "sub",
    ["abc", "", "0", "-1", "1.0", " 1", "\u00b2", "\u0661", "99999999999999999999999999", 1],
    ids=[
        "letters", "empty", "zero", "negative", "decimal", "padded", "superscript-two", "arabic-one", "huge", "integer",
    ],
)
def test_token_whose_subject_is_not_a_user_id_is_refused(client, db, servers, sub):
    insert_user(db)  # user 1 exists: a subject read loosely as 1 would be let in
    token = mint_token(_secret(servers), "tenant1", 0, sub=sub)
    _assert_refused_token(_analytics(client, token))


def test_token_of_a_deleted_user_is_refused(client, db):
    user = register(client)
    token = login(client, user["username"])
    assert _analytics(client, token).status_code == 200
    assert db.execute("DELETE FROM users WHERE id = %s", (user["id"],)).rowcount == 1
    _assert_refused_token(_analytics(client, token))
    response = client.post("/transaction", json={"type": "income", "amount": 1}, headers={"x-access-token": token})
    _assert_refused_token(response)
    assert count_transactions(db) == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-access-token": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic c2FtOnBhc3N3b3Jk"}],
    ids=["no-header", "empty-x-access-token", "empty-bearer", "basic-auth"],
)
def test_missing_token_is_401_with_www_authenticate(client, headers):
    response = client.get("/analytics", params={"period": "current_month"}, headers=headers)
    _assert_refused_token(response, "authentication_required")
    response = client.post("/transaction", json={"type": "income", "amount": 1}, headers=headers)
    _assert_refused_token(response, "authentication_required")


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "Bearer", "eyJhbGciOiJIUzI1NiJ9..", "\u00e9t\u00e9".encode(), "x" * 4000],
    ids=["word", "three-parts", "scheme-only", "empty-payload", "non-ascii", "long"],
)
def test_garbage_token_is_refused_with_401(client, token):
    _assert_refused_token(_analytics(client, token))


# --- what the document says of usernames ---------------------------------------------------------

# Usernames at the edges of the rule: the server trims surrounding whitespace (Python's, which
# includes \x1c-\x1f and \x85) before it counts 3 to 254 characters.
USERNAME_SAMPLES = [
    "w_\n",  # what schemathesis sent: 3 characters before trimming, 2 after
    "ab ", " ab", "\x1cab", "ab\x85", "\ufeffab", "a\u3000",
    "abc", " abc ", "a b", "a\nb", "a\x1cb", "\tabc\n", "x" * 254, " " + "x" * 253,
]


def test_a_username_the_document_allows_is_never_refused_for_its_shape(client):
    """The review found `"w_\\n"` valid for the document (minLength 3) and refused by the server."""
    document = client.get("/swagger.json").json()
    username = document["definitions"]["Credentials"]["properties"]["username"]
    pattern = re.compile(username["pattern"])
    allowed = [
        sample for sample in USERNAME_SAMPLES
        if username["minLength"] <= len(sample) <= username["maxLength"] and pattern.search(sample)
    ]
    assert "w_\n" not in allowed and "abc" in allowed and " abc " in allowed
    for sample in allowed:
        unique = sample.replace("x" * 12, new_username()[:12], 1) if "x" * 12 in sample else sample
        response = client.post("/register", json={"username": unique, "password": PASSWORD})
        assert response.status_code in (201, 409), (sample, response.text)
    refused = [sample for sample in USERNAME_SAMPLES if sample not in allowed]
    assert refused, "the samples must include names the document refuses"
