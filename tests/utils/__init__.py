"""Data helpers for the tests: accounts, tokens, transactions."""

from __future__ import annotations

import uuid

import httpx

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


def auth_headers(client: httpx.Client, username: str | None = None) -> dict[str, str]:
    """Register a fresh user and return headers carrying their token."""
    user = register(client, username)
    return {"Authorization": f"Bearer {login(client, user['username'])}"}


def create(client: httpx.Client, headers: dict, **fields) -> dict:
    body = {"type": "expense", "amount": "10.00", **fields}
    response = client.post("/transactions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()
