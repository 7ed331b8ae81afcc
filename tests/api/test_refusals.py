"""Refusals decided without the database, and the status of every domain error."""

from __future__ import annotations

import pytest

from service import create_app
from service.config import Settings
from service.core import errors as domain
from service.errors import domain_status
from tests.utils import assert_error, mint_token

TENANT = "tenant1"


@pytest.fixture
def app_without_database(tenant_envs):
    """tenant1's app with its database unreachable (a port nothing listens on)."""
    env = {**tenant_envs[TENANT], "DATABASE_URL": "postgresql://finance@127.0.0.1:9/finance"}
    return create_app(Settings.from_env(env))


@pytest.mark.parametrize("header", ["x-access-token", "Authorization"])
def test_a_bad_token_is_401_even_while_the_database_is_down(app_without_database, tenant_envs, header):
    forged = mint_token("another-signing-key-of-32-bytes-or-more!!", TENANT, 1)
    value = forged if header == "x-access-token" else f"Bearer {forged}"
    response = app_without_database.test_client().get("/transactions", headers={header: value})
    assert response.status_code == 401, response.text
    assert response.json["error"]["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_wrong_password_is_401_without_a_bearer_challenge(client):
    response = client.post("/login", json={"username": "nobody@example.com", "password": "wrong-password"})
    assert_error(response, 401, "invalid_credentials")
    assert "www-authenticate" not in response.headers


def _kinds(kind: type) -> list[type]:
    return [kind, *(sub for direct in kind.__subclasses__() for sub in _kinds(direct))]


def test_every_kind_of_domain_error_has_a_status():
    kinds = [kind for kind in _kinds(domain.DomainError) if kind.__module__ == domain.__name__]
    assert len(kinds) > 5
    unmapped = [kind.__name__ for kind in kinds if kind is not domain.DomainError and domain_status(kind) is None]
    assert unmapped == []
    assert domain_status(domain.DomainError) is None  # a bare one is a programming error: a 500
