"""Property-based tests of a live tenant against its own Swagger document, with schemathesis.

Schemathesis reads `/openapi.json` of tenant1's real gunicorn (the Swagger document in OpenAPI 3,
service/api/openapi.py, so its conversion meets real answers too) and, for every operation, sends
the documented examples, boundary and mutation cases (its coverage phase) and random valid and
invalid requests (wrong types, missing or unknown fields, values out of range, wrong content types,
undocumented methods). Every built-in check runs on every response: no server error, a documented
status code, a body matching the documented schema, the documented content type and headers, that
invalid requests are refused and valid ones accepted, that a missing or broken token is refused
(each authenticated request is replayed without it and with a bad one in either header), and that
an undocumented method is refused with 405 and an Allow header. Seeded and derandomized: every run
sends the same requests. Requests built by hand add what random ones almost never reach: budgets
with spending, recurring rules with occurrences, and the transactions those rules make.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import schemathesis

from tests.utils import login, register

# Random examples per operation (the fuzzing phase; the examples and coverage phases add their
# own); enough to reach every documented status while the file stays well under two minutes.
MAX_EXAMPLES = 30
SLOW_MAX_EXAMPLES = 10
SEED = 20_260_101
# Rules Swagger 2 has no words for, by operation: a request the document allows may still break
# one, and is then refused with one of these (status, error code), naming no other field than
# these. For these operations the check that valid data is accepted (positive_data_acceptance,
# which allows 2xx, 3xx, 401, 403, 404, 409, 429) runs as below, with these refusals allowed too.
# Days lie between 1900-01-01 and 2999-12-31: a `format: date` or `date-time` cannot bound them,
# and a pattern cannot tell 2026-02-30 from 2026-02-28.
DAYS = {"from", "to"}
# An account_id (in a body or a query) must be one of the user's accounts, which Swagger cannot say.
ACCOUNT = {"account_id"}
# A recurring transaction's start_date is at most 366 days before the tenant's today, and its
# end_date not before its start_date (on a PATCH, the rule's own when the body has none); both are
# days as above.
RULE_DAYS = {"start_date", "end_date"}
# An Idempotency-Key used before with another body is 422: it depends on earlier requests.
CREATE = {(400, "validation_error"): {"occurred_at", *ACCOUNT}, (422, "idempotency_key_reused"): set()}
UNSTATED_RULES: dict[str, dict[tuple[int, str], set[str]]] = {
    # Either period, or from and to with from <= to; days as above.
    "GET /analytics": {(400, "validation_error"): {"period", "from", "to", *ACCOUNT}},
    # A cursor is opaque: only a next_cursor of the same sort is one.
    "GET /transactions": {(400, "validation_error"): {"from", "to", "cursor", *ACCOUNT}},
    "GET /transactions/export": {(400, "validation_error"): DAYS | ACCOUNT},
    # Like a transaction page's, a category page's cursor is opaque.
    "GET /categories": {(400, "validation_error"): {"cursor"}},
    # And so is the event feed's.
    "GET /events": {(400, "validation_error"): {"after"}},
    "POST /transactions": CREATE,
    "POST /transaction": CREATE,
    "PATCH /transactions/{transaction_id}": {(400, "validation_error"): {"occurred_at", *ACCOUNT}},
    # A transfer page's cursor is opaque too; both accounts must be the user's, and differ.
    "GET /transfers": {(400, "validation_error"): {"from", "to", "cursor", *ACCOUNT}},
    "POST /transfers": {
        (400, "validation_error"): {"occurred_at", "from_account_id", "to_account_id"},
        (422, "idempotency_key_reused"): set(),
    },
    "PATCH /transfers/{transfer_id}": {(400, "validation_error"): {"occurred_at"}},
    # A budget's category must not be blank once trimmed. (A category another budget has, 409
    # budget_exists, depends on earlier requests, and is accepted as every 409 is.)
    "POST /budgets": {(400, "validation_error"): {"category"}},
    "PATCH /budgets/{budget_id}": {(400, "validation_error"): {"category"}},
    # A rule's days as above, and its account one of the user's. (An archived one, 409
    # account_archived, is accepted as every 409 is.)
    "POST /recurring-transactions": {
        (400, "validation_error"): RULE_DAYS | ACCOUNT,
        (422, "idempotency_key_reused"): set(),
    },
    "PATCH /recurring-transactions/{recurring_id}": {(400, "validation_error"): RULE_DAYS | ACCOUNT},
    # A webhook's URL must be https to a host resolving to public addresses only (loopback and http
    # too on the test servers), without a user, password or #fragment, its port 1 to 65535
    # (service/outbound.py); its events "*" alone or types, not both.
    "POST /webhooks": {(400, "validation_error"): {"url", "events"}},
    "PATCH /webhooks/{webhook_id}": {(400, "validation_error"): {"url", "events"}},
    # A deliveries page's cursor is opaque.
    "GET /webhooks/{webhook_id}/deliveries": {(400, "validation_error"): {"cursor"}},
    # The new password must differ from the current one.
    "POST /password": {(400, "validation_error"): {"new_password"}},
    # A file is all Swagger 2 can say: whether its bytes are a CSV with the right header and
    # valid rows it cannot (tests/api/test_csv.py covers those).
    "POST /transactions/import": {
        (400, "invalid_csv"): set(),
        (422, "invalid_rows"): set(),
        (422, "empty_import"): set(),
    },
}
# positive_data_acceptance's default statuses, without 5xx: a server error is never accepted.
ACCEPTED_REFUSALS = {401, 403, 404, 409, 429}


def _caller(schema: schemathesis.BaseSchema, token: str):
    """call(method, path, status, credential=token, **parts): a case built by hand, sent with its own
    token (the configured auth is applied to generated cases only), checked as generated ones are,
    its status asserted."""

    def call(method: str, path: str, status: int, credential: str = token, **parts) -> schemathesis.Response:
        case = schema[path][method].Case(headers={"Authorization": f"Bearer {credential}"}, **parts)
        response = case.call_and_validate()
        assert response.status_code == status, (method, path, parts, response.text)
        return response

    return call


def _schema(request: pytest.FixtureRequest, base_url: str, token: str) -> schemathesis.BaseSchema:
    """The live OpenAPI 3 document, aimed at base_url, every request carrying this token."""
    # schemathesis 4.32's from_fixture renames the test item through `Node._nodeid`, which
    # pytest 9.2 no longer has (it keeps `_id`); give the item one so the run can start.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            # The token in both documented schemes (x-access-token and Authorization: Bearer).
            "auth": {"openapi": {"token": {"api_key": token}, "bearer": {"bearer": token}}},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all"},
            # Every built-in check (max_response_time only runs with a limit, none is set).
            "checks": {"enabled": True},
            "request-timeout": 30,
            "operations": [
                {
                    # Each request hashes or verifies a password with argon2 (~0.2 s, on purpose):
                    # fewer random examples keep the run short; the coverage phase still sends
                    # every boundary and mutation case.
                    "include-name": ["POST /register", "POST /login"],
                    "generation": {"max-examples": SLOW_MAX_EXAMPLES},
                },
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config, timeout=30)


def _token(client: httpx.Client) -> str:
    # Not the documented example password, which the generated requests send: POST /password and
    # DELETE /me would otherwise succeed, and revoke the token (or delete the user) mid-run.
    password = secrets.token_urlsafe(16)
    return login(client, register(client, password=password)["username"], password)


@pytest.fixture
def api_schema(request, servers, client: httpx.Client) -> schemathesis.BaseSchema:
    """tenant1's document for every operation but POST /logout, as a logged-in user."""
    return _schema(request, servers["tenant1"].url, _token(client))


@pytest.fixture
def logout_schema(request, servers, client: httpx.Client) -> schemathesis.BaseSchema:
    """tenant1's document as another logged-in user, for POST /logout alone."""
    return _schema(request, servers["tenant1"].url, _token(client))


# POST /logout revokes the token it is sent with, which every other generated request carries:
# it runs on its own below, with a token of its own (after the first 204 it answers 401).
everything_but_logout = schemathesis.pytest.from_fixture("api_schema").exclude(path="/logout", method="POST")
logout_only = schemathesis.pytest.from_fixture("logout_schema").include(path="/logout", method="POST")


@everything_but_logout.parametrize()
def test_every_operation_conforms_to_the_swagger_document(case):
    rules = UNSTATED_RULES.get(case.operation.label)
    if rules is None:
        case.call_and_validate()
        return
    response = case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])
    status = response.status_code
    if case.meta.generation.mode is schemathesis.GenerationMode.POSITIVE and status >= 400:
        error = response.json()["error"] if status not in ACCEPTED_REFUSALS else None
        if error is not None:
            fields = rules.get((status, error["code"]))
            assert fields is not None and set(error.get("fields") or {}) <= fields, (
                f"a request the document allows was refused: {status} {response.text}"
            )


def test_real_budgets_and_rules_conform_to_the_swagger_document(request, servers, client):
    """Generated requests almost never name a record that exists, nor a start_date among the last
    366 days (their dates span 1900 to 2999): alone, they would check budgets without spending and
    rules without occurrences. Here real ones, the transactions the rules make and the refusals
    that depend on earlier requests get every check the generated requests get."""
    token = _token(client)
    schema = _schema(request, servers["tenant1"].url, token)

    call = _caller(schema, token)

    today = datetime.now(UTC).date()  # the tenant's today is at most a day away
    groceries = call("POST", "/budgets", 201, body={"category": " groceries ", "amount": "300"}).json()
    budget = {"budget_id": groceries["id"]}
    call("POST", "/budgets", 409, body={"category": "groceries", "amount": "1.00"})  # budget_exists
    call("POST", "/transactions", 201, body={"type": "expense", "amount": "135.90", "category": "groceries"})
    assert call("GET", "/budgets", 200).json()["total_spent"] == "135.90"
    call("GET", "/budgets", 200, query={"month": f"{today - timedelta(days=40):%Y-%m}"})
    call("GET", "/budgets/{budget_id}", 200, path_parameters=budget)
    call("PATCH", "/budgets/{budget_id}", 200, path_parameters=budget, body={"amount": "241.60"})

    rules = [
        {"frequency": "daily", "start_date": today - timedelta(days=10), "end_date": today - timedelta(days=5)},
        {"frequency": "weekly", "interval": 2, "start_date": today - timedelta(days=60), "category": "rent"},
        {"frequency": "monthly", "start_date": today - timedelta(days=365), "description": "Streaming"},
        {"frequency": "yearly", "start_date": today - timedelta(days=365), "end_date": today + timedelta(days=400)},
    ]
    for fields in rules:
        body = {"type": "expense", "amount": "15.99", **{name: str(value) for name, value in fields.items()}}
        rule = call("POST", "/recurring-transactions", 201, body=body).json()
        assert rule["last_occurrence"] is not None, rule  # its past occurrences were made
        item = {"recurring_id": rule["id"]}
        call("GET", "/recurring-transactions/{recurring_id}", 200, path_parameters=item)
        call("PATCH", "/recurring-transactions/{recurring_id}", 200, path_parameters=item, body={"amount": "17.49"})
        call("PATCH", "/recurring-transactions/{recurring_id}", 200, path_parameters=item, body={"end_date": None})
        page = call("GET", "/transactions", 200, query={"recurring_id": rule["id"]}).json()
        assert page["items"] and {t["recurring_id"] for t in page["items"]} == {rule["id"]}, page
        call("GET", "/transactions/export", 200, query={"recurring_id": rule["id"]})
    too_old = {"start_date": str(today - timedelta(days=400))}
    call("PATCH", "/recurring-transactions/{recurring_id}", 400, path_parameters=item, body=too_old)
    account = {"account_id": call("POST", "/accounts", 201, body={"name": "Jar", "kind": "cash"}).json()["id"]}
    call("PATCH", "/accounts/{account_id}", 200, path_parameters=account, body={"archived": True})
    archived = {"type": "income", "amount": "1.00", "frequency": "daily", "start_date": str(today), **account}
    call("POST", "/recurring-transactions", 409, body=archived)  # account_archived
    call("PATCH", "/recurring-transactions/{recurring_id}", 409, path_parameters=item, body=account)
    call("GET", "/analytics", 200, query={"period": "current_year", "group_by": "month"})

    for rule in call("GET", "/recurring-transactions", 200).json()["items"]:
        call("DELETE", "/recurring-transactions/{recurring_id}", 204, path_parameters={"recurring_id": rule["id"]})
    call("DELETE", "/budgets/{budget_id}", 204, path_parameters=budget)
    call("GET", "/budgets/{budget_id}", 404, path_parameters=budget)


def test_real_personal_tokens_conform_to_the_swagger_document(request, servers, client):
    """A token generated requests never hold: a real personal access token of each scope, its use
    (last_used_at set), the 403s of its scope and of what needs a login token, and its deletion."""
    token = _token(client)
    schema = _schema(request, servers["tenant1"].url, token)

    call = _caller(schema, token)

    read = call("POST", "/tokens", 201, body={"name": " Spreadsheet ", "scope": "read"}).json()
    write = call("POST", "/tokens", 201, body={"name": "Sync", "scope": "read_write", "expires_in_days": 365}).json()
    call("GET", "/transactions", 200, read["token"])
    call("POST", "/transactions", 403, read["token"], body={"type": "expense", "amount": "1.00"})
    call("POST", "/transactions", 201, write["token"], body={"type": "expense", "amount": "1.00"})
    call("POST", "/tokens", 403, write["token"], body={"name": "Another", "scope": "read"})
    call("DELETE", "/tokens/{token_id}", 403, write["token"], path_parameters={"token_id": read["id"]})
    listed = call("GET", "/tokens", 200, read["token"]).json()["items"]
    assert all(item["last_used_at"] for item in listed), listed
    for item in listed:
        call("DELETE", "/tokens/{token_id}", 204, path_parameters={"token_id": item["id"]})
    call("DELETE", "/tokens/{token_id}", 404, path_parameters={"token_id": read["id"]})
    call("GET", "/transactions", 401, read["token"])


def test_real_webhooks_and_deliveries_conform_to_the_swagger_document(request, servers, client):
    """Generated requests almost never give a URL the service accepts, nor name a webhook that
    exists: here real ones, their deliveries after changes (paged with a real cursor), the test
    event, and the 409s that depend on earlier requests, with every check."""
    token = _token(client)
    schema = _schema(request, servers["tenant1"].url, token)

    call = _caller(schema, token)

    body = {"url": "http://127.0.0.1:9/hooks", "events": ["transaction.created", "account.created"]}
    created = call("POST", "/webhooks", 201, body={**body, "description": "books"}).json()
    item = {"webhook_id": created["id"]}
    call("POST", "/webhooks", 201, body={"url": "http://localhost:9/", "events": ["*"]})
    for amount in ("1.00", "2.00", "3.00"):
        call("POST", "/transactions", 201, body={"type": "expense", "amount": amount})
    call("POST", "/webhooks/{webhook_id}/test", 202, path_parameters=item)
    first = call("GET", "/webhooks/{webhook_id}/deliveries", 200, path_parameters=item, query={"limit": 2}).json()
    rest = call("GET", "/webhooks/{webhook_id}/deliveries", 200, path_parameters=item,
                query={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [d["event_type"] for d in first["items"] + rest["items"]] == ["webhook.test"] + ["transaction.created"] * 3
    call("GET", "/webhooks", 200)
    call("GET", "/webhooks/{webhook_id}", 200, path_parameters=item)
    call("PATCH", "/webhooks/{webhook_id}", 200, path_parameters=item, body={"description": None, "active": False})
    call("POST", "/webhooks/{webhook_id}/test", 409, path_parameters=item)  # webhook_inactive
    call("PATCH", "/webhooks/{webhook_id}", 400, path_parameters=item, body={"url": "https://10.0.0.1/"})
    for _ in range(8):
        call("POST", "/webhooks", 201, body=body)
    call("POST", "/webhooks", 409, body=body)  # too_many_webhooks
    call("DELETE", "/webhooks/{webhook_id}", 204, path_parameters=item)
    call("GET", "/webhooks/{webhook_id}/deliveries", 404, path_parameters=item)


@logout_only.parametrize()
def test_logout_conforms_to_the_swagger_document(case):
    case.call_and_validate()


def test_the_document_offers_no_field_mask_header(client):
    """flask-restx documents an optional X-Fields header (a response field mask) on every
    operation decorated with marshal_with unless RESTX_MASK_SWAGGER is off (create_app turns it
    off); the handlers dump with marshmallow and honour no mask, so no client, schemathesis
    included, may be told it can send one."""
    document = client.get("/swagger.json").json()
    names = {
        parameter["name"].lower()
        for operations in document["paths"].values()
        for method, operation in operations.items()
        if method != "parameters"
        for parameter in operation.get("parameters", [])
    }
    assert "x-fields" not in names
    assert {"idempotency-key", "limit", "period"} <= names
