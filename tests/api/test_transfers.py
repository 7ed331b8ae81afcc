"""Transfers between a user's own accounts over HTTP (issue 13): create, idempotency, list with
keyset pages and filters, read, change, delete, balances that follow, analytics that ignore them,
other users' transfers, and concurrent transfers between the same two accounts."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from tests.utils import assert_error, count_transactions, create, user_with_headers
from tests.utils.accounts import (
    MISSING_ID,
    TRANSFER_FIELDS,
    assert_balances_exact,
    balances,
    default_account,
    move,
    open_account,
    validation_error,
    walk,
)

EPOCH = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _stored(db, user_id: int) -> list[dict]:
    return db.execute("SELECT * FROM transfers WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _two_accounts(client: httpx.Client, headers: dict) -> tuple[int, int]:
    """The default account (balance 0.00) and a savings account opened with 1000.00."""
    main = default_account(client, headers)["id"]
    savings = open_account(client, headers, "Savings", opening_balance="1000.00")["id"]
    return main, savings


def _ids(items: list[dict]) -> list[int]:
    return [item["id"] for item in items]


# --- create ------------------------------------------------------------------------------------


def test_create_is_201_with_every_field_a_location_and_both_balances_moved(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    body = {"from_account_id": savings, "to_account_id": main, "amount": "250.75",
            "occurred_at": "2026-01-15T09:30:00-05:00", "description": "Rent money"}
    response = client.post("/transfers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == TRANSFER_FIELDS
    assert isinstance(created["id"], int)
    assert (created["from_account_id"], created["to_account_id"]) == (savings, main)
    assert (created["amount"], created["currency"], created["description"]) == ("250.75", "USD", "Rent money")
    assert datetime.fromisoformat(created["occurred_at"]) == datetime(2026, 1, 15, 14, 30, tzinfo=UTC)
    assert "Idempotent-Replayed" not in response.headers
    location = response.headers["Location"]
    assert location.endswith(f"/transfers/{created['id']}")
    assert client.get(location, headers=headers).json() == created
    assert balances(client, headers) == {main: Decimal("250.75"), savings: Decimal("749.25")}
    (row,) = _stored(db, user_id)
    assert row["amount"] == Decimal("250.75") and row["id"] == created["id"]


def test_occurred_at_defaults_to_now_and_description_to_null(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    before = datetime.now(UTC)
    created = move(client, headers, main, savings, 5)
    assert created["amount"] == "5.00" and created["description"] is None
    occurred = datetime.fromisoformat(created["occurred_at"])
    assert before - timedelta(seconds=5) <= occurred <= datetime.now(UTC) + timedelta(seconds=5)
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None


def test_tenant2_transfers_show_its_currency(client2):
    _, headers = user_with_headers(client2)
    main, savings = _two_accounts(client2, headers)
    assert move(client2, headers, savings, main, "1.00")["currency"] == "EUR"


def test_invalid_create_is_400_naming_the_field_and_moves_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    valid = {"from_account_id": main, "to_account_id": savings, "amount": "1.00"}
    cases = [
        ("same account both sides", {**valid, "to_account_id": main}, "to_account_id"),
        ("no from", {"to_account_id": savings, "amount": "1.00"}, "from_account_id"),
        ("no to", {"from_account_id": main, "amount": "1.00"}, "to_account_id"),
        ("no amount", {"from_account_id": main, "to_account_id": savings}, "amount"),
        ("zero", {**valid, "amount": "0"}, "amount"),
        ("negative", {**valid, "amount": "-1.00"}, "amount"),
        ("three places", {**valid, "amount": "1.001"}, "amount"),
        ("too large", {**valid, "amount": "1000000000000.00"}, "amount"),
        ("exponent", {**valid, "amount": "1e2"}, "amount"),
        ("not a number", {**valid, "amount": "lots"}, "amount"),
        ("from null", {**valid, "from_account_id": None}, "from_account_id"),
        ("from as text", {**valid, "from_account_id": "main"}, "from_account_id"),
        ("to zero", {**valid, "to_account_id": 0}, "to_account_id"),
        ("naive occurred_at", {**valid, "occurred_at": "2026-01-15T12:00:00"}, "occurred_at"),
        ("occurred_at out of range", {**valid, "occurred_at": "1800-01-01T00:00:00Z"}, "occurred_at"),
        ("long description", {**valid, "description": "d" * 501}, "description"),
        ("NUL in description", {**valid, "description": "a\x00"}, "description"),
        ("currency", {**valid, "currency": "EUR"}, "currency"),
        ("user_id", {**valid, "user_id": 1}, "user_id"),
        ("type", {**valid, "type": "expense"}, "type"),
    ]
    for name, body, field in cases:
        with subtests.test(msg=name):
            validation_error(client.post("/transfers", json=body, headers=headers), field)
            keyed = {**headers, "Idempotency-Key": f"invalid-{name.replace(' ', '-')}"}
            validation_error(client.post("/transfers", json=body, headers=keyed), field)
    assert _stored(db, user_id) == []
    assert balances(client, headers) == {main: Decimal("0.00"), savings: Decimal("1000.00")}


def test_longest_description_and_unicode_are_kept(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    assert move(client, headers, main, savings, description="d" * 500)["description"] == "d" * 500
    assert move(client, headers, main, savings, description="Épargne 💶")["description"] == "Épargne 💶"


# --- idempotency -------------------------------------------------------------------------------


def test_retry_with_the_same_key_replays_and_moves_the_money_once(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    keyed = {**headers, "Idempotency-Key": "move-2026-01"}
    body = {"from_account_id": savings, "to_account_id": main, "amount": "100.10", "description": "once"}
    first = client.post("/transfers", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(2):
        retry = client.post("/transfers", json=body, headers=keyed)
        assert retry.status_code == 201, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json() == first.json()
        assert retry.headers["Location"] == first.headers["Location"]
    assert len(_stored(db, user_id)) == 1
    assert balances(client, headers) == {main: Decimal("100.10"), savings: Decimal("899.90")}
    # The replay is the transfer as it was created, even after a change.
    client.patch(f"/transfers/{first.json()['id']}", json={"description": "changed"}, headers=headers)
    assert client.post("/transfers", json=body, headers=keyed).json() == first.json()


def test_same_key_with_a_different_body_is_422_and_moves_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    cash = open_account(client, headers, "Cash", "cash")["id"]
    keyed = {**headers, "Idempotency-Key": "one-body"}
    body = {"from_account_id": savings, "to_account_id": main, "amount": "10.00"}
    first = client.post("/transfers", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    for name, other in [
        ("amount", {**body, "amount": "10.01"}),
        ("from", {**body, "from_account_id": cash}),
        ("to", {**body, "to_account_id": cash}),
        ("swapped", {**body, "from_account_id": main, "to_account_id": savings}),
        ("description", {**body, "description": "more"}),
    ]:
        with subtests.test(msg=name):
            assert_error(client.post("/transfers", json=other, headers=keyed), 422, "idempotency_key_reused")
    assert len(_stored(db, user_id)) == 1
    assert balances(client, headers) == {main: Decimal("10.00"), savings: Decimal("990.00"), cash: Decimal("0.00")}


def test_one_key_for_a_transaction_and_then_a_transfer_is_422(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    transfer = {"from_account_id": savings, "to_account_id": main, "amount": "10.00"}
    transaction = {"type": "expense", "amount": "10.00"}
    # A transaction first, then a transfer with its key; and the other way round.
    used = client.post("/transactions", json=transaction, headers={**headers, "Idempotency-Key": "first-a-transaction"})
    assert used.status_code == 201, used.text
    refused = client.post("/transfers", json=transfer, headers={**headers, "Idempotency-Key": "first-a-transaction"})
    assert_error(refused, 422, "idempotency_key_reused")
    used = client.post("/transfers", json=transfer, headers={**headers, "Idempotency-Key": "first-a-transfer"})
    assert used.status_code == 201, used.text
    for path in ("/transactions", "/transaction"):
        refused = client.post(path, json=transaction, headers={**headers, "Idempotency-Key": "first-a-transfer"})
        assert_error(refused, 422, "idempotency_key_reused")
    assert count_transactions(db, user_id) == 1
    assert len(_stored(db, user_id)) == 1
    assert balances(client, headers) == {main: Decimal("0.00"), savings: Decimal("990.00")}


def test_an_invalid_idempotency_key_is_400_and_moves_nothing(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    body = {"from_account_id": savings, "to_account_id": main, "amount": "10.00"}
    for key in (b"", b"k" * 256, b"has space", "ключ".encode()):
        response = client.post("/transfers", json=body, headers={**headers, "Idempotency-Key": key})
        assert_error(response, 400, "invalid_idempotency_key")
    assert _stored(db, user_id) == []


def test_concurrent_retries_with_one_key_create_one_transfer(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    keyed = {**headers, "Idempotency-Key": "concurrent-transfer"}
    body = {"from_account_id": savings, "to_account_id": main, "amount": "33.33"}
    results = _race(client, 6, lambda own, _: own.post("/transfers", json=body, headers=keyed))
    for result in results:
        assert result.status_code == 201, result.text
    assert len({result.json()["id"] for result in results}) == 1
    assert len(_stored(db, user_id)) == 1
    assert balances(client, headers) == {main: Decimal("33.33"), savings: Decimal("966.67")}


# --- archived accounts and other users' accounts -----------------------------------------------


def test_an_archived_account_on_either_side_is_409_and_moves_nothing(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    client.patch(f"/accounts/{savings}", json={"archived": True}, headers=headers)
    for source, target in ((savings, main), (main, savings)):
        body = {"from_account_id": source, "to_account_id": target, "amount": "1.00"}
        assert_error(client.post("/transfers", json=body, headers=headers), 409, "account_archived")
        keyed = {**headers, "Idempotency-Key": f"archived-{source}"}
        assert_error(client.post("/transfers", json=body, headers=keyed), 409, "account_archived")
    assert _stored(db, user_id) == []
    assert balances(client, headers) == {main: Decimal("0.00"), savings: Decimal("1000.00")}


def test_an_account_of_another_user_on_either_side_is_400_and_moves_nothing(client, db):
    victim_id, victim = user_with_headers(client)
    theirs = open_account(client, victim, "Theirs", opening_balance="500.00")["id"]
    victim_before = balances(client, victim)
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    answers = []
    for foreign in (theirs, MISSING_ID):
        for field, other in (("from_account_id", "to_account_id"), ("to_account_id", "from_account_id")):
            body = {field: foreign, other: main, "amount": "1.00"}
            answers.append(validation_error(client.post("/transfers", json=body, headers=headers), field))
        # Both sides another user's: both accounts of the victim.
        body = {"from_account_id": theirs, "to_account_id": default_account(client, victim)["id"], "amount": "1"}
        validation_error(client.post("/transfers", json=body, headers=headers), "from_account_id")
    assert answers[:2] == answers[2:]
    assert _stored(db, user_id) == [] and _stored(db, victim_id) == []
    assert balances(client, victim) == victim_before
    assert balances(client, headers) == {main: Decimal("0.00"), savings: Decimal("1000.00")}


# --- read, list --------------------------------------------------------------------------------


def test_get_of_a_missing_transfer_is_404(client):
    _, headers = user_with_headers(client)
    for path in (f"/transfers/{MISSING_ID}", "/transfers/99999999999999999999", "/transfers/0"):
        assert_error(client.get(path, headers=headers), 404, "not_found")


def test_list_is_newest_first_with_ties_by_id_and_only_the_callers(client):
    _, other = user_with_headers(client)
    other_main, other_savings = _two_accounts(client, other)
    move(client, other, other_savings, other_main, occurred_at=EPOCH.isoformat())
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    made = [move(client, headers, savings, main, f"{n + 1}.00",
                 occurred_at=(EPOCH + timedelta(hours=n % 3)).isoformat()) for n in range(7)]
    response = client.get("/transfers", headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is None
    expected = sorted(made, key=lambda item: (item["occurred_at"], item["id"]), reverse=True)
    assert page["items"] == expected
    assert len(walk(client, other, "/transfers")) == 1


def test_an_empty_list(client):
    _, headers = user_with_headers(client)
    response = client.get("/transfers", headers=headers)
    assert response.json() == {"items": [], "next_cursor": None}


def test_walking_pages_returns_every_transfer_once_in_order(client, subtests):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    made = [move(client, headers, savings, main, "1.00", occurred_at=(EPOCH + timedelta(minutes=n // 2)).isoformat())
            for n in range(13)]
    expected = _ids(sorted(made, key=lambda item: (item["occurred_at"], item["id"]), reverse=True))
    for limit in (1, 2, 5, 13, 200):
        with subtests.test(msg=f"limit {limit}"):
            items = walk(client, headers, "/transfers", limit=limit)
            assert _ids(items) == expected
    first = client.get("/transfers", params={"limit": 13}, headers=headers).json()
    assert len(first["items"]) == 13 and first["next_cursor"] is None
    default = client.get("/transfers", headers=headers).json()
    assert len(default["items"]) == 13


def test_default_page_holds_fifty(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    db.execute(
        "INSERT INTO transfers (user_id, from_account_id, to_account_id, amount, occurred_at)"
        " SELECT %s, %s, %s, 1.00, %s::timestamptz + n * interval '1 minute' FROM generate_series(1, 60) AS n",
        (user_id, savings, main, EPOCH),
    )
    page = client.get("/transfers", headers=headers).json()
    assert len(page["items"]) == 50 and page["next_cursor"]
    assert len(client.get("/transfers", params={"limit": 200}, headers=headers).json()["items"]) == 60
    assert len(walk(client, headers, "/transfers", limit=7)) == 60
    assert balances(client, headers) == {main: Decimal("60.00"), savings: Decimal("940.00")}


def test_list_filters_by_account_on_either_side(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    cash = open_account(client, headers, "Cash", "cash")["id"]
    a = move(client, headers, main, savings, occurred_at=(EPOCH + timedelta(hours=1)).isoformat())
    b = move(client, headers, savings, cash, occurred_at=(EPOCH + timedelta(hours=2)).isoformat())
    c = move(client, headers, cash, main, occurred_at=(EPOCH + timedelta(hours=3)).isoformat())
    assert _ids(walk(client, headers, "/transfers", account_id=main)) == [c["id"], a["id"]]
    assert _ids(walk(client, headers, "/transfers", account_id=savings)) == [b["id"], a["id"]]
    assert _ids(walk(client, headers, "/transfers", account_id=cash, limit=1)) == [c["id"], b["id"]]
    unused = open_account(client, headers, "Unused")["id"]
    assert walk(client, headers, "/transfers", account_id=unused) == []


def test_list_from_and_to_cover_whole_days_in_the_tenant_zone(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    # tenant1 is New York (UTC-5 in January): its 15 January runs 05:00Z to 05:00Z the next day.
    times = ["2026-01-15T04:59:59Z", "2026-01-15T05:00:00Z", "2026-01-16T04:59:59Z", "2026-01-16T05:00:00Z"]
    made = [move(client, headers, main, savings, occurred_at=at) for at in times]
    day = walk(client, headers, "/transfers", **{"from": "2026-01-15", "to": "2026-01-15"})
    assert _ids(day) == [made[2]["id"], made[1]["id"]]
    since = walk(client, headers, "/transfers", **{"from": "2026-01-16"})
    assert _ids(since) == [made[3]["id"]]
    until = walk(client, headers, "/transfers", to="2026-01-14")
    assert _ids(until) == [made[0]["id"]]
    instants = walk(client, headers, "/transfers", **{"from": "2026-01-15T05:00:00Z", "to": "2026-01-16T04:59:59Z"})
    assert _ids(instants) == [made[2]["id"], made[1]["id"]]
    both = walk(client, headers, "/transfers", account_id=savings, **{"from": "2026-01-15", "to": "2026-01-15"},
                limit=1)
    assert _ids(both) == [made[2]["id"], made[1]["id"]]


def _cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def test_invalid_list_query_is_400(client, subtests):
    _, headers = user_with_headers(client)
    cases = [
        ("limit 0", {"limit": 0}, "limit"),
        ("limit 201", {"limit": 201}, "limit"),
        ("limit text", {"limit": "many"}, "limit"),
        ("from not a date", {"from": "yesterday"}, "from"),
        ("to out of range", {"to": "3000-01-01"}, "to"),
        ("account_id text", {"account_id": "main"}, "account_id"),
        ("cursor garbage", {"cursor": "not-a-cursor"}, "cursor"),
        ("cursor of amounts", {"cursor": _cursor({"s": "amount", "k": "5.00", "id": 1})}, "cursor"),
        ("cursor of oldest first", {"cursor": _cursor({"s": "occurred_at", "k": "2026-01-15T12:00:00+00:00",
                                                       "id": 1})}, "cursor"),
        ("cursor without id", {"cursor": _cursor({"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00"})},
         "cursor"),
        ("cursor bad instant", {"cursor": _cursor({"s": "-occurred_at", "k": "soon", "id": 1})}, "cursor"),
        ("sort is not offered", {"sort": "amount"}, "sort"),
    ]
    for name, params, field in cases:
        with subtests.test(msg=name):
            validation_error(client.get("/transfers", params=params, headers=headers), field)


def test_a_transaction_pages_cursor_of_another_sort_is_refused(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    for n in range(3):
        create(client, headers, amount=f"{n + 1}.00")
        move(client, headers, main, savings, occurred_at=(EPOCH + timedelta(minutes=n)).isoformat())
    for sort in ("amount", "-amount", "occurred_at"):
        page = client.get("/transactions", params={"sort": sort, "limit": 1}, headers=headers).json()
        assert page["next_cursor"]
        validation_error(client.get("/transfers", params={"cursor": page["next_cursor"]}, headers=headers), "cursor")
    # And a transfer page's cursor continues its own list only.
    page = client.get("/transfers", params={"limit": 1}, headers=headers).json()
    rest = client.get("/transfers", params={"cursor": page["next_cursor"]}, headers=headers)
    assert rest.status_code == 200 and len(rest.json()["items"]) == 2


def test_a_cursor_does_not_reveal_another_users_transfers(client):
    _, other = user_with_headers(client)
    other_main, other_savings = _two_accounts(client, other)
    for n in range(3):
        move(client, other, other_main, other_savings, occurred_at=(EPOCH + timedelta(minutes=n)).isoformat())
    theirs = client.get("/transfers", params={"limit": 1}, headers=other).json()
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    mine = move(client, headers, main, savings, occurred_at=EPOCH.isoformat())
    response = client.get("/transfers", params={"cursor": theirs["next_cursor"]}, headers=headers)
    assert response.status_code == 200
    assert _ids(response.json()["items"]) == [mine["id"]]


# --- change, delete ----------------------------------------------------------------------------


def test_patch_changes_amount_date_and_description_and_the_balances_follow(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    made = move(client, headers, savings, main, "100.00", occurred_at=EPOCH.isoformat(), description="first")
    current = made
    for changes in ({"amount": "0.01"}, {"occurred_at": "2026-02-01T00:00:00+01:00"}, {"description": None},
                    {"description": "again", "amount": 250}):
        response = client.patch(f"/transfers/{made['id']}", json=changes, headers=headers)
        assert response.status_code == 200, response.text
        changed = response.json()
        assert set(changed) == set(current)
        for name in set(current) - set(changes) - {"occurred_at"}:
            assert changed[name] == current[name], name
        assert client.get(f"/transfers/{made['id']}", headers=headers).json() == changed
        current = changed
    assert current["amount"] == "250.00" and current["description"] == "again"
    assert datetime.fromisoformat(current["occurred_at"]) == datetime(2026, 1, 31, 23, tzinfo=UTC)
    assert balances(client, headers) == {main: Decimal("250.00"), savings: Decimal("750.00")}
    assert_balances_exact(client, headers)


def test_invalid_patch_is_400_and_changes_nothing(client, subtests):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    cash = open_account(client, headers, "Cash", "cash")["id"]
    made = move(client, headers, savings, main, "100.00")
    before = balances(client, headers)
    for name, changes, field in [
        ("nothing", {}, "_schema"),
        ("zero", {"amount": 0}, "amount"),
        ("three places", {"amount": "1.005"}, "amount"),
        ("amount null", {"amount": None}, "amount"),
        ("naive date", {"occurred_at": "2026-01-01T00:00:00"}, "occurred_at"),
        ("occurred_at null", {"occurred_at": None}, "occurred_at"),
        ("from account", {"from_account_id": cash}, "from_account_id"),
        ("to account", {"to_account_id": cash}, "to_account_id"),
        ("currency", {"currency": "EUR"}, "currency"),
    ]:
        with subtests.test(msg=name):
            validation_error(client.patch(f"/transfers/{made['id']}", json=changes, headers=headers), field)
            assert client.get(f"/transfers/{made['id']}", headers=headers).json() == made
    assert balances(client, headers) == before


def test_delete_is_204_the_transfer_is_gone_and_the_balances_return(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    kept = move(client, headers, savings, main, "1.50")
    gone = move(client, headers, main, savings, "0.25")
    response = client.delete(f"/transfers/{gone['id']}", headers=headers)
    assert response.status_code == 204 and response.content == b""
    assert_error(client.get(f"/transfers/{gone['id']}", headers=headers), 404, "not_found")
    assert_error(client.delete(f"/transfers/{gone['id']}", headers=headers), 404, "not_found")
    assert_error(client.patch(f"/transfers/{gone['id']}", json={"amount": 1}, headers=headers), 404, "not_found")
    assert _ids(walk(client, headers, "/transfers")) == [kept["id"]]
    assert [row["id"] for row in _stored(db, user_id)] == [kept["id"]]
    assert balances(client, headers) == {main: Decimal("1.50"), savings: Decimal("998.50")}


def test_a_transfer_from_or_to_an_account_archived_later_may_still_change_or_go(client):
    """Archiving stops new records only: an existing transfer stays correctable."""
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    made = move(client, headers, savings, main, "10.00")
    client.patch(f"/accounts/{savings}", json={"archived": True}, headers=headers)
    changed = client.patch(f"/transfers/{made['id']}", json={"amount": "12.00"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert balances(client, headers) == {main: Decimal("12.00"), savings: Decimal("988.00")}
    assert client.delete(f"/transfers/{made['id']}", headers=headers).status_code == 204
    assert balances(client, headers) == {main: Decimal("0.00"), savings: Decimal("1000.00")}


# --- transfers are not income or expense -------------------------------------------------------


def test_transfers_never_count_as_income_or_expense(client):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    create(client, headers, type="income", amount="10.00", occurred_at="2026-02-10T12:00:00Z", category="pay")
    span = {"from": "2026-01-01", "to": "2026-03-31"}

    def analytics(**params) -> dict:
        response = client.get("/analytics", params={**span, **params}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    before = {name: analytics(**params) for name, params in (
        ("all", {}), ("main", {"account_id": main}), ("savings", {"account_id": savings}),
        ("days", {"group_by": "day"}), ("categories", {"group_by": "category"}))}
    made = move(client, headers, savings, main, "500.00", occurred_at="2026-02-10T13:00:00Z")
    move(client, headers, main, savings, "20.00", occurred_at="2026-01-05T13:00:00Z")
    client.patch(f"/transfers/{made['id']}", json={"amount": "600.00"}, headers=headers)
    after = {name: analytics(**params) for name, params in (
        ("all", {}), ("main", {"account_id": main}), ("savings", {"account_id": savings}),
        ("days", {"group_by": "day"}), ("categories", {"group_by": "category"}))}
    assert after == before
    assert (after["all"]["total_income"], after["all"]["count"]) == ("10.00", 1)
    assert client.get("/transactions", headers=headers).json()["items"][0]["amount"] == "10.00"
    assert len(walk(client, headers, "/transactions")) == 1
    assert balances(client, headers) == {main: Decimal("590.00"), savings: Decimal("420.00")}


# --- other users' transfers --------------------------------------------------------------------


def test_another_users_transfer_is_404_on_every_path_and_stays_as_it_was(client, db):
    victim_id, victim = user_with_headers(client)
    their_main, their_savings = _two_accounts(client, victim)
    theirs = move(client, victim, their_savings, their_main, "7.00")
    victim_balances = balances(client, victim)
    _, headers = user_with_headers(client)
    _two_accounts(client, headers)
    path = f"/transfers/{theirs['id']}"
    missing = assert_error(client.get(f"/transfers/{MISSING_ID}", headers=headers), 404)
    assert assert_error(client.get(path, headers=headers), 404) == missing
    assert_error(client.patch(path, json={"amount": "700.00"}, headers=headers), 404, "not_found")
    assert_error(client.delete(path, headers=headers), 404, "not_found")
    assert client.get(path, headers=victim).json() == theirs
    assert balances(client, victim) == victim_balances
    assert len(_stored(db, victim_id)) == 1
    assert walk(client, headers, "/transfers") == []


def test_a_token_of_tenant2_is_refused_on_tenant1s_transfers(client, client2):
    _, headers = user_with_headers(client2)
    main, savings = _two_accounts(client2, headers)
    made = move(client2, headers, savings, main)
    assert_error(client.get("/transfers", headers=headers), 401)
    assert_error(client.get(f"/transfers/{made['id']}", headers=headers), 401)
    body = {"from_account_id": savings, "to_account_id": main, "amount": "1.00"}
    assert_error(client.post("/transfers", json=body, headers=headers), 401)


# --- concurrency -------------------------------------------------------------------------------


def _race(client: httpx.Client, threads_count: int, request) -> list:
    """Run request(own_client, index) in threads_count threads, each with its own client, started
    together; return what each returned (an exception in any fails the test)."""
    barrier = threading.Barrier(threads_count)
    results: list = [None] * threads_count

    def fire(index: int) -> None:
        try:
            with httpx.Client(base_url=client.base_url, timeout=60) as own:
                assert own.get("/health").status_code == 200  # open the connection before the race
                barrier.wait(timeout=30)
                results[index] = request(own, index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[index] = exc

    threads = [threading.Thread(target=fire, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for result in results:
        assert result is not None and not isinstance(result, BaseException), result
    return results


def test_concurrent_transfers_both_ways_between_two_accounts_leave_both_balances_exact(client, db):
    user_id, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)
    threads_count, per_thread = 8, 6

    def transfers(own: httpx.Client, index: int) -> list[tuple[dict, httpx.Response]]:
        done = []
        for number in range(per_thread):
            forth = (index + number) % 2 == 0
            body = {"from_account_id": main if forth else savings, "to_account_id": savings if forth else main,
                    "amount": f"{index + 1}.{number * 7 + index:02d}"}
            done.append((body, own.post("/transfers", json=body, headers=headers)))
        return done

    results = _race(client, threads_count, transfers)
    expected = {main: Decimal("0.00"), savings: Decimal("1000.00")}
    succeeded = 0
    for body, response in (pair for done in results for pair in done):
        assert response.status_code in (201, 503), response.text
        if response.status_code == 503:
            assert_error(response, 503, "busy")
            assert int(response.headers["Retry-After"]) >= 1
            continue
        succeeded += 1
        assert response.json()["amount"] == f"{Decimal(body['amount']):.2f}"
        expected[body["from_account_id"]] -= Decimal(body["amount"])
        expected[body["to_account_id"]] += Decimal(body["amount"])
    assert succeeded >= threads_count * per_thread // 2, "most transfers should get through"
    assert len(_stored(db, user_id)) == succeeded
    assert balances(client, headers) == expected
    assert sum(expected.values()) == Decimal("1000.00")
    assert_balances_exact(client, headers)


def test_concurrent_transactions_and_transfers_on_one_account_leave_it_exact(client, db):
    _, headers = user_with_headers(client)
    main, savings = _two_accounts(client, headers)

    def request(own: httpx.Client, index: int) -> httpx.Response:
        if index % 3 == 0:
            body = {"from_account_id": savings, "to_account_id": main, "amount": "3.33"}
            return own.post("/transfers", json=body, headers=headers)
        if index % 3 == 1:
            return own.post("/transactions", json={"type": "expense", "amount": "1.11", "account_id": main},
                            headers=headers)
        return own.post("/transactions", json={"type": "income", "amount": "2.22", "account_id": savings},
                        headers=headers)

    results = _race(client, 9, request)
    for result in results:
        assert result.status_code in (201, 503), result.text
    assert_balances_exact(client, headers)
