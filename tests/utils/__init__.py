"""Data helpers for the tests: accounts, tokens, transactions."""

from __future__ import annotations

import functools
import time
import uuid
from pathlib import Path

import httpx
from argon2 import PasswordHasher

PASSWORD = "password@123"


def new_username() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def register(client: httpx.Client, username: str | None = None, password: str = PASSWORD) -> dict:
    response = client.post("/register", json={"username": username or new_username(), "password": password})
    assert response.status_code == 201, response.text
    return response.json()


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> str:
    response = client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def bearer(token: str) -> dict[str, str]:
    """Headers carrying a token the way clients send it."""
    return {"Authorization": f"Bearer {token}"}


def auth_headers(client: httpx.Client, username: str | None = None) -> dict[str, str]:
    """Register a fresh user and return headers carrying their token."""
    user = register(client, username)
    return bearer(login(client, user["username"]))


def create(client: httpx.Client, headers: dict, **fields) -> dict:
    body = {"type": "expense", "amount": "10.00", **fields}
    response = client.post("/transactions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def count_transactions(db, user_id: int | None = None) -> int:
    """How many transactions are stored: the user's, or everyone's."""
    if user_id is None:
        return db.execute("SELECT count(*) AS n FROM transactions").fetchone()["n"]
    return db.execute("SELECT count(*) AS n FROM transactions WHERE user_id = %s", (user_id,)).fetchone()["n"]


def user_with_headers(client: httpx.Client) -> tuple[int, dict[str, str]]:
    """Register a fresh user; return their id and headers carrying their token."""
    user = register(client)
    return user["id"], bearer(login(client, user["username"]))


@functools.cache
def _password_hash(password: str) -> str:
    # argon2id with the library's defaults, as the service hashes: computed once per password.
    return PasswordHasher().hash(password)


def insert_user(db, username: str | None = None, password: str = PASSWORD) -> int:
    """Make a user row directly (no request, nothing rate-limited); they can log in with password."""
    return db.execute(
        "INSERT INTO users (username, password_hash) VALUES (%s, %s) RETURNING id",
        (username or new_username(), _password_hash(password)),
    ).fetchone()["id"]


def mint_token(
    secret: str,
    tenant: str,
    user_id: str | int,
    *,
    drop: tuple[str, ...] = (),
    algorithm: str = "HS256",
    **claims,
) -> str:
    """Sign a token like the service's own (sub, iat, exp, jti, iss, aud), with claims overridden or dropped."""
    import time

    import jwt

    now = int(time.time())
    body = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "iss": tenant,
        "aud": tenant,
        **claims,
    }
    for name in drop:
        body.pop(name)
    return jwt.encode(body, secret, algorithm=algorithm)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """Check the service's JSON error envelope {"error": {"code", "message", ...}}; return the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "<html" not in response.text.lower()
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return error


def poll(url: str, done, timeout: float = 20) -> httpx.Response | None:
    """GET url until done(response) holds; return the last response (None: no answer)."""
    deadline = time.monotonic() + timeout
    response = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError:
            response = None
        if done(response):
            return response
        time.sleep(0.2)
    return response


# The restore drill's checks (kubernetes/base): every transaction's user exists, and the daily and
# monthly totals equal a recomputation from the rows; raises at the first that fails.
DRILL_CHECK = Path(__file__).resolve().parents[2] / "kubernetes" / "base" / "restore-drill-check.sql"


def check_totals(conn) -> None:
    """Run the restore drill's checks on a tenant database (the connection becomes read-only)."""
    conn.execute(DRILL_CHECK.read_text())
