"""Transactions over HTTP: create, validation, money exactness, item operations, idempotency, listing."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from tests.utils import assert_error, count_transactions, create, user_with_headers

EPOCH = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PUBLIC_FIELDS = {
    "id", "account_id", "type", "amount", "currency", "description", "category", "occurred_at", "recurring_id",
    "created_at", "updated_at",
}


# --- helpers -----------------------------------------------------------------------------------


def _row(db, transaction_id: int) -> dict | None:
    return db.execute("SELECT * FROM transactions WHERE id = %s", (transaction_id,)).fetchone()


def _validation_error(response: httpx.Response, field: str | None = None) -> dict:
    """Assert a 400 validation_error whose fields map names to non-empty lists of messages."""
    error = assert_error(response, 400, "validation_error")
    fields = error["fields"]
    assert isinstance(fields, dict) and fields, error
    for messages in fields.values():
        assert isinstance(messages, list | dict) and messages, error
    if field is not None:
        assert field in fields, error
    return error


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _post_raw(client: httpx.Client, headers: dict, content: str | bytes, content_type: str = "application/json"):
    return client.post("/transactions", content=content, headers={**headers, "Content-Type": content_type})


def _walk(client: httpx.Client, headers: dict, params: dict) -> tuple[list[dict], int]:
    """Follow next_cursor from the first page to the last; return every item and the page count."""
    items: list[dict] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/transactions", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= int(params.get("limit", 50))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "pagination does not end"


def _ids(items: list[dict]) -> list[int]:
    return [item["id"] for item in items]


def _list(client: httpx.Client, headers: dict, **params) -> list[dict]:
    response = client.get("/transactions", params={"limit": 200, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


# --- create ------------------------------------------------------------------------------------


def test_create_returns_201_with_every_field_and_a_location_that_reads_it_back(client, db):
    user_id, headers = user_with_headers(client)
    before = datetime.now(UTC)
    response = client.post(
        "/transactions",
        json={
            "type": "income",
            "amount": "10000.00",
            "description": "Salary",
            "category": "work",
            "occurred_at": "2026-01-15T09:30:00-05:00",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert isinstance(body["id"], int)
    assert body["type"] == "income"
    assert body["amount"] == "10000.00"
    assert body["currency"] == "USD"
    assert body["description"] == "Salary"
    assert body["category"] == "work"
    assert _at(body["occurred_at"]) == datetime(2026, 1, 15, 14, 30, tzinfo=UTC)
    for stamp in ("created_at", "updated_at"):
        moment = _at(body[stamp])
        assert moment.tzinfo is not None
        assert before - timedelta(seconds=5) <= moment <= datetime.now(UTC) + timedelta(seconds=5)

    location = response.headers["Location"]
    assert location.endswith(f"/transactions/{body['id']}")
    again = client.get(location, headers=headers)
    assert again.status_code == 200
    assert again.json() == body

    row = _row(db, body["id"])
    assert row["user_id"] == user_id
    assert row["amount"] == Decimal("10000.00")
    assert row["type"] == "income"


def test_created_transaction_shows_the_tenants_currency(client2):
    _, headers = user_with_headers(client2)
    assert create(client2, headers, amount="3.00")["currency"] == "EUR"


def test_legacy_create_path_behaves_like_transactions(client, db):
    user_id, headers = user_with_headers(client)
    response = client.post("/transaction", json={"type": "expense", "amount": 5, "category": "food"}, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["amount"] == "5.00" and body["category"] == "food"
    assert response.headers["Location"].endswith(f"/transactions/{body['id']}")
    assert client.get(response.headers["Location"], headers=headers).json() == body
    assert count_transactions(db, user_id) == 1
    refused = client.post("/transaction", json={"type": "expense", "amount": 0}, headers=headers)
    _validation_error(refused, "amount")
    assert count_transactions(db, user_id) == 1


AMOUNT_FORMS = [
    (10000.0, "10000.00"),
    (5, "5.00"),
    (0.1, "0.10"),
    (0.01, "0.01"),
    ("12.5", "12.50"),
    ("7", "7.00"),
    ("0.01", "0.01"),
    (999999999999.99, "999999999999.99"),
    ("999999999999.99", "999999999999.99"),
]


def test_amount_as_json_number_or_decimal_string_is_stored_exactly_with_two_places(client, db, subtests):
    _, headers = user_with_headers(client)
    for amount, shown in AMOUNT_FORMS:
        with subtests.test(msg=f"amount {amount!r}"):
            body = create(client, headers, amount=amount)
            assert body["amount"] == shown
            assert _row(db, body["id"])["amount"] == Decimal(shown)
            assert client.get(f"/transactions/{body['id']}", headers=headers).json()["amount"] == shown


def test_amount_written_in_json_keeps_every_digit(client, db):
    """A number a binary float cannot hold exactly must still arrive exactly."""
    _, headers = user_with_headers(client)
    response = _post_raw(client, headers, '{"type": "expense", "amount": 123456789012.34}')
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == "123456789012.34"
    assert _row(db, response.json()["id"])["amount"] == Decimal("123456789012.34")


def test_occurred_at_with_an_offset_is_kept_as_that_instant(client, db):
    _, headers = user_with_headers(client)
    body = create(client, headers, occurred_at="2026-03-01T09:30:00+05:30")
    assert _at(body["occurred_at"]) == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    assert _row(db, body["id"])["occurred_at"] == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_occurred_at_defaults_to_now(client):
    _, headers = user_with_headers(client)
    before = datetime.now(UTC)
    body = create(client, headers)
    occurred = _at(body["occurred_at"])
    assert occurred.tzinfo is not None
    assert before - timedelta(seconds=5) <= occurred <= datetime.now(UTC) + timedelta(seconds=5)


def test_description_and_category_are_optional(client, db):
    _, headers = user_with_headers(client)
    body = create(client, headers)
    assert body["description"] is None and body["category"] is None
    row = _row(db, body["id"])
    assert row["description"] is None and row["category"] is None


def test_blank_category_is_stored_as_null(client, db, subtests):
    _, headers = user_with_headers(client)
    for blank in ("", "   ", "\t\n", None):
        with subtests.test(msg=f"category {blank!r}"):
            body = create(client, headers, category=blank)
            assert body["category"] is None
            assert _row(db, body["id"])["category"] is None


def test_category_is_trimmed(client):
    _, headers = user_with_headers(client)
    assert create(client, headers, category="  groceries ")["category"] == "groceries"


def test_longest_description_and_category_are_accepted(client, db):
    _, headers = user_with_headers(client)
    body = create(client, headers, description="d" * 500, category="c" * 64)
    assert body["description"] == "d" * 500
    assert body["category"] == "c" * 64
    assert count_transactions(db) == 1


def test_text_fields_keep_unicode(client):
    _, headers = user_with_headers(client)
    body = create(client, headers, description="Café ☕ 🍰", category="Ωmega")
    assert body["description"] == "Café ☕ 🍰"
    assert body["category"] == "Ωmega"


def test_creating_needs_a_token(client, db):
    response = client.post("/transactions", json={"type": "expense", "amount": "1.00"})
    assert_error(response, 401)
    assert count_transactions(db) == 0


# --- bad input ---------------------------------------------------------------------------------

VALID = {"type": "expense", "amount": "10.00"}


INVALID_CREATES = [
    ("amount-zero", {**VALID, "amount": 0}, "amount"),
    ("amount-zero-string", {**VALID, "amount": "0.00"}, "amount"),
    ("amount-negative", {**VALID, "amount": -5}, "amount"),
    ("amount-negative-string", {**VALID, "amount": "-5.00"}, "amount"),
    ("amount-three-places-string", {**VALID, "amount": "1.005"}, "amount"),
    ("amount-three-places-number", {**VALID, "amount": 1.005}, "amount"),
    ("amount-too-large-string", {**VALID, "amount": "1000000000000.00"}, "amount"),
    ("amount-too-large-number", {**VALID, "amount": 1000000000000}, "amount"),
    ("amount-just-too-large", {**VALID, "amount": 999999999999.991}, "amount"),
    ("amount-text", {**VALID, "amount": "abc"}, "amount"),
    ("amount-empty-string", {**VALID, "amount": ""}, "amount"),
    ("amount-exponent-string", {**VALID, "amount": "1e3"}, "amount"),
    ("amount-nan-string", {**VALID, "amount": "NaN"}, "amount"),
    ("amount-infinity-string", {**VALID, "amount": "Infinity"}, "amount"),
    ("amount-true", {**VALID, "amount": True}, "amount"),
    ("amount-null", {**VALID, "amount": None}, "amount"),
    ("amount-list", {**VALID, "amount": [10]}, "amount"),
    ("amount-object", {**VALID, "amount": {"value": 10}}, "amount"),
    ("type-refund", {**VALID, "type": "refund"}, "type"),
    ("type-wrong-case", {**VALID, "type": "INCOME"}, "type"),
    ("type-null", {**VALID, "type": None}, "type"),
    ("type-missing", {"amount": "10.00"}, "type"),
    ("amount-missing", {"type": "expense"}, "amount"),
    ("description-501", {**VALID, "description": "x" * 501}, "description"),
    ("description-number", {**VALID, "description": 42}, "description"),
    ("category-65", {**VALID, "category": "c" * 65}, "category"),
    ("category-list", {**VALID, "category": ["food"]}, "category"),
    ("occurred-naive", {**VALID, "occurred_at": "2026-01-15T10:00:00"}, "occurred_at"),
    ("occurred-date-only", {**VALID, "occurred_at": "2026-01-15"}, "occurred_at"),
    ("occurred-text", {**VALID, "occurred_at": "yesterday"}, "occurred_at"),
    ("occurred-null", {**VALID, "occurred_at": None}, "occurred_at"),
    ("occurred-epoch", {**VALID, "occurred_at": 1767225600}, "occurred_at"),
    ("unknown-user_id", {**VALID, "user_id": 1}, "user_id"),
    ("unknown-id", {**VALID, "id": 1}, "id"),
    ("unknown-created_at", {**VALID, "created_at": "2026-01-15T10:00:00+00:00"}, "created_at"),
    ("unknown-updated_at", {**VALID, "updated_at": "2026-01-15T10:00:00+00:00"}, "updated_at"),
    ("unknown-currency", {**VALID, "currency": "EUR"}, "currency"),
    ("unknown-foo", {**VALID, "foo": "bar"}, "foo"),
    ("description-nul", {**VALID, "description": "nul\u0000byte"}, "description"),
    ("description-lone-surrogate", {**VALID, "description": "lone \ud800"}, "description"),
    ("category-nul", {**VALID, "category": "nul\u0000byte"}, "category"),
    ("category-lone-surrogate", {**VALID, "category": "lone \udfff"}, "category"),
]


def test_invalid_create_body_is_400_with_the_field_and_creates_nothing(client, db, subtests):
    _, headers = user_with_headers(client)
    for name, body, field in INVALID_CREATES:
        with subtests.test(msg=name):
            # json.dumps escapes NUL and lone surrogates, so the text stays valid JSON.
            response = _post_raw(client, headers, json.dumps(body))
            _validation_error(response, field)
            assert count_transactions(db) == 0


def test_several_invalid_fields_are_reported_together(client, db):
    _, headers = user_with_headers(client)
    response = client.post("/transactions", json={"type": "refund", "amount": -1, "foo": 1}, headers=headers)
    error = _validation_error(response)
    assert {"type", "amount", "foo"} <= set(error["fields"])
    assert count_transactions(db) == 0


def test_amount_with_an_exponent_is_refused(client, db, subtests):
    _, headers = user_with_headers(client)
    for number in ("1e3", "1E3", "1.5e2", "10e-1", "1e+2"):
        with subtests.test(msg=number):
            _validation_error(_post_raw(client, headers, f'{{"type": "expense", "amount": {number}}}'), "amount")
            assert count_transactions(db) == 0


def test_non_finite_json_amount_is_refused(client, db, subtests):
    _, headers = user_with_headers(client)
    for constant in ("NaN", "Infinity", "-Infinity"):
        with subtests.test(msg=constant):
            response = _post_raw(client, headers, f'{{"type": "expense", "amount": {constant}}}')
            error = assert_error(response, 400)
            assert error["code"] in ("malformed_json", "validation_error")
            assert count_transactions(db) == 0


def test_body_that_is_not_a_json_object_is_400_validation_error(client, db, subtests):
    _, headers = user_with_headers(client)
    for text in ('[{"type": "expense", "amount": "10.00"}]', "[]", '"expense"', "10", "null"):
        with subtests.test(msg=text):
            _validation_error(_post_raw(client, headers, text))
            assert count_transactions(db) == 0


def test_malformed_json_is_400_malformed_json(client, db, subtests):
    _, headers = user_with_headers(client)
    for text in (
        '{"type": "expense", "amount": ',
        "{'type': 'expense', 'amount': '1.00'}",
        '{"type": "expense", "amount": "1.00",}',
        "",
        "not json",
        b'{"type": "expense", "amount": "1.00", "description": "\xff"}',
    ):
        with subtests.test(msg=repr(text)):
            assert_error(_post_raw(client, headers, text), 400, "malformed_json")
            assert count_transactions(db) == 0


def test_non_json_content_type_is_415(client, db, subtests):
    _, headers = user_with_headers(client)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/csv", "application/xml"):
        with subtests.test(msg=content_type):
            response = _post_raw(client, headers, json.dumps(VALID), content_type)
            assert_error(response, 415, "unsupported_media_type")
            assert count_transactions(db) == 0
    with subtests.test(msg="no content type"):
        response = client.post("/transactions", content=json.dumps(VALID).encode(), headers=headers)
        assert_error(response, 415, "unsupported_media_type")
    with subtests.test(msg="form fields"):
        assert_error(client.post("/transactions", data=VALID, headers=headers), 415, "unsupported_media_type")
    assert count_transactions(db) == 0


def test_body_over_one_mebibyte_is_413(client, db):
    _, headers = user_with_headers(client)
    text = json.dumps({**VALID, "description": "x" * (1024 * 1024)})
    assert_error(_post_raw(client, headers, text), 413, "payload_too_large")
    assert count_transactions(db) == 0


# --- money exactness ---------------------------------------------------------------------------


def test_totals_and_amounts_of_many_small_amounts_are_exact(client, db):
    user_id, headers = user_with_headers(client)
    lines = ["occurred_at,type,amount,category,description"]
    for index in range(300):
        kind, amount, category = [
            ("income", "0.1", "dimes"), ("income", "0.20", "twenties"), ("expense", "0.3", "thirties")
        ][index % 3]
        lines.append(f"2026-01-{10 + index % 10:02d}T12:00:00-05:00,{kind},{amount},{category},row {index}")
    response = client.post(
        "/transactions/import",
        content=("\n".join(lines) + "\n").encode(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"imported": 300}
    # One more through the JSON API, as a JSON number.
    create(client, headers, type="expense", amount=0.1, occurred_at="2026-01-20T12:00:00-05:00")
    assert count_transactions(db, user_id) == 301

    summary = client.get(
        "/analytics", params={"from": "2026-01-01", "to": "2026-01-31", "group_by": "category"}, headers=headers
    )
    assert summary.status_code == 200, summary.text
    totals = summary.json()
    assert totals["total_income"] == "30.00"
    assert totals["total_expense"] == "30.10"
    assert totals["net_balance"] == "-0.10"
    assert totals["count"] == 301
    groups = {group["key"]: group for group in totals["groups"]}
    assert groups["dimes"]["total_income"] == "10.00"
    assert groups["twenties"]["total_income"] == "20.00"
    assert groups["thirties"]["total_expense"] == "30.00"
    assert groups[None]["total_expense"] == "0.10"
    assert groups["thirties"]["net_balance"] == "-30.00"

    amounts, _ = _walk(client, headers, {"limit": 200})
    assert len(amounts) == 301
    assert {item["amount"] for item in amounts} == {"0.10", "0.20", "0.30"}
    assert sum(Decimal(item["amount"]) for item in amounts) == Decimal("60.10")
    stored = db.execute("SELECT sum(amount) AS total FROM transactions WHERE user_id = %s", (user_id,)).fetchone()
    assert stored["total"] == Decimal("60.10")


def test_analytics_of_largest_amounts_stays_exact(client):
    _, headers = user_with_headers(client)
    for _ in range(3):
        create(client, headers, type="income", amount="999999999999.99", occurred_at="2026-02-10T12:00:00+00:00")
    create(client, headers, type="expense", amount="0.01", occurred_at="2026-02-10T12:00:00+00:00")
    response = client.get("/analytics", params={"from": "2026-02-01", "to": "2026-02-28"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["total_income"] == "2999999999999.97"
    assert response.json()["net_balance"] == "2999999999999.96"


# --- read, update, delete ----------------------------------------------------------------------


def test_get_reads_the_transaction(client):
    _, headers = user_with_headers(client)
    created = create(client, headers, description="Lunch", category="food", amount="8.40")
    response = client.get(f"/transactions/{created['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == created


def test_get_of_a_missing_id_is_404(client):
    _, headers = user_with_headers(client)
    assert_error(client.get("/transactions/12345", headers=headers), 404, "not_found")


def test_id_beyond_the_database_range_is_404(client):
    _, headers = user_with_headers(client)
    huge = 2**70
    assert_error(client.get(f"/transactions/{huge}", headers=headers), 404, "not_found")
    assert_error(client.patch(f"/transactions/{huge}", json={"amount": "1.00"}, headers=headers), 404, "not_found")
    assert_error(client.delete(f"/transactions/{huge}", headers=headers), 404, "not_found")


def test_patch_changes_only_the_given_fields_and_advances_updated_at(client, db):
    _, headers = user_with_headers(client)
    created = create(
        client, headers, type="expense", amount="20.00", description="Books", category="education",
        occurred_at="2026-01-15T10:00:00+00:00",
    )
    response = client.patch(f"/transactions/{created['id']}", json={"amount": 25.5}, headers=headers)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["amount"] == "25.50"
    for name in ("id", "type", "currency", "description", "category", "occurred_at", "created_at"):
        assert updated[name] == created[name], name
    assert _at(updated["updated_at"]) > _at(created["updated_at"])
    assert client.get(f"/transactions/{created['id']}", headers=headers).json() == updated

    second = client.patch(
        f"/transactions/{created['id']}",
        json={"type": "income", "category": "gifts", "occurred_at": "2026-02-01T08:00:00-05:00"},
        headers=headers,
    ).json()
    assert second["type"] == "income" and second["category"] == "gifts"
    assert _at(second["occurred_at"]) == datetime(2026, 2, 1, 13, 0, tzinfo=UTC)
    assert second["amount"] == "25.50" and second["description"] == "Books"
    row = _row(db, created["id"])
    assert (row["type"], row["amount"], row["description"], row["category"]) == (
        "income", Decimal("25.50"), "Books", "gifts"
    )


def test_patch_with_null_description_and_category_clears_them(client, db):
    _, headers = user_with_headers(client)
    created = create(client, headers, description="Taxi", category="transport")
    response = client.patch(
        f"/transactions/{created['id']}", json={"description": None, "category": None}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] is None and response.json()["category"] is None
    row = _row(db, created["id"])
    assert row["description"] is None and row["category"] is None


def test_patch_with_blank_category_clears_it(client, db):
    _, headers = user_with_headers(client)
    created = create(client, headers, category="transport")
    response = client.patch(f"/transactions/{created['id']}", json={"category": "  "}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["category"] is None
    assert _row(db, created["id"])["category"] is None


INVALID_PATCHES = [
    ("amount-zero", {"amount": 0}, "amount"),
    ("amount-negative", {"amount": "-1.00"}, "amount"),
    ("amount-three-places", {"amount": "1.005"}, "amount"),
    ("amount-too-large", {"amount": "1000000000000.00"}, "amount"),
    ("amount-text", {"amount": "abc"}, "amount"),
    ("amount-true", {"amount": True}, "amount"),
    ("amount-null", {"amount": None}, "amount"),
    ("type-refund", {"type": "refund"}, "type"),
    ("type-null", {"type": None}, "type"),
    ("description-501", {"description": "x" * 501}, "description"),
    ("category-65", {"category": "c" * 65}, "category"),
    ("occurred-naive", {"occurred_at": "2026-01-15T10:00:00"}, "occurred_at"),
    ("occurred-null", {"occurred_at": None}, "occurred_at"),
    ("unknown-id", {"id": 99}, "id"),
    ("unknown-user_id", {"user_id": 99}, "user_id"),
    ("unknown-created_at", {"created_at": "2020-01-01T00:00:00+00:00"}, "created_at"),
    ("unknown-foo-with-valid-field", {"foo": "bar", "amount": "2.00"}, "foo"),
    ("description-nul", {"description": "nul\u0000"}, "description"),
    ("category-lone-surrogate", {"category": "\ud83d"}, "category"),
]


def _patch_raw(client: httpx.Client, headers: dict, transaction_id: int, text: str) -> httpx.Response:
    return client.patch(
        f"/transactions/{transaction_id}", content=text, headers={**headers, "Content-Type": "application/json"}
    )


def test_invalid_patch_is_400_and_changes_nothing(client, db, subtests):
    _, headers = user_with_headers(client)
    created = create(client, headers, description="Kept", category="kept", occurred_at="2026-01-15T10:00:00+00:00")
    before = _row(db, created["id"])
    for name, body, field in INVALID_PATCHES:
        with subtests.test(msg=name):
            _validation_error(_patch_raw(client, headers, created["id"], json.dumps(body)), field)
            assert _row(db, created["id"]) == before


def test_patch_without_changes_is_400(client, db, subtests):
    _, headers = user_with_headers(client)
    created = create(client, headers)
    before = _row(db, created["id"])
    for text in ("{}", "[]", '[{"amount": "2.00"}]', "null"):
        with subtests.test(msg=text):
            _validation_error(_patch_raw(client, headers, created["id"], text))
            assert _row(db, created["id"]) == before


def test_patch_with_malformed_json_or_no_json_is_refused(client, db):
    _, headers = user_with_headers(client)
    created = create(client, headers)
    before = _row(db, created["id"])
    url = f"/transactions/{created['id']}"
    malformed = client.patch(url, content='{"amount": ', headers={**headers, "Content-Type": "application/json"})
    assert_error(malformed, 400, "malformed_json")
    plain = client.patch(url, content='{"amount": "2.00"}', headers={**headers, "Content-Type": "text/plain"})
    assert_error(plain, 415)
    assert _row(db, created["id"]) == before


def test_delete_is_204_and_the_transaction_is_gone(client, db):
    _, headers = user_with_headers(client)
    created = create(client, headers)
    kept = create(client, headers)
    response = client.delete(f"/transactions/{created['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(f"/transactions/{created['id']}", headers=headers), 404, "not_found")
    assert_error(client.delete(f"/transactions/{created['id']}", headers=headers), 404, "not_found")
    assert_error(client.patch(f"/transactions/{created['id']}", json={"amount": 1}, headers=headers), 404, "not_found")
    assert _row(db, created["id"]) is None
    assert _row(db, kept["id"]) is not None


def test_other_users_transaction_is_404_like_a_missing_one(client, db):
    _, owner = user_with_headers(client)
    _, intruder = user_with_headers(client)
    theirs = create(client, owner, description="Private", category="secret", amount="42.00")
    before = _row(db, theirs["id"])
    missing_id = theirs["id"] + 1000

    def same_as_missing(method: str, **kwargs) -> None:
        foreign = client.request(method, f"/transactions/{theirs['id']}", headers=intruder, **kwargs)
        missing = client.request(method, f"/transactions/{missing_id}", headers=intruder, **kwargs)
        assert_error(foreign, 404, "not_found")
        assert foreign.json() == missing.json()
        assert foreign.status_code == missing.status_code

    same_as_missing("GET")
    same_as_missing("PATCH", json={"amount": "1.00", "description": "hacked"})
    same_as_missing("DELETE")
    assert _row(db, theirs["id"]) == before
    assert client.get(f"/transactions/{theirs['id']}", headers=owner).json() == theirs


def test_item_operations_need_a_token(client, db):
    _, headers = user_with_headers(client)
    created = create(client, headers)
    before = _row(db, created["id"])
    url = f"/transactions/{created['id']}"
    assert_error(client.get(url), 401)
    assert_error(client.patch(url, json={"amount": "1.00"}), 401)
    assert_error(client.delete(url), 401)
    assert_error(client.get(url, headers={"Authorization": "Bearer not-a-token"}), 401)
    assert _row(db, created["id"]) == before


# --- idempotency -------------------------------------------------------------------------------


def test_retry_with_the_same_key_replays_the_first_response(client, db, subtests):
    user_id, headers = user_with_headers(client)
    body = {"type": "expense", "amount": "19.99", "description": "Books", "occurred_at": "2026-01-15T10:00:00+00:00"}
    for number, path in enumerate(("/transactions", "/transaction"), start=1):
        with subtests.test(msg=path):
            keyed = {**headers, "Idempotency-Key": f"order-2026-{number:04d}"}
            first = client.post(path, json=body, headers=keyed)
            assert first.status_code == 201, first.text
            assert "Idempotent-Replayed" not in first.headers
            second = client.post(path, json=body, headers=keyed)
            third = client.post(path, json=body, headers=keyed)
            for retry in (second, third):
                assert retry.status_code == 201, retry.text
                assert retry.json() == first.json()
                assert retry.headers["Location"] == first.headers["Location"]
                assert retry.headers["Idempotent-Replayed"] == "true"
            assert count_transactions(db, user_id) == number
            assert client.get(first.headers["Location"], headers=headers).json() == first.json()


def test_a_key_is_honoured_for_24_hours_and_then_forgotten(client, db):
    user_id, headers = user_with_headers(client)
    keyed = {**headers, "Idempotency-Key": "monthly-rent"}
    first = client.post("/transactions", json=VALID, headers=keyed)
    assert first.status_code == 201, first.text

    def key_used_ago(age: str) -> None:
        db.execute(
            "UPDATE idempotency_keys SET created_at = now() - %s::interval WHERE user_id = %s", (age, user_id)
        )

    key_used_ago("23 hours 59 minutes")
    replay = client.post("/transactions", json=VALID, headers=keyed)
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json() == first.json()

    key_used_ago("24 hours 1 minute")
    later = client.post("/transactions", json={**VALID, "amount": "99.00"}, headers=keyed)
    assert later.status_code == 201, later.text
    assert "Idempotent-Replayed" not in later.headers and later.json()["id"] != first.json()["id"]
    assert count_transactions(db, user_id) == 2
    # The key now stands for the new request: its retry replays that one.
    again = client.post("/transactions", json={**VALID, "amount": "99.00"}, headers=keyed)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == later.json()


def test_retry_without_occurred_at_replays_and_creates_one_row(client, db):
    user_id, headers = user_with_headers(client)
    keyed = {**headers, "Idempotency-Key": "no-time"}
    first = client.post("/transactions", json=VALID, headers=keyed)
    second = client.post("/transactions", json=VALID, headers=keyed)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert count_transactions(db, user_id) == 1


def test_same_key_with_a_different_body_is_422_and_creates_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    for number, path in enumerate(("/transactions", "/transaction"), start=1):
        with subtests.test(msg=path):
            keyed = {**headers, "Idempotency-Key": f"k-{number}"}
            first = client.post(path, json={"type": "expense", "amount": "10.00"}, headers=keyed)
            assert first.status_code == 201
            for other in (
                {"type": "expense", "amount": "11.00"},
                {"type": "income", "amount": "10.00"},
                {"type": "expense", "amount": "10.00", "description": "more"},
            ):
                assert_error(client.post(path, json=other, headers=keyed), 422, "idempotency_key_reused")
            assert count_transactions(db, user_id) == number
            replay = client.post(path, json={"type": "expense", "amount": "10.00"}, headers=keyed)
            assert replay.status_code == 201 and replay.json() == first.json()


def test_invalid_body_with_a_key_does_not_use_up_the_key(client, db):
    user_id, headers = user_with_headers(client)
    keyed = {**headers, "Idempotency-Key": "k-invalid-first"}
    _validation_error(client.post("/transactions", json={"type": "expense", "amount": 0}, headers=keyed), "amount")
    created = client.post("/transactions", json=VALID, headers=keyed)
    assert created.status_code == 201, created.text
    assert count_transactions(db, user_id) == 1


def test_different_users_may_use_the_same_key_independently(client, db):
    first_id, first = user_with_headers(client)
    second_id, second = user_with_headers(client)
    key = {"Idempotency-Key": "shared-key"}
    a = client.post("/transactions", json={"type": "expense", "amount": "1.00"}, headers={**first, **key})
    b = client.post("/transactions", json={"type": "income", "amount": "2.00"}, headers={**second, **key})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert b.json()["type"] == "income"
    assert count_transactions(db, first_id) == 1 and count_transactions(db, second_id) == 1
    # The second user's key replays their own response, never the first user's.
    again = client.post("/transactions", json={"type": "income", "amount": "2.00"}, headers={**second, **key})
    assert again.json() == b.json()


def test_requests_without_a_key_are_not_deduplicated(client, db):
    user_id, headers = user_with_headers(client)
    create(client, headers)
    create(client, headers)
    assert count_transactions(db, user_id) == 2


def test_concurrent_retries_with_one_key_create_exactly_one_row(client, db):
    user_id, headers = user_with_headers(client)
    keyed = {**headers, "Idempotency-Key": "concurrent-key"}
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[httpx.Response | BaseException] = [None] * threads_count  # type: ignore[list-item]

    def fire(index: int) -> None:
        try:
            with httpx.Client(base_url=client.base_url, timeout=30) as own:
                assert own.get("/health").status_code == 200  # open the connection before the race
                barrier.wait(timeout=30)
                results[index] = own.post("/transactions", json=VALID, headers=keyed)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[index] = exc

    threads = [threading.Thread(target=fire, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for result in results:
        assert isinstance(result, httpx.Response), result
        assert result.status_code == 201, result.text
    assert len({result.json()["id"] for result in results}) == 1
    assert len({json.dumps(result.json(), sort_keys=True) for result in results}) == 1
    assert len({result.headers["Location"] for result in results}) == 1
    assert count_transactions(db, user_id) == 1
    keys = db.execute("SELECT count(*) AS n FROM idempotency_keys WHERE user_id = %s", (user_id,)).fetchone()
    assert keys["n"] == 1


def test_invalid_idempotency_key_is_400_and_creates_nothing(client, db, subtests):
    _, headers = user_with_headers(client)
    for name, key in [
        ("empty", b""),
        ("256 characters", b"k" * 256),
        ("non-ASCII UTF-8", "ключ".encode()),
        ("Latin-1 byte", b"caf\xe9"),
        ("inner space", b"has space"),
    ]:
        with subtests.test(msg=name):
            for path in ("/transactions", "/transaction"):
                response = client.post(path, json=VALID, headers={**headers, "Idempotency-Key": key})
                assert_error(response, 400, "invalid_idempotency_key")
            assert count_transactions(db) == 0
            assert db.execute("SELECT count(*) AS n FROM idempotency_keys").fetchone()["n"] == 0


def test_longest_idempotency_key_is_accepted(client, db):
    user_id, headers = user_with_headers(client)
    keyed = {**headers, "Idempotency-Key": "k" * 255}
    first = client.post("/transactions", json=VALID, headers=keyed)
    second = client.post("/transactions", json=VALID, headers=keyed)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert count_transactions(db, user_id) == 1


# --- listing -----------------------------------------------------------------------------------


def test_list_is_newest_first_and_shows_only_the_callers_rows(client, db):
    _, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    mine = [
        create(client, headers, occurred_at=(EPOCH + timedelta(days=offset)).isoformat())
        for offset in (3, -2, 7, 0)
    ]
    create(client, other, occurred_at=EPOCH.isoformat(), description="not yours")
    response = client.get("/transactions", headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    expected = sorted(mine, key=lambda item: _at(item["occurred_at"]), reverse=True)
    assert _ids(page["items"]) == _ids(expected)
    assert page["items"] == expected
    assert _ids(_list(client, other)) != []
    assert not set(_ids(_list(client, other))) & set(_ids(mine))


def test_list_of_a_user_without_transactions_is_empty(client):
    _, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    create(client, other)
    response = client.get("/transactions", headers=headers)
    assert response.json() == {"items": [], "next_cursor": None}


def test_list_filters_by_type_and_category(client):
    _, headers = user_with_headers(client)
    salary = create(client, headers, type="income", category="work")
    food = create(client, headers, type="expense", category="food")
    snack = create(client, headers, type="expense", category="food")
    create(client, headers, type="expense", category="Food")
    create(client, headers, type="expense")
    assert _ids(_list(client, headers, type="income")) == [salary["id"]]
    assert len(_list(client, headers, type="expense")) == 4
    assert sorted(_ids(_list(client, headers, category="food"))) == [food["id"], snack["id"]]
    assert sorted(_ids(_list(client, headers, category="food", type="expense"))) == [food["id"], snack["id"]]
    assert _list(client, headers, category="food", type="income") == []
    assert _list(client, headers, category="nothing") == []


def test_list_filters_by_amount_inclusively(client):
    _, headers = user_with_headers(client)
    amounts = ("5.00", "9.99", "10.00", "20.00", "20.01")
    rows = {amount: create(client, headers, amount=amount)["id"] for amount in amounts}
    assert sorted(_ids(_list(client, headers, min_amount="10"))) == sorted(
        [rows["10.00"], rows["20.00"], rows["20.01"]]
    )
    assert sorted(_ids(_list(client, headers, max_amount="9.99"))) == sorted([rows["5.00"], rows["9.99"]])
    assert sorted(_ids(_list(client, headers, min_amount="9.99", max_amount="20.00"))) == sorted(
        [rows["9.99"], rows["10.00"], rows["20.00"]]
    )
    assert len(_list(client, headers, min_amount="0")) == 5
    assert _list(client, headers, min_amount="20.02") == []


def test_list_q_matches_description_case_insensitively(client):
    _, headers = user_with_headers(client)
    coffee = create(client, headers, description="Morning COFFEE at Joe's")
    latte = create(client, headers, description="iced coffee")
    create(client, headers, description="Tea")
    create(client, headers)
    assert sorted(_ids(_list(client, headers, q="Coffee"))) == sorted([coffee["id"], latte["id"]])
    assert _ids(_list(client, headers, q="joe's")) == [coffee["id"]]
    assert _list(client, headers, q="water") == []


def test_list_q_treats_percent_and_underscore_literally(client):
    _, headers = user_with_headers(client)
    percent = create(client, headers, description="50% off")
    underscore = create(client, headers, description="file_name")
    backslash = create(client, headers, description="a\\b")
    create(client, headers, description="500 off")
    create(client, headers, description="filename")
    create(client, headers, description="fileXname")
    create(client, headers, description="ab")
    assert _ids(_list(client, headers, q="%")) == [percent["id"]]
    assert _ids(_list(client, headers, q="0%")) == [percent["id"]]
    assert _ids(_list(client, headers, q="_")) == [underscore["id"]]
    assert _ids(_list(client, headers, q="e_n")) == [underscore["id"]]
    assert _ids(_list(client, headers, q="\\")) == [backslash["id"]]


def test_list_date_bounds_cover_whole_days_in_the_tenant_time_zone(client):
    """America/New_York is UTC-5 in January: a day there runs from 05:00 UTC to 05:00 UTC."""
    _, headers = user_with_headers(client)
    times = {
        "before": "2026-01-09T23:59:59-05:00",  # Jan 10 in UTC, still Jan 9 in New York
        "start": "2026-01-10T00:00:00-05:00",
        "middle": "2026-01-11T12:00:00-05:00",
        "end": "2026-01-12T23:59:59.999999-05:00",  # Jan 13 in UTC, still Jan 12 in New York
        "after": "2026-01-13T00:00:00-05:00",
    }
    ids = {name: create(client, headers, occurred_at=moment)["id"] for name, moment in times.items()}
    found = _ids(_list(client, headers, **{"from": "2026-01-10", "to": "2026-01-12"}))
    assert sorted(found) == sorted([ids["start"], ids["middle"], ids["end"]])
    assert sorted(_ids(_list(client, headers, to="2026-01-09"))) == [ids["before"]]
    assert sorted(_ids(_list(client, headers, **{"from": "2026-01-13"}))) == [ids["after"]]
    assert sorted(_ids(_list(client, headers, **{"from": "2026-01-11", "to": "2026-01-11"}))) == [ids["middle"]]


def test_list_date_bounds_follow_daylight_saving_time(client):
    """On 2026-03-08 New York moves to UTC-4, so that day ends at 04:00 UTC."""
    _, headers = user_with_headers(client)
    inside = create(client, headers, occurred_at="2026-03-09T03:30:00+00:00")  # 23:30 EDT on Mar 8
    outside = create(client, headers, occurred_at="2026-03-09T04:00:00+00:00")  # 00:00 EDT on Mar 9
    assert _ids(_list(client, headers, **{"from": "2026-03-08", "to": "2026-03-08"})) == [inside["id"]]
    assert _ids(_list(client, headers, **{"from": "2026-03-09", "to": "2026-03-09"})) == [outside["id"]]


def test_list_date_time_bounds_with_offsets_are_inclusive_instants(client):
    _, headers = user_with_headers(client)
    times = {
        "early": "2026-01-10T10:59:59.999999+00:00",
        "lower": "2026-01-10T11:00:00+00:00",
        "upper": "2026-01-10T15:00:00+00:00",
        "late": "2026-01-10T15:00:00.000001+00:00",
    }
    ids = {name: create(client, headers, occurred_at=moment)["id"] for name, moment in times.items()}
    found = _ids(_list(client, headers, **{"from": "2026-01-10T12:00:00+01:00", "to": "2026-01-10T10:00:00-05:00"}))
    assert sorted(found) == sorted([ids["lower"], ids["upper"]])
    found_z = _ids(_list(client, headers, **{"from": "2026-01-10T11:00:00Z", "to": "2026-01-10T15:00:00Z"}))
    assert sorted(found_z) == sorted([ids["lower"], ids["upper"]])


def test_list_mixes_a_date_lower_bound_with_a_date_time_upper_bound(client):
    _, headers = user_with_headers(client)
    early = create(client, headers, occurred_at="2026-01-10T06:00:00+00:00")  # 01:00 in New York
    create(client, headers, occurred_at="2026-01-10T04:00:00+00:00")  # Jan 9 in New York
    create(client, headers, occurred_at="2026-01-10T20:00:00+00:00")
    found = _ids(_list(client, headers, **{"from": "2026-01-10", "to": "2026-01-10T12:00:00+00:00"}))
    assert found == [early["id"]]


def _sort_key(item: dict, sort: str):
    name = sort.lstrip("-")
    value = Decimal(item["amount"]) if name == "amount" else _at(item["occurred_at"])
    return (value, item["id"])


def _tied_rows(client: httpx.Client, headers: dict) -> list[dict]:
    """20 rows with repeated instants and repeated amounts, created in a shuffled order."""
    rows = []
    for index in range(20):
        moment = EPOCH + timedelta(hours=(index * 7) % 5)  # five distinct instants, four rows each
        amount = ["5.00", "12.50", "12.50", "100.00", "0.01", "5.00", "12.50"][index % 7]
        rows.append(create(client, headers, occurred_at=moment.isoformat(), amount=amount))
    return rows


SORTS = ("occurred_at", "-occurred_at", "amount", "-amount")


def test_list_sorts_with_ties_broken_by_id(client, subtests):
    _, headers = user_with_headers(client)
    rows = _tied_rows(client, headers)
    for sort in SORTS:
        with subtests.test(msg=sort):
            expected = sorted(rows, key=lambda item, sort=sort: _sort_key(item, sort), reverse=sort.startswith("-"))
            assert _ids(_list(client, headers, sort=sort)) == _ids(expected)


def test_walking_pages_returns_every_row_once_in_order(client, subtests):
    _, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    rows = _tied_rows(client, headers)
    create(client, other, occurred_at=EPOCH.isoformat(), amount="12.50")
    for sort in SORTS:
        with subtests.test(msg=sort):
            expected = sorted(rows, key=lambda item, sort=sort: _sort_key(item, sort), reverse=sort.startswith("-"))
            items, pages = _walk(client, headers, {"sort": sort, "limit": 3})
            assert _ids(items) == _ids(expected)
            assert len(set(_ids(items))) == 20
            assert pages == 7
            assert items == expected


def test_walking_pages_keeps_the_filters(client):
    _, headers = user_with_headers(client)
    rows = _tied_rows(client, headers)
    expected = sorted(
        (row for row in rows if row["amount"] == "12.50"), key=lambda item: _sort_key(item, "-occurred_at"),
        reverse=True,
    )
    items, _ = _walk(client, headers, {"limit": 2, "min_amount": "12.50", "max_amount": "12.50"})
    assert _ids(items) == _ids(expected)


def test_a_full_last_page_has_no_next_cursor(client):
    _, headers = user_with_headers(client)
    for offset in range(6):
        create(client, headers, occurred_at=(EPOCH + timedelta(minutes=offset)).isoformat())
    first = client.get("/transactions", params={"limit": 3}, headers=headers).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = client.get(
        "/transactions", params={"limit": 3, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert len(second["items"]) == 3
    assert second["next_cursor"] is None


def test_default_page_holds_fifty_and_limit_two_hundred_is_allowed(client):
    user_id, headers = user_with_headers(client)
    lines = ["type,amount"] + ["expense,1.00"] * 60
    response = client.post(
        "/transactions/import", content="\n".join(lines).encode(), headers={**headers, "Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    page = client.get("/transactions", headers=headers).json()
    assert len(page["items"]) == 50 and page["next_cursor"]
    full = client.get("/transactions", params={"limit": 200}, headers=headers).json()
    assert len(full["items"]) == 60 and full["next_cursor"] is None


INVALID_QUERIES = [
    ("limit-0", {"limit": "0"}, "limit"),
    ("limit-201", {"limit": "201"}, "limit"),
    ("limit-negative", {"limit": "-1"}, "limit"),
    ("limit-text", {"limit": "abc"}, "limit"),
    ("sort-unknown", {"sort": "id"}, "sort"),
    ("sort-description", {"sort": "description"}, "sort"),
    ("type-unknown", {"type": "refund"}, "type"),
    ("from-bad-month", {"from": "2026-13-01"}, "from"),
    ("from-text", {"from": "yesterday"}, "from"),
    ("to-naive", {"to": "2026-01-10T12:00:00"}, "to"),
    ("min-amount-text", {"min_amount": "abc"}, "min_amount"),
    ("min-amount-negative", {"min_amount": "-1"}, "min_amount"),
    ("max-amount-three-places", {"max_amount": "1.005"}, "max_amount"),
    ("max-amount-exponent", {"max_amount": "1e3"}, "max_amount"),
    ("category-too-long", {"category": "c" * 65}, "category"),
    ("q-too-long", {"q": "x" * 201}, "q"),
    ("q-nul", {"q": "nul\u0000"}, "q"),
    ("cursor-garbage", {"cursor": "not-a-cursor"}, "cursor"),
    ("cursor-not-base64", {"cursor": "!!!"}, "cursor"),
    ("cursor-non-ascii", {"cursor": "é"}, "cursor"),
    ("unknown-user_id", {"user_id": "1"}, "user_id"),
    ("unknown-page", {"page": "2"}, "page"),
    ("unknown-offset", {"offset": "10"}, "offset"),
]


def test_invalid_list_query_is_400(client, subtests):
    _, headers = user_with_headers(client)
    create(client, headers)
    for name, params, field in INVALID_QUERIES:
        with subtests.test(msg=name):
            _validation_error(client.get("/transactions", params=params, headers=headers), field)


def _cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


TAMPERED_CURSORS = [
    ("list", [1, 2, 3]),
    ("string", "text"),
    ("no-id", {"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00"}),
    ("id-as-text", {"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00", "id": "1"}),
    ("bad-instant", {"s": "-occurred_at", "k": "soon", "id": 1}),
    ("bad-amount", {"s": "amount", "k": "lots", "id": 1}),
    ("amount-as-number", {"s": "amount", "k": 5, "id": 1}),
    ("unknown-sort", {"s": "random", "k": "1", "id": 1}),
    ("id-true", {"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00", "id": True}),
]


def test_tampered_cursor_is_400(client, subtests):
    _, headers = user_with_headers(client)
    for name, position in TAMPERED_CURSORS:
        with subtests.test(msg=name):
            params = {"cursor": _cursor(position)}
            if isinstance(position, dict) and position.get("s") == "amount":
                params["sort"] = "amount"
            _validation_error(client.get("/transactions", params=params, headers=headers), "cursor")


def test_cursor_from_another_sort_is_400(client):
    _, headers = user_with_headers(client)
    for offset in range(4):
        create(client, headers, occurred_at=(EPOCH + timedelta(minutes=offset)).isoformat(), amount=f"{offset + 1}.00")
    by_amount = client.get("/transactions", params={"sort": "amount", "limit": 2}, headers=headers).json()
    by_time = client.get("/transactions", params={"limit": 2}, headers=headers).json()
    assert by_amount["next_cursor"] and by_time["next_cursor"]
    _validation_error(
        client.get("/transactions", params={"cursor": by_amount["next_cursor"]}, headers=headers), "cursor"
    )
    _validation_error(
        client.get(
            "/transactions", params={"cursor": by_time["next_cursor"], "sort": "-amount"}, headers=headers
        ),
        "cursor",
    )
    _validation_error(
        client.get(
            "/transactions", params={"cursor": by_amount["next_cursor"], "sort": "-amount"}, headers=headers
        ),
        "cursor",
    )
    good = client.get(
        "/transactions", params={"cursor": by_amount["next_cursor"], "sort": "amount", "limit": 2}, headers=headers
    )
    assert good.status_code == 200
    assert [item["amount"] for item in good.json()["items"]] == ["3.00", "4.00"]


def test_cursor_does_not_reveal_another_users_rows(client):
    """A cursor only says where to continue; the rows still belong to the caller."""
    _, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    for offset in range(3):
        create(client, other, occurred_at=(EPOCH + timedelta(minutes=offset)).isoformat())
    mine = create(client, headers, occurred_at=(EPOCH - timedelta(days=1)).isoformat())
    theirs_page = client.get("/transactions", params={"limit": 1}, headers=other).json()
    response = client.get("/transactions", params={"limit": 5, "cursor": theirs_page["next_cursor"]}, headers=headers)
    assert response.status_code == 200
    assert _ids(response.json()["items"]) == [mine["id"]]


def test_well_formed_but_forged_cursors_never_cause_a_server_error(client, subtests):
    _, headers = user_with_headers(client)
    create(client, headers, occurred_at=EPOCH.isoformat())
    forged = [
        ("amount", {"s": "amount", "k": "Infinity", "id": 1}),
        ("amount", {"s": "amount", "k": "-Infinity", "id": 1}),
        ("amount", {"s": "amount", "k": "NaN", "id": 1}),
        ("amount", {"s": "amount", "k": "1" * 60, "id": 1}),
        ("-amount", {"s": "-amount", "k": "5.00", "id": 2**70}),
        ("-amount", {"s": "-amount", "k": "5.00", "id": -(2**70)}),
        ("-occurred_at", {"s": "-occurred_at", "k": "0001-01-01T00:00:00+14:00", "id": 1}),
        ("-occurred_at", {"s": "-occurred_at", "k": "9999-12-31T23:59:59-14:00", "id": 1}),
        ("occurred_at", {"s": "occurred_at", "k": "2026-01-15T12:00:00", "id": 1}),
    ]
    for sort, position in forged:
        with subtests.test(msg=json.dumps(position)):
            response = client.get("/transactions", params={"sort": sort, "cursor": _cursor(position)}, headers=headers)
            assert response.status_code in (200, 400), response.text
            if response.status_code == 400:
                _validation_error(response, "cursor")
            else:
                assert set(response.json()) == {"items", "next_cursor"}
