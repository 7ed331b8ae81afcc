"""Generators accept /openapi.json: openapi-python-client generates a Python client from tenant1's
live document, and that client, and nothing else, drives a user's whole flow through the real
server (issue 15).

The client is generated once per module (about a second). Each step of the flow is one call of a
generated operation through `Generated.call`, which checks the status and returns the parsed
model; a new endpoint's step is a few lines there (see the end of the flow)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.utils import PASSWORD

PACKAGE = "finance_api_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


class Generated:
    """The generated package: its models, its clients, and its operations by tag and operationId."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.clients = importlib.import_module(f"{PACKAGE}.client")

    def public(self, base_url: str) -> Any:
        return self.clients.Client(base_url=base_url, raise_on_unexpected_status=True)

    def authenticated(self, base_url: str, token: str, **header: str) -> Any:
        """A client sending the token as `Authorization: Bearer` unless told another header."""
        return self.clients.AuthenticatedClient(
            base_url=base_url, token=token, raise_on_unexpected_status=True, **header
        )

    def call(self, tag: str, operation_id: str, status: int, **arguments: Any) -> Any:
        """Call a generated operation (module api/<tag>/<operation_id>.py); assert the status it
        answered and return the model the client parsed."""
        operation = importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")
        response = operation.sync_detailed(**arguments)
        assert response.status_code == status, (operation_id, response.status_code, response.content)
        return response.parsed


@pytest.fixture(scope="module")
def generated(servers, tmp_path_factory) -> Iterator[Generated]:
    """A client generated from tenant1's /openapi.json, importable for this module's tests."""
    document = httpx.get(f"{servers['tenant1'].url}/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    where = tmp_path_factory.mktemp("generated-client")
    (where / "openapi.json").write_bytes(document.content)
    result = subprocess.run(
        [
            str(GENERATOR), "generate", "--path", str(where / "openapi.json"), "--meta", "none",
            "--output-path", str(where / PACKAGE), "--fail-on-warning",
        ],
        cwd=where,
        # The generator formats what it writes with ruff (a dev dependency, beside it in the venv).
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(where))
    try:
        yield Generated(importlib.import_module(PACKAGE))
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_the_generated_client_has_an_operation_for_every_documented_one(generated, client):
    document = client.get("/openapi.json").json()
    for item in document["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                tag = operation["tags"][0].replace("-", "_")
                module = importlib.import_module(f"{PACKAGE}.api.{tag}.{operation['operationId']}")
                assert callable(module.sync_detailed), operation["operationId"]


def test_a_generated_client_drives_a_user_through_the_api(generated, client):
    m, call = generated.models, generated.call
    base_url = str(client.base_url)
    username = f"generated-{uuid.uuid4().hex[:12]}@example.com"

    # Register and log in, without a token.
    public = generated.public(base_url)
    user = call("auth", "post_register", 201, client=public, body=m.Credentials(username=username, password=PASSWORD))
    assert user.username == username and user.id > 0
    token = call("auth", "post_login", 200, client=public, body=m.Credentials(username=username, password=PASSWORD))
    assert token.token and token.expires_in > 0
    authed = generated.authenticated(base_url, token.token)  # Authorization: Bearer <token>

    # An account with an opening balance.
    account = call(
        "accounts", "post_account_collection", 201, client=authed,
        body=m.AccountCreate(name="Everyday", kind=m.AccountCreateKind.CHECKING, opening_balance="100.00"),
    )  # fmt: skip
    assert (account.name, account.kind, account.balance, account.is_default) == (
        "Everyday", m.AccountPublicKind.CHECKING, "100.00", False,
    )  # fmt: skip

    # Two transactions in it: an income, and an expense with an Idempotency-Key (sent twice: one row).
    salary = call(
        "transactions", "post_transaction_collection", 201, client=authed,
        body=m.TransactionCreate(
            type_=m.TransactionCreateType.INCOME, amount="1250.00", account_id=account.id, category="salary",
            occurred_at=datetime(2026, 2, 10, 17, 0, tzinfo=UTC),
        ),
    )  # fmt: skip
    lunch_body = m.TransactionCreate(
        type_=m.TransactionCreateType.EXPENSE, amount="12.50", account_id=account.id, category="food",
        description="Lunch", occurred_at=datetime(2026, 2, 11, 17, 0, tzinfo=UTC),
    )  # fmt: skip
    lunch = call("transactions", "post_transaction_collection", 201, client=authed, body=lunch_body,
                 idempotency_key="lunch-1")  # fmt: skip
    replay = call("transactions", "post_transaction_collection", 201, client=authed, body=lunch_body,
                  idempotency_key="lunch-1")  # fmt: skip
    assert replay.id == lunch.id
    assert (salary.amount, salary.type_, salary.account_id, salary.currency) == (
        "1250.00", m.TransactionPublicType.INCOME, account.id, account.currency,
    )  # fmt: skip
    assert (lunch.amount, lunch.description, lunch.category, lunch.recurring_id) == ("12.50", "Lunch", "food", None)
    assert lunch.occurred_at == datetime(2026, 2, 11, 17, 0, tzinfo=UTC)

    # The list, newest first, as the enum the generator named says.
    page = call(
        "transactions", "get_transaction_collection", 200, client=authed, account_id=account.id,
        sort=m.GetTransactionCollectionSort.OCCURRED_AT_DESC,
    )  # fmt: skip
    assert [(row.id, row.amount) for row in page.items] == [(lunch.id, "12.50"), (salary.id, "1250.00")]
    assert page.next_cursor is None
    balance = call("accounts", "get_account_item", 200, client=authed, account_id=account.id).balance
    assert Decimal(balance) == Decimal("100.00") + Decimal("1250.00") - Decimal("12.50")

    # Analytics over February, by category.
    summary = call(
        "analytics", "get_analytics", 200, client=authed, account_id=account.id,
        from_=date(2026, 2, 1), to=date(2026, 2, 28), group_by=m.GetAnalyticsGroupBy.CATEGORY,
    )  # fmt: skip
    assert (summary.total_income, summary.total_expense, summary.net_balance, summary.count) == (
        "1250.00", "12.50", "1237.50", 2,
    )  # fmt: skip
    assert (summary.from_, summary.to, summary.period) == (date(2026, 2, 1), date(2026, 2, 28), "custom")
    groups = {group.key: (group.total_income, group.total_expense, group.count) for group in summary.groups}
    assert groups == {"salary": ("1250.00", "0.00", 1), "food": ("0.00", "12.50", 1)}

    # The other token header, and a refusal parsed as the error envelope's model.
    by_header = generated.authenticated(base_url, token.token, prefix="", auth_header_name="x-access-token")
    read = call("transactions", "get_transaction_item", 200, client=by_header, transaction_id=salary.id)
    assert (read.id, read.amount) == (salary.id, "1250.00")
    missing = call("transactions", "get_transaction_item", 404, client=authed, transaction_id=999_999_999)
    assert isinstance(missing, m.Error) and missing.error.code == "not_found"

    # A webhook for new transactions (its secret shown once), then one more expense: one delivery.
    hook = call("webhooks", "post_webhook_collection", 201, client=authed, body=m.WebhookCreate(
        url="http://127.0.0.1:9/finance", events=[m.WebhookCreateEventsItem.TRANSACTION_CREATED],
    ))  # fmt: skip
    assert hook.secret.startswith("whsec_") and hook.active
    coffee = call("transactions", "post_transaction_collection", 201, client=authed, body=m.TransactionCreate(
        type_=m.TransactionCreateType.EXPENSE, amount="3.20", account_id=account.id,
    ))  # fmt: skip
    deliveries = call("webhooks", "get_webhook_deliveries", 200, client=authed, webhook_id=hook.id)
    assert [delivery.event_type for delivery in deliveries.items] == ["transaction.created"]

    # The event feed: each change once, in order, with the record as the API answered it; a
    # replayed create made none.
    feed = call("events", "get_event_collection", 200, client=authed, limit=50)
    seen = [(event.type_, event.data.to_dict().get("id")) for event in feed.items]
    assert seen == [
        ("account.created", seen[0][1]), ("account.created", account.id),
        ("transaction.created", salary.id), ("transaction.created", lunch.id), ("transaction.created", coffee.id),
    ]
    assert feed.items[3].data.to_dict()["amount"] == "12.50"
    assert call("events", "get_event_collection", 200, client=authed, after=feed.next_cursor).items == []
