"""Personal access tokens over HTTP (issue 15): made with a login token, shown once, stored as a
SHA-256 only; they authenticate like a login token within their scope, are never let make tokens,
log out, change the password or delete the user, expire, note their last use at most once a
minute, and are refused by every worker of every replica from the request after their deletion."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import localstack
import pytest

from service import create_app
from service.config import Settings
from tests.utils import PASSWORD, assert_error, bearer, count_transactions, create, login, register

TOKEN_FIELDS = {"id", "name", "scope", "created_at", "expires_at", "last_used_at"}
# What token_urlsafe(32) gives after the prefix: 43 base64url characters.
TOKEN_LENGTH = len("fin_pat_") + 43
NEW_PASSWORD = "another-password@456"


@pytest.fixture
def replica(stack, servers):
    """A second gunicorn of tenant1 on the same database, as another replica would be."""
    server = stack.start_server("tenant1", {**servers["tenant1"].env, "WEB_CONCURRENCY": "2"}, localstack.free_port())
    yield server
    server.stop()


def _user(client: httpx.Client) -> tuple[dict, dict]:
    """A fresh user and headers carrying their login token."""
    user = register(client)
    return user, bearer(login(client, user["username"]))


def _make(client: httpx.Client, headers: dict, **body) -> httpx.Response:
    return client.post("/tokens", json={"name": "script", "scope": "read_write", **body}, headers=headers)


def _pat(client: httpx.Client, headers: dict, **body) -> dict:
    response = _make(client, headers, **body)
    assert response.status_code == 201, response.text
    return response.json()


def _listed(client: httpx.Client, headers: dict) -> list[dict]:
    response = client.get("/tokens", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _stored(db, user_id: int | None = None) -> list[dict]:
    if user_id is None:
        return db.execute("SELECT * FROM personal_access_tokens ORDER BY id").fetchall()
    return db.execute("SELECT * FROM personal_access_tokens WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _fresh_get(url: str, headers: dict, path: str = "/transactions") -> httpx.Response:
    """GET on a new connection, so successive calls can land on different gunicorn workers."""
    return httpx.get(f"{url}{path}", headers={**headers, "Connection": "close"}, timeout=30)


def _assert_everywhere(url: str, token: str, status: int, times: int = 12) -> None:
    """Many requests on fresh connections: with 4 workers, every one of them answers some."""
    for _ in range(times):
        response = _fresh_get(url, bearer(token))
        assert response.status_code == status, response.text
        if status == 401:
            assert_error(response, 401, "invalid_token")
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


# --- Create, list ----------------------------------------------------------------------------------


def test_create_shows_the_token_once_and_stores_only_its_sha256(client, db):
    user, headers = _user(client)
    response = _make(client, headers, name="  Budget spreadsheet  ", scope="read")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == TOKEN_FIELDS | {"token"}
    token = body["token"]
    assert token.startswith("fin_pat_") and len(token) == TOKEN_LENGTH
    assert (body["name"], body["scope"], body["last_used_at"]) == ("Budget spreadsheet", "read", None)
    assert response.headers["Location"] == f"/tokens/{body['id']}"

    # Listed without the secret, in any answer after this one.
    listed = client.get("/tokens", headers=headers)
    assert listed.json() == {"items": [{name: body[name] for name in TOKEN_FIELDS}]}
    assert token not in listed.text

    # The database holds its SHA-256, and nothing else of it.
    [row] = _stored(db, user["id"])
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    everything = json.dumps(db.execute("SELECT row_to_json(t) AS r FROM personal_access_tokens t").fetchall())
    assert token not in everything and token[len("fin_pat_"):] not in everything
    # 90 days by default, by the database's clock.
    assert row["expires_at"] - row["created_at"] == timedelta(days=90)


def test_a_personal_token_authenticates_with_either_header(client, client2):
    _, headers = _user(client)
    token = _pat(client, headers)["token"]
    created = create(client, {"x-access-token": token}, amount="12.50")
    assert client.get(f"/transactions/{created['id']}", headers=bearer(token)).json() == created
    listed = client.get("/transactions", headers={"x-access-token": token})
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert client.get("/tokens", headers=bearer(token)).status_code == 200
    # Another tenant has no such token.
    assert_error(client2.get("/transactions", headers=bearer(token)), 401, "invalid_token")


@pytest.mark.parametrize(
    "token",
    ["fin_pat_", "fin_pat_short", "fin_pat_" + "A" * 43, "fin_pat_" + "A" * 42 + "=", "fin_pat_" + "A" * 44],
    ids=["prefix-only", "short", "unknown", "bad-character", "long"],
)
def test_an_unknown_or_malformed_personal_token_is_401(client, token):
    for headers in (bearer(token), {"x-access-token": token}):
        response = client.get("/transactions", headers=headers)
        assert_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_malformed_personal_token_is_refused_without_the_database(tenant_envs):
    env = {**tenant_envs["tenant1"], "DATABASE_URL": "postgresql://finance@127.0.0.1:9/finance"}
    app = create_app(Settings.from_env(env))
    response = app.test_client().get("/transactions", headers={"x-access-token": "fin_pat_not-a-token"})
    assert response.status_code == 401, response.text
    assert response.json["error"]["code"] == "invalid_token"


# --- Scopes and login-only operations ----------------------------------------------------------------


def test_a_read_token_reads_and_nothing_more(client, db):
    user, headers = _user(client)
    existing = create(client, headers, amount="5.00")
    budget = client.post("/budgets", json={"category": "food", "amount": "10"}, headers=headers).json()
    read = bearer(_pat(client, headers, scope="read")["token"])

    for path in ("/transactions", f"/transactions/{existing['id']}", "/accounts", "/budgets", "/tokens",
                 "/categories", "/analytics", "/transactions/export"):
        assert client.get(path, headers=read).status_code == 200, path
    assert client.head("/transactions", headers=read).status_code == 200

    refused = [
        client.post("/transactions", json={"type": "expense", "amount": "1.00"}, headers=read),
        client.post("/transactions", json={"is_admin": True}, headers=read),  # before the body is read
        client.patch(f"/transactions/{existing['id']}", json={"amount": "2.00"}, headers=read),
        client.delete(f"/transactions/{existing['id']}", headers=read),
        client.post("/transactions/import", content=b"type,amount\nincome,1.00\n",
                    headers={**read, "Content-Type": "text/csv"}),
        client.post("/accounts", json={"name": "Cash", "kind": "cash"}, headers=read),
        client.patch(f"/budgets/{budget['id']}", json={"amount": "20"}, headers=read),
        client.delete(f"/budgets/{budget['id']}", headers=read),
    ]
    for response in refused:
        assert_error(response, 403, "insufficient_scope")
        assert "www-authenticate" not in response.headers
    assert count_transactions(db, user["id"]) == 1
    assert client.get(f"/transactions/{existing['id']}", headers=headers).json() == existing
    assert client.get(f"/budgets/{budget['id']}", headers=headers).json()["amount"] == "10.00"
    assert len(client.get("/accounts", headers=headers).json()["items"]) == 1


def test_a_read_write_token_writes(client, db):
    user, headers = _user(client)
    write = bearer(_pat(client, headers, scope="read_write")["token"])
    created = create(client, write, amount="5.00")
    changed = client.patch(f"/transactions/{created['id']}", json={"amount": "7.00"}, headers=write)
    assert changed.status_code == 200 and changed.json()["amount"] == "7.00"
    assert client.post("/budgets", json={"category": "food", "amount": "10"}, headers=write).status_code == 201
    assert client.delete(f"/transactions/{created['id']}", headers=write).status_code == 204
    assert count_transactions(db, user["id"]) == 0


@pytest.mark.parametrize("scope", ["read", "read_write"])
def test_operations_that_need_a_login_token_refuse_every_personal_token(client, db, scope):
    user, headers = _user(client)
    other = _pat(client, headers, name="other")
    token = _pat(client, headers, scope=scope)["token"]
    pat = bearer(token)
    hook = client.post("/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": ["*"]}, headers=headers).json()
    before = db.execute("SELECT password_hash, token_version FROM users WHERE id = %s", (user["id"],)).fetchone()
    stored = _stored(db)
    hooks = db.execute("SELECT * FROM webhooks WHERE user_id = %s", (user["id"],)).fetchall()

    responses = [
        client.post("/webhooks", json={"url": "http://127.0.0.1:9/more", "events": ["*"]}, headers=pat),
        client.patch(f"/webhooks/{hook['id']}", json={"active": False}, headers=pat),
        client.post(f"/webhooks/{hook['id']}/test", headers=pat),
        client.delete(f"/webhooks/{hook['id']}", headers=pat),
        _make(client, pat),
        _make(client, pat, name=""),  # refused before the body is read
        client.delete(f"/tokens/{other['id']}", headers=pat),
        client.post("/logout", headers=pat),
        client.post("/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=pat),
        client.request("DELETE", "/me", json={"password": PASSWORD}, headers=pat),
    ]
    for response in responses:
        assert_error(response, 403, "login_token_required")

    # Nothing changed: the user, their password and login tokens, their personal tokens, their
    # webhooks (which a personal token may still read).
    assert db.execute("SELECT * FROM webhooks WHERE user_id = %s", (user["id"],)).fetchall() == hooks
    assert client.get(f"/webhooks/{hook['id']}/deliveries", headers=pat).json()["items"] == []
    after = db.execute("SELECT password_hash, token_version FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert after == before
    assert db.execute("SELECT count(*) AS n FROM revoked_tokens").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0
    assert [row["id"] for row in _stored(db)] == [row["id"] for row in stored]
    assert client.get("/transactions", headers=pat).status_code == 200
    assert client.get("/transactions", headers=headers).status_code == 200


def test_the_document_says_which_operations_a_personal_token_is_refused(client):
    paths = client.get("/swagger.json").json()["paths"]
    login_only = {("post", "/tokens"), ("delete", "/tokens/{token_id}"), ("post", "/logout"),
                  ("post", "/password"), ("delete", "/me"), ("post", "/webhooks"), ("patch", "/webhooks/{webhook_id}"),
                  ("delete", "/webhooks/{webhook_id}"), ("post", "/webhooks/{webhook_id}/test")}
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method == "parameters" or not operation.get("security"):
                continue
            description = operation["responses"].get("403", {}).get("description", "")
            if (method, path) in login_only:
                assert "login_token_required" in description, (method, path)
            elif method in ("get", "head"):
                assert not description, (method, path)
            else:
                assert "insufficient_scope" in description, (method, path)
    assert "403" not in paths["/login"]["post"]["responses"]


# --- Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 366}, "expires_in_days"),
        ({"expires_in_days": 1.5}, "expires_in_days"),
        ({"expires_in_days": "ninety"}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"expires_in_days": None}, "expires_in_days"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": " \t "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": " " + "x" * 100}, "name"),  # the document's maxLength speaks of the text sent
        ({"name": "a\u0000b"}, "name"),
        ({"name": 12}, "name"),
        ({"scope": "admin"}, "scope"),
        ({"scope": "READ"}, "scope"),
        ({"scope": None}, "scope"),
        ({"token": "fin_pat_" + "A" * 43}, "token"),
        ({"token_hash": "00"}, "token_hash"),
        ({"user_id": 1}, "user_id"),
        ({"id": 1}, "id"),
        ({"last_used_at": "2026-01-01T00:00:00+00:00"}, "last_used_at"),
        ({"expires_at": "2999-01-01T00:00:00+00:00"}, "expires_at"),
        ({"created_at": "2000-01-01T00:00:00+00:00"}, "created_at"),
    ],
)
def test_invalid_create_is_400_naming_the_field_and_stores_nothing(client, db, body, field):
    _, headers = _user(client)
    error = assert_error(_make(client, headers, **body), 400, "validation_error")
    assert set(error["fields"]) == {field}, error
    assert _stored(db) == []


@pytest.mark.parametrize("missing", ["name", "scope"])
def test_name_and_scope_are_required(client, db, missing):
    _, headers = _user(client)
    body = {"name": "script", "scope": "read"}
    del body[missing]
    error = assert_error(client.post("/tokens", json=body, headers=headers), 400, "validation_error")
    assert set(error["fields"]) == {missing}
    assert _stored(db) == []


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"name": "x", "scope": ', "application/json", 400, "malformed_json"),
        (b'["read"]', "application/json", 400, "validation_error"),
        (b"name=x&scope=read", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"", None, 415, "unsupported_media_type"),
    ],
    ids=["malformed", "array", "form", "no-body"],
)
def test_a_create_body_that_is_not_a_json_object_is_refused(client, db, content, content_type, status, code):
    _, headers = _user(client)
    headers = headers | ({"Content-Type": content_type} if content_type else {})
    assert_error(client.post("/tokens", content=content, headers=headers), status, code)
    assert _stored(db) == []


@pytest.mark.parametrize("days", [1, 365])
def test_expires_in_days_takes_its_bounds(client, db, days):
    user, headers = _user(client)
    body = _pat(client, headers, expires_in_days=days, name="n" * 100)
    [row] = _stored(db, user["id"])
    assert row["expires_at"] - row["created_at"] == timedelta(days=days)
    assert body["name"] == "n" * 100


# --- Expiry, last use ---------------------------------------------------------------------------------


def test_an_expired_token_is_refused_and_listed_until_deleted_or_a_new_token_is_made(client, db):
    user, headers = _user(client)
    expired, kept = _pat(client, headers, name="expired"), _pat(client, headers, name="kept")
    assert client.get("/transactions", headers=bearer(expired["token"])).status_code == 200
    db.execute(
        "UPDATE personal_access_tokens SET created_at = now() - interval '2 days', expires_at = now() - interval '1 s'"
        " WHERE id = %s",
        (expired["id"],),
    )
    response = client.get("/transactions", headers=bearer(expired["token"]))
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/transactions", headers=bearer(kept["token"])).status_code == 200
    assert [item["id"] for item in _listed(client, headers)] == [expired["id"], kept["id"]]

    # A new token removes the user's expired ones (so they never count toward the cap).
    fresh = _pat(client, headers, name="fresh")
    assert [item["id"] for item in _listed(client, headers)] == [kept["id"], fresh["id"]]
    assert [row["id"] for row in _stored(db, user["id"])] == [kept["id"], fresh["id"]]


def _last_used(db, token_id: int):
    return db.execute("SELECT last_used_at FROM personal_access_tokens WHERE id = %s", (token_id,)).fetchone()[
        "last_used_at"
    ]


def test_last_used_at_is_set_by_a_use_and_rewritten_at_most_once_a_minute(client, db):
    _, headers = _user(client)
    made = _pat(client, headers)
    assert _last_used(db, made["id"]) is None

    assert client.get("/transactions", headers=bearer(made["token"])).status_code == 200
    first = _last_used(db, made["id"])
    assert first is not None
    now = db.execute("SELECT now() AS now").fetchone()["now"]
    assert abs(now - first) < timedelta(seconds=30)
    [listed] = _listed(client, headers)
    assert listed["last_used_at"] is not None

    # Within the minute, uses (on any worker) leave it as it is.
    for _ in range(6):
        assert _fresh_get(str(client.base_url).rstrip("/"), bearer(made["token"])).status_code == 200
    assert _last_used(db, made["id"]) == first

    # Once it is a minute old, the next use writes it again.
    db.execute(
        "UPDATE personal_access_tokens SET last_used_at = now() - interval '61 seconds' WHERE id = %s", (made["id"],)
    )
    assert client.get("/tokens", headers=bearer(made["token"])).status_code == 200
    assert _last_used(db, made["id"]) > first


# --- Delete ------------------------------------------------------------------------------------------


def test_delete_is_seen_by_every_worker_and_by_another_replica(client, db, servers, replica):
    user, headers = _user(client)
    made, other = _pat(client, headers), _pat(client, headers, name="other")
    primary = servers["tenant1"].url
    _assert_everywhere(primary, made["token"], 200)
    _assert_everywhere(replica.url, made["token"], 200, times=6)

    response = httpx.delete(f"{replica.url}/tokens/{made['id']}", headers=headers, timeout=30)
    assert response.status_code == 204, response.text
    assert response.content == b""

    _assert_everywhere(primary, made["token"], 401)
    _assert_everywhere(replica.url, made["token"], 401, times=6)
    # The user's other token and their login are untouched.
    _assert_everywhere(primary, other["token"], 200, times=4)
    assert [item["id"] for item in _listed(client, headers)] == [other["id"]]
    assert [row["id"] for row in _stored(db, user["id"])] == [other["id"]]
    assert_error(client.delete(f"/tokens/{made['id']}", headers=headers), 404, "not_found")


def test_another_users_token_is_404_and_stays_as_it_was(client, db):
    _, owner = _user(client)
    made = _pat(client, owner)
    _, intruder = _user(client)
    for token_id in (made["id"], made["id"] + 1000, 2**63 - 1):
        assert_error(client.delete(f"/tokens/{token_id}", headers=intruder), 404, "not_found")
    assert_error(client.delete("/tokens/99999999999999999999", headers=intruder), 404, "not_found")
    assert _listed(client, intruder) == []
    assert [item["id"] for item in _listed(client, owner)] == [made["id"]]
    assert client.get("/transactions", headers=bearer(made["token"])).status_code == 200


def test_delete_me_removes_the_users_tokens_and_refuses_them(client, db):
    user, headers = _user(client)
    tokens = [_pat(client, headers, name=f"t{n}")["token"] for n in range(3)]
    _, other_headers = _user(client)
    kept = _pat(client, other_headers)
    response = client.request("DELETE", "/me", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 204, response.text
    assert _stored(db, user["id"]) == []
    for token in tokens:
        assert_error(client.get("/transactions", headers=bearer(token)), 401, "invalid_token")
    assert [row["id"] for row in _stored(db)] == [kept["id"]]
    assert client.get("/transactions", headers=bearer(kept["token"])).status_code == 200


def test_a_password_change_keeps_personal_tokens(client):
    user, headers = _user(client)
    token = _pat(client, headers)["token"]
    changed = client.post(
        "/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert_error(client.get("/transactions", headers=headers), 401, "invalid_token")
    assert client.get("/transactions", headers=bearer(token)).status_code == 200
    assert len(_listed(client, bearer(changed.json()["token"]))) == 1


# --- Never in a log --------------------------------------------------------------------------------------


def test_the_access_log_never_holds_a_personal_token(client, servers, stack):
    _, headers = _user(client)
    request_id = f"pat-log-{uuid.uuid4().hex[:12]}"
    made = client.post("/tokens", json={"name": "logged?", "scope": "read"},
                       headers={**headers, "X-Request-ID": f"{request_id}-create"})
    assert made.status_code == 201
    token = made.json()["token"]
    ids = {f"{request_id}-bearer": bearer(token), f"{request_id}-header": {"x-access-token": token},
           f"{request_id}-refused": bearer(token)}
    for probe, sent in ids.items():
        sent = {**sent, "X-Request-ID": probe}
        if probe.endswith("refused"):
            client.post("/transactions", headers=sent, json={})
        else:
            client.get("/transactions", headers=sent)

    log_file = stack.directory / "logs" / f"tenant1-{urlsplit(servers['tenant1'].url).port}.log"
    wanted = {f"{request_id}-create", *ids}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = log_file.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
        found = {line["request_id"]: line for line in lines if line.get("request_id") in wanted}
        if set(found) == wanted:
            break
        time.sleep(0.1)
    assert set(found) == wanted, "no access line for some request"
    assert found[f"{request_id}-bearer"]["status"] == 200
    assert found[f"{request_id}-refused"]["status"] == 403
    assert found[f"{request_id}-bearer"]["user_id"] == found[f"{request_id}-create"]["user_id"]
    secret = token[len("fin_pat_"):]
    assert secret not in text
    assert hashlib.sha256(token.encode()).hexdigest() not in text
