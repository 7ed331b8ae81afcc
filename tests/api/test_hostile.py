"""Hostile and malformed input against a running tenant: mass assignment, password hashes in
responses, amounts that are not finite numbers, security headers, the server banner and CORS."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from decimal import Decimal

import httpx
import localstack
import psycopg
import pytest
from marshmallow import ValidationError
from psycopg import sql

from service.config import ConfigError, Settings
from service.schemas import Money, parse_json_number
from tests.utils import assert_error, bearer, create, insert_user, login, new_username, register, user_with_headers

# Fields the server owns: a client may never set them, on any create, update or registration.
SERVER_OWNED = ("id", "user_id", "created_at", "updated_at")
# And fields no input has at all, some with tempting names.
UNKNOWN = ("is_admin", "password_hash", "token_version", "role", "currency", "foo")
HOSTILE_FIELDS = {
    "id": 1,
    "user_id": 1,
    "created_at": "2000-01-01T00:00:00+00:00",
    "updated_at": "2000-01-01T00:00:00+00:00",
    "is_admin": True,
    "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    "token_version": 0,
    "role": "admin",
    "currency": "EUR",
    "foo": "bar",
}
assert set(HOSTILE_FIELDS) == {*SERVER_OWNED, *UNKNOWN}
ALLOWED_ORIGIN = "https://app.example.com"
OTHER_ALLOWED_ORIGIN = "http://localhost:3000"
# Origins that are not exactly an allowed one, whatever they look like.
REFUSED_ORIGINS = (
    "https://evil.example.com",
    "https://app.example.com.evil.com",
    "https://evilapp.example.com",
    "http://app.example.com",
    "https://app.example.com:8443",
    "https://APP.example.com",
    "https://app.example.com/",
    "null",
    "*",
)
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "x-access-token", "Idempotency-Key", "X-Request-ID")


def _users_named(db, username: str) -> int:
    return db.execute("SELECT count(*) AS n FROM users WHERE lower(username) = lower(%s)", (username,)).fetchone()["n"]


def _transactions(db, user_id: int) -> list[dict]:
    return db.execute("SELECT * FROM transactions WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _refused_field(response: httpx.Response, field: str) -> None:
    error = assert_error(response, 400, "validation_error")
    assert field in error["fields"], error


# --- mass assignment ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", HOSTILE_FIELDS)
def test_register_refuses_server_owned_and_unknown_fields_and_creates_no_account(client, db, field):
    username = new_username()
    body = {"username": username, "password": "password@123", field: HOSTILE_FIELDS[field]}
    _refused_field(client.post("/register", json=body), field)
    assert _users_named(db, username) == 0
    # The same request without the field is fine: the field alone was the reason.
    assert register(client, username)["username"] == username


@pytest.mark.parametrize("path", ["/transactions", "/transaction"])
def test_create_refuses_server_owned_and_unknown_fields_and_creates_nothing(client, db, path):
    victim_id, _ = user_with_headers(client)
    user_id, headers = user_with_headers(client)
    for field, value in HOSTILE_FIELDS.items():
        if field == "user_id":
            value = victim_id
        body = {"type": "income", "amount": "10.00", field: value}
        _refused_field(client.post(path, json=body, headers=headers), field)
        # With an Idempotency-Key too: the key is not used up by a refused body.
        keyed = {**headers, "Idempotency-Key": f"mass-{field}"}
        _refused_field(client.post(path, json=body, headers=keyed), field)
    assert _transactions(db, user_id) == []
    assert _transactions(db, victim_id) == []


@pytest.mark.parametrize(
    ("path", "valid", "kept"),
    [
        ("/budgets", {"category": "food", "amount": "10.00"}, ("budgets",)),
        (
            "/recurring-transactions",
            {"type": "expense", "amount": "1.00", "frequency": "daily", "start_date": "2999-01-01"},
            ("recurring_transactions", "transactions"),
        ),
        ("/tokens", {"name": "script", "scope": "read"}, ("personal_access_tokens",)),
        ("/webhooks", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}, ("webhooks",)),
    ],
)
def test_budgets_rules_webhooks_and_tokens_refuse_server_owned_and_unknown_fields(client, db, path, valid, kept):
    """Also the fields only the service sets: what a rule has made, a transaction's rule, a
    webhook's secret and whether it is active (a new one is), a personal access token's secret, its
    hash, its expiry (given in days) and its last use."""
    victim_id, _ = user_with_headers(client)
    _, headers = user_with_headers(client)
    service_kept = {
        "last_occurrence": "2999-01-01", "next_occurrence": None, "recurring_id": 1, "spent": "0",
        "secret": "whsec_AAAA", "active": False,
        "token": "fin_pat_" + "A" * 43, "token_hash": "00" * 32, "expires_at": "2999-01-01T00:00:00+00:00",
        "last_used_at": None,
    }
    for field, value in {**HOSTILE_FIELDS, **service_kept, "user_id": victim_id}.items():
        _refused_field(client.post(path, json={**valid, field: value}, headers=headers), field)
    for table in kept:
        assert db.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()["n"] == 0


def test_update_refuses_server_owned_and_unknown_fields_and_changes_nothing(client, db):
    victim_id, _ = user_with_headers(client)
    user_id, headers = user_with_headers(client)
    created = create(client, headers, amount="10.00", category="food", occurred_at="2026-01-15T12:00:00+00:00")
    before = _transactions(db, user_id)
    for field, value in HOSTILE_FIELDS.items():
        if field == "user_id":
            value = victim_id
        for body in ({field: value}, {"amount": "99.00", field: value}):
            _refused_field(client.patch(f"/transactions/{created['id']}", json=body, headers=headers), field)
    assert _transactions(db, user_id) == before
    assert _transactions(db, victim_id) == []
    assert client.get(f"/transactions/{created['id']}", headers=headers).json() == created


@pytest.mark.parametrize("path", ["/transactions", "/transactions/export", "/analytics", "/accounts", "/transfers"])
def test_a_query_cannot_name_another_user(client, path):
    victim_id, victim = user_with_headers(client)
    create(client, victim, amount="5.00")
    _, headers = user_with_headers(client)
    _refused_field(client.get(path, params={"user_id": victim_id}, headers=headers), "user_id")


def test_every_json_body_refuses_an_unknown_field(client, db):
    """Every operation of the Swagger document that takes a JSON body refuses an unknown field
    with 400 before doing anything, and documents that it does (additionalProperties: false)."""
    document = client.get("/swagger.json").json()
    user_id, headers = user_with_headers(client)
    transaction = create(client, headers)
    main = client.get("/accounts", headers=headers).json()["items"][0]
    savings = client.post("/accounts", json={"name": "Savings", "kind": "savings"}, headers=headers).json()
    body = {"from_account_id": main["id"], "to_account_id": savings["id"], "amount": "1.00"}
    transfer = client.post("/transfers", json=body, headers=headers).json()
    accounts = client.get("/accounts", headers=headers).json()
    budget = client.post("/budgets", json={"category": "food", "amount": "10"}, headers=headers).json()
    rule = {"type": "expense", "amount": "1.00", "frequency": "monthly", "start_date": "2999-01-01"}
    recurring = client.post("/recurring-transactions", json=rule, headers=headers).json()
    pat = client.post("/tokens", json={"name": "script", "scope": "read"}, headers=headers).json()
    tokens = client.get("/tokens", headers=headers).json()
    webhook = client.post("/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": ["*"]}, headers=headers)
    webhooks = client.get("/webhooks", headers=headers).json()
    ids = {
        "{transaction_id}": transaction["id"], "{account_id}": savings["id"], "{transfer_id}": transfer["id"],
        "{budget_id}": budget["id"], "{recurring_id}": recurring["id"], "{webhook_id}": webhook.json()["id"],
        "{token_id}": pat["id"],
    }
    checked = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            body = [p for p in operation.get("parameters", []) if p.get("in") == "body"]
            if not body:
                continue
            definition = document["definitions"][body[0]["schema"]["$ref"].rsplit("/", 1)[1]]
            assert definition.get("additionalProperties") is False, (method, path)
            url = path
            for placeholder, value in ids.items():
                url = url.replace(placeholder, str(value))
            response = client.request(method.upper(), url, json={"is_admin": True}, headers=headers)
            _refused_field(response, "is_admin")
            checked.append(f"{method.upper()} {path}")
    assert {"POST /register", "POST /login", "POST /transactions", "POST /transaction",
            "PATCH /transactions/{transaction_id}", "POST /accounts", "PATCH /accounts/{account_id}",
            "POST /transfers", "PATCH /transfers/{transfer_id}", "POST /budgets", "PATCH /budgets/{budget_id}",
            "POST /recurring-transactions", "PATCH /recurring-transactions/{recurring_id}", "POST /webhooks",
            "PATCH /webhooks/{webhook_id}", "POST /tokens"} <= set(checked)
    # Nothing changed: the user, the token, the transaction, the accounts, the transfer, the budget,
    # the rule, the webhook and the personal access tokens are as they were.
    assert client.get(f"/transactions/{transaction['id']}", headers=headers).json() == transaction
    assert client.get("/accounts", headers=headers).json() == accounts
    assert client.get("/transfers", headers=headers).json()["items"] == [transfer]
    assert client.get("/budgets", headers=headers).json()["items"][0]["amount"] == budget["amount"]
    assert client.get("/recurring-transactions", headers=headers).json()["items"] == [recurring]
    assert client.get("/tokens", headers=headers).json() == tokens
    assert client.get("/webhooks", headers=headers).json() == webhooks
    assert len(_transactions(db, user_id)) == 1


def test_import_refuses_server_owned_columns_and_ignores_an_exported_id(client, db):
    user_id, headers = user_with_headers(client)
    csv_headers = {**headers, "Content-Type": "text/csv"}
    for column in ("user_id", "created_at", "updated_at", "is_admin"):
        csv = f"type,amount,{column}\nexpense,1.00,1\n"
        assert_error(client.post("/transactions/import", content=csv, headers=csv_headers), 400, "invalid_csv")
    assert _transactions(db, user_id) == []
    # `id` is a column of an export, accepted so an export imports back, and never used.
    imported = client.post("/transactions/import", content="id,type,amount\n424242,expense,1.00\n", headers=csv_headers)
    assert imported.status_code == 201, imported.text
    (row,) = _transactions(db, user_id)
    assert row["id"] != 424242


# --- no password hash in any response ----------------------------------------------------------


def _hash_free(response: httpx.Response, password: str) -> None:
    text = response.text
    assert "argon2" not in text.lower(), response.text
    assert password not in text
    assert "password_hash" not in text


def test_no_response_carries_a_password_hash_or_the_password(client, db):
    password = "distinctive-password-4711"
    username = new_username()
    registered = client.post("/register", json={"username": username, "password": password})
    assert registered.status_code == 201
    assert set(registered.json()) == {"id", "username"}
    stored = db.execute("SELECT password_hash FROM users WHERE id = %s", (registered.json()["id"],)).fetchone()
    # The marker the assertions look for is what a leaked hash would carry.
    assert stored["password_hash"].startswith("$argon2id$")
    responses = [
        registered,
        client.post("/register", json={"username": username, "password": password}),  # 409
        client.post("/register", json={"username": new_username(), "password": "short"}),  # 400
        client.post("/register", json={"username": new_username(), "password": password + "x" * 200}),  # 400
        client.post("/login", json={"username": username, "password": password + "-wrong"}),  # 401
    ]
    logged_in = client.post("/login", json={"username": username, "password": password})
    assert set(logged_in.json()) == {"token", "token_type", "expires_in"}
    responses.append(logged_in)
    headers = bearer(logged_in.json()["token"])
    transaction = create(client, headers, amount="12.50", category="food", description="lunch")
    responses += [
        client.patch(f"/transactions/{transaction['id']}", json={"amount": "13.00"}, headers=headers),
        client.get("/transactions/999999", headers=headers),
        client.get("/transactions", headers={"Authorization": "Bearer not-a-token"}),
        client.post("/transactions/import", content="type,amount\nexpense,2.00\n",
                    headers={**headers, "Content-Type": "text/csv"}),
    ]
    # Every GET operation of the document, with the transaction's id in the path.
    document = client.get("/swagger.json").json()
    responses.append(client.get("/swagger.json"))
    for path, operations in document["paths"].items():
        if "get" in operations:
            responses.append(client.get(path.replace("{transaction_id}", str(transaction["id"])), headers=headers))
    for response in responses:
        assert response.status_code < 500, response.text
        _hash_free(response, password)
    assert len(responses) > 15


# --- amounts that are not finite numbers -------------------------------------------------------


@pytest.mark.parametrize("amount", ["NaN", "nan", "Infinity", "-Infinity", "inf"])
def test_the_database_refuses_a_non_finite_amount(db, amount):
    user_id = insert_user(db)
    with pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.NumericValueOutOfRange)):
        db.execute(
            "INSERT INTO transactions (user_id, type, amount) VALUES (%s, 'expense', %s::numeric)", (user_id, amount)
        )
    row_id = db.execute(
        "INSERT INTO transactions (user_id, type, amount) VALUES (%s, 'expense', 1) RETURNING id", (user_id,)
    ).fetchone()["id"]
    with pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.NumericValueOutOfRange)):
        db.execute("UPDATE transactions SET amount = %s::numeric WHERE id = %s", (amount, row_id))
    assert [row["amount"] for row in _transactions(db, user_id)] == [1]


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "0", "-1", "1000000000000"])
def test_the_amount_check_refuses_what_the_column_type_would_let_through(db, amount):
    """numeric(14, 2) itself cannot hold an infinity; the CHECK of 0006 refuses one anyway, so the
    rule holds even if the column's type is ever widened. A copy of the table with its CHECK
    constraints but an unbounded numeric shows it."""
    db.execute("CREATE TEMP TABLE amounts (LIKE transactions INCLUDING CONSTRAINTS INCLUDING DEFAULTS)")
    try:
        db.execute("ALTER TABLE amounts ALTER COLUMN amount TYPE numeric")
        with pytest.raises(psycopg.errors.CheckViolation) as caught:
            db.execute(
                "INSERT INTO amounts (id, user_id, account_id, type, amount) VALUES (1, 1, 1, 'expense', %s::numeric)",
                (amount,),
            )
        assert caught.value.diag.constraint_name in ("transactions_amount_check", "transactions_amount_range")
        db.execute(
            "INSERT INTO amounts (id, user_id, account_id, type, amount) VALUES (1, 1, 1, 'expense', 999999999999.99)"
        )
    finally:
        db.execute("DROP TABLE amounts")


def test_the_named_amount_check_exists(db):
    definition = db.execute(
        "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conname = 'transactions_amount_range'"
    ).fetchone()
    assert definition is not None
    assert "999999999999.99" in definition["d"] and "> (0)" in definition["d"]


LONG_INTEGER = "1" * 5000  # past Python's default limit of 4300 digits for int()
HOSTILE_AMOUNT_TEXTS = {
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "exponent": "1e3",
    "huge-exponent": "1e999999",
    "long-integer": LONG_INTEGER,
    "long-fraction": "1." + "0" * 5000 + "1",
    "long-zero-fraction": "1." + "0" * 5000,
    "forty-one-digits": "1" * 41,
}
# The same in a query string, short enough for gunicorn's request line (4094 bytes).
HOSTILE_QUERY_AMOUNTS = {
    **HOSTILE_AMOUNT_TEXTS,
    "long-integer": "1" * 1000,
    "long-fraction": "1." + "0" * 1000 + "1",
    "long-zero-fraction": "1." + "0" * 1000,
}


@pytest.mark.parametrize(
    ("text", "accepted"),
    [("1." + "0" * 40, True), ("1." + "0" * 41, False), ("1." + "0" * 5000, False), ("10000.0", True)],
)
def test_a_json_number_may_have_no_more_fraction_digits_than_a_string(text, accepted):
    number = json.loads(text, parse_float=parse_json_number)
    for value in (number, text):
        if accepted:
            assert Money().deserialize(value) == Decimal(text)
        else:
            with pytest.raises(ValidationError):
                Money().deserialize(value)


@pytest.mark.parametrize("name", HOSTILE_AMOUNT_TEXTS)
def test_create_and_update_refuse_non_finite_exponent_and_over_long_amounts(client, db, name):
    user_id, headers = user_with_headers(client)
    kept = create(client, headers, amount="10.00")
    text = HOSTILE_AMOUNT_TEXTS[name]
    json_headers = {**headers, "Content-Type": "application/json"}
    for amount in (text, json.dumps(text)):  # as a JSON number (or constant) and as a string
        body = f'{{"type": "expense", "amount": {amount}}}'
        response = client.post("/transactions", content=body, headers=json_headers)
        assert_error(response, 400)
        response = client.patch(f"/transactions/{kept['id']}", content=f'{{"amount": {amount}}}', headers=json_headers)
        assert_error(response, 400)
    assert [row["amount"] for row in _transactions(db, user_id)] == [10]


@pytest.mark.parametrize("name", HOSTILE_QUERY_AMOUNTS)
def test_amount_filters_refuse_non_finite_exponent_and_over_long_amounts(client, name):
    _, headers = user_with_headers(client)
    for parameter in ("min_amount", "max_amount"):
        for path in ("/transactions", "/transactions/export"):
            response = client.get(path, params={parameter: HOSTILE_QUERY_AMOUNTS[name]}, headers=headers)
            _refused_field(response, parameter)


def test_import_refuses_non_finite_exponent_and_over_long_amounts(client, db):
    user_id, headers = user_with_headers(client)
    rows = "".join(f"expense,{text}\n" for text in HOSTILE_AMOUNT_TEXTS.values())
    response = client.post("/transactions/import", content="type,amount\n" + rows,
                           headers={**headers, "Content-Type": "text/csv"})
    error = assert_error(response, 422, "invalid_rows")
    assert [row["row"] for row in error["rows"]] == list(range(2, 2 + len(HOSTILE_AMOUNT_TEXTS)))
    assert all("amount" in row["fields"] for row in error["rows"])
    assert _transactions(db, user_id) == []


# --- security headers and the server banner ----------------------------------------------------


def _sample_responses(client: httpx.Client, **extra_headers: str) -> Iterator[httpx.Response]:
    """One response of every kind: public, authenticated, each error status, CSV, 204, OPTIONS."""
    username = new_username()
    register(client, username)
    headers = {**bearer(login(client, username)), **extra_headers}
    transaction = create(client, headers)
    yield client.get("/health", headers=extra_headers)
    yield client.get("/health/ready", headers=extra_headers)
    yield client.get("/swagger.json", headers=extra_headers)
    yield client.post("/register", json={"username": new_username(), "password": "password@123"}, headers=extra_headers)
    yield client.post("/login", json={"username": username, "password": "wrong-password"}, headers=extra_headers)
    yield client.get("/transactions", headers=headers)
    yield client.get(f"/transactions/{transaction['id']}", headers=headers)
    yield client.patch(f"/transactions/{transaction['id']}", json={"amount": "2.00"}, headers=headers)
    yield client.get("/transactions/export", headers=headers)
    yield client.get("/categories", headers=headers)
    yield client.get("/analytics", headers=headers)
    yield client.post("/transactions", json={"type": "expense", "amount": "1.00"}, headers=headers)
    yield client.post("/transactions", json={"type": "expense", "amount": "0"}, headers=headers)  # 400
    yield client.get("/transactions", headers=extra_headers)  # 401
    yield client.get("/transactions/999999", headers=headers)  # 404
    yield client.get("/no-such-path", headers=extra_headers)  # 404 from routing
    yield client.put("/transactions", headers=headers)  # 405
    yield client.post("/transactions", content="x", headers={**headers, "Content-Type": "text/plain"})  # 415
    yield client.post("/transactions", content=b"x" * (1024 * 1024 + 1),
                      headers={**headers, "Content-Type": "application/json"})  # 413
    yield client.options("/transactions", headers=extra_headers)
    yield client.delete(f"/transactions/{transaction['id']}", headers=headers)  # 204


def test_every_response_has_nosniff_no_store_and_no_server_banner(client):
    statuses = set()
    for response in _sample_responses(client):
        statuses.add(response.status_code)
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        assert response.headers.get("x-content-type-options") == "nosniff", where
        assert response.headers.get("cache-control") == "no-store", where
        servers = response.headers.get_list("server")
        assert len(servers) <= 1, where
        for value in servers:
            assert "gunicorn" not in value.lower() and not re.search(r"[0-9]", value), (where, value)
    assert {200, 201, 204, 400, 401, 404, 405, 413, 415} <= statuses


def test_the_server_header_is_neutral(client):
    assert client.get("/health").headers["server"] == "finance-api"


def _raw_exchange(client: httpx.Client, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes no HTTP client would, and read the whole answer (gunicorn closes after it)."""
    with socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return status_line, headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # past gunicorn's request line limit
        (b"NOT A REQUEST LINE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    ],
)
def test_requests_gunicorn_refuses_get_the_json_envelope_not_html(client, request_bytes, status):
    status_line, headers, body = _raw_exchange(client, request_bytes)
    assert status_line.startswith(f"HTTP/1.1 {status} "), status_line
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["server"] == "finance-api"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    error = json.loads(body)["error"]
    assert error["code"] and error["message"]
    assert b"<html" not in body.lower()
    # Nothing the client sent is quoted back.
    for sent in (b"aaaaaaaaaa", b"NOT A REQUEST", b"Bad Header"):
        assert sent.lower() not in body.lower()


def test_options_answers_json_with_the_allowed_methods(client):
    response = client.options("/transactions")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    allowed = {"GET", "HEAD", "OPTIONS", "POST"}
    assert set(response.json()["allow"]) == allowed
    assert {method.strip() for method in response.headers["allow"].split(",")} == allowed


# --- CORS --------------------------------------------------------------------------------------


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name.lower(): value for name, value in response.headers.items() if name.lower().startswith("access-control-")
    }


def _preflight(client: httpx.Client, origin: str, path: str = "/transactions", method: str = "POST") -> httpx.Response:
    return client.options(path, headers={
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ", ".join(name.lower() for name in CORS_REQUEST_HEADERS),
    })


def test_cors_is_off_without_an_allow_list(client):
    _, headers = user_with_headers(client)
    for origin in (ALLOWED_ORIGIN, *REFUSED_ORIGINS):
        for response in (
            client.get("/health", headers={"Origin": origin}),
            client.get("/transactions", headers={**headers, "Origin": origin}),
            client.get("/transactions", headers={"Origin": origin}),  # 401
            _preflight(client, origin),
        ):
            assert _cors_headers(response) == {}, (origin, response.headers)
            assert "origin" not in response.headers.get("vary", "").lower()


@pytest.fixture(scope="module")
def cors_server(stack, servers) -> Iterator[localstack.Server]:
    """tenant1 served by a second gunicorn that allows two browser origins."""
    env = {
        **servers["tenant1"].env,
        "CORS_ALLOWED_ORIGINS": f" {ALLOWED_ORIGIN} ,{OTHER_ALLOWED_ORIGIN}",
        "WEB_CONCURRENCY": "1",
    }
    server = stack.start_server("tenant1", env, localstack.free_port())
    yield server
    server.stop()


@pytest.fixture
def cors_client(cors_server, clean) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cors_server.url, timeout=30) as http:
        yield http


def test_an_allowed_origin_gets_its_origin_echoed_on_every_response(cors_client):
    for origin in (ALLOWED_ORIGIN, OTHER_ALLOWED_ORIGIN):
        statuses = set()
        for response in _sample_responses(cors_client, Origin=origin):
            statuses.add(response.status_code)
            where = f"{response.request.method} {response.request.url.path} {response.status_code}"
            cors = _cors_headers(response)
            assert cors["access-control-allow-origin"] == origin, where
            assert "access-control-allow-credentials" not in cors, where
            assert "origin" in response.headers.get("vary", "").lower(), where
            assert response.headers["x-content-type-options"] == "nosniff", where
            assert response.headers["cache-control"] == "no-store", where
            if response.request.method != "OPTIONS":
                exposed = {name.strip().lower() for name in cors["access-control-expose-headers"].split(",")}
                assert {"location", "retry-after", "x-request-id"} <= exposed, where
        assert {200, 201, 204, 400, 401, 404, 405, 413, 415} <= statuses


def test_an_allowed_origin_gets_a_preflight_answer(cors_client):
    for path, method in (("/transactions", "POST"), ("/transactions/1", "PATCH"), ("/transactions/1", "DELETE"),
                         ("/analytics", "GET"), ("/login", "POST")):
        response = _preflight(cors_client, ALLOWED_ORIGIN, path, method)
        assert 200 <= response.status_code < 300, response.text
        cors = _cors_headers(response)
        assert cors["access-control-allow-origin"] == ALLOWED_ORIGIN
        methods = {name.strip() for name in cors["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PATCH", "DELETE"} <= methods
        allowed = {name.strip().lower() for name in cors["access-control-allow-headers"].split(",")}
        assert {name.lower() for name in CORS_REQUEST_HEADERS} <= allowed
        assert int(cors["access-control-max-age"]) > 0
        assert "access-control-allow-credentials" not in cors
        assert "origin" in response.headers["vary"].lower()


def test_any_other_origin_gets_no_cors_header(cors_client):
    _, headers = user_with_headers(cors_client)
    for origin in REFUSED_ORIGINS:
        for response in (
            cors_client.get("/health", headers={"Origin": origin}),
            cors_client.get("/transactions", headers={**headers, "Origin": origin}),
            cors_client.get("/transactions", headers={"Origin": origin}),  # 401
            _preflight(cors_client, origin),
        ):
            assert _cors_headers(response) == {}, (origin, response.headers)
    # Nor does a request without an Origin (not a browser's cross-origin request).
    assert _cors_headers(cors_client.get("/health")) == {}
    assert _cors_headers(cors_client.options("/health")) == {}


def test_a_refused_origin_still_gets_its_answer_without_cors(cors_client):
    """CORS only tells a browser whether a page may read the answer: the API itself answers as
    usual, so a non-browser client is unaffected (authentication is what protects the data)."""
    _, headers = user_with_headers(cors_client)
    response = cors_client.get("/transactions", headers={**headers, "Origin": "https://evil.example.com"})
    assert response.status_code == 200
    assert _cors_headers(response) == {}


@pytest.mark.parametrize(
    "value",
    ["*", "null", "https://app.example.com/", "https://App.example.com", "https://app.example.com:443",
     "http://app.example.com:80", "app.example.com", "https://app.example.com/path", "ftp://app.example.com",
     "https://*.example.com", "https://app.example.com:99999", "https://user@app.example.com"],
)
def test_settings_refuse_an_origin_that_is_not_exact(tenant_envs, value):
    env = {**tenant_envs["tenant1"], "CORS_ALLOWED_ORIGINS": f"{ALLOWED_ORIGIN},{value}"}
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        Settings.from_env(env)


def test_settings_read_a_list_of_origins(tenant_envs):
    env = {**tenant_envs["tenant1"], "CORS_ALLOWED_ORIGINS": " https://app.example.com, http://localhost:3000,,"}
    assert Settings.from_env(env).cors_allowed_origins == {"https://app.example.com", "http://localhost:3000"}
    assert Settings.from_env({**env, "CORS_ALLOWED_ORIGINS": ""}).cors_allowed_origins == frozenset()
    unset = {name: value for name, value in env.items() if name != "CORS_ALLOWED_ORIGINS"}
    assert Settings.from_env(unset).cors_allowed_origins == frozenset()


def test_the_server_refuses_to_start_with_an_invalid_origin(tenant_envs):
    env = {**tenant_envs["tenant1"], "CORS_ALLOWED_ORIGINS": "*"}
    result = subprocess.run(
        [str(localstack.VENV_PYTHON), "-m", "service", "check-config"],
        env=env, cwd=localstack.ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "CORS_ALLOWED_ORIGINS" in result.stderr
