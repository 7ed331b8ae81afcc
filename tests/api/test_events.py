"""Events and the feed (issue 15): exactly one event per record changed, on every path (the API, a
CSV import, recurring occurrences, the scheduler, account deletion), none for a change rolled back;
each event's data is the record as the API answered it; budget.exceeded once per budget and month
until it drops back within; GET /events shows each event once to a client polling with
next_cursor, even while writes commit concurrently and out of id order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.utils import assert_error, create, user_with_headers
from tests.utils.accounts import default_account, move, open_account
from tests.utils.budgets import add_months, move_back, new_rule, run_scheduler, set_budget, today


def feed(client: httpx.Client, headers: dict, after: str | None = None, limit: int | None = None) -> dict:
    params = {key: value for key, value in {"after": after, "limit": limit}.items() if value is not None}
    response = client.get("/events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body


def read_all(client: httpx.Client, headers: dict, after: str | None = None) -> tuple[list[dict], str | None]:
    """Every event after `after`, following next_cursor until nothing is new."""
    items: list[dict] = []
    while True:
        body = feed(client, headers, after)
        if not body["items"]:
            assert body["next_cursor"] == after
            return items, after
        items += body["items"]
        after = body["next_cursor"]


def new_events(client: httpx.Client, headers: dict, cursor: str | None) -> tuple[list[tuple[str, dict]], str | None]:
    items, cursor = read_all(client, headers, cursor)
    return [(item["type"], item["data"]) for item in items], cursor


def test_an_event_shows_its_record_as_the_api_answered_it(client):
    _, headers = user_with_headers(client)
    (registered,), cursor = read_all(client, headers)
    assert set(registered) == {"id", "type", "timestamp", "data"}
    assert registered["type"] == "account.created"
    assert registered["data"] == default_account(client, headers)

    before = datetime.now(UTC)
    created = create(client, headers, type="expense", amount="12.50", category="Food", description="lunch")
    [event], cursor = read_all(client, headers, cursor)
    assert (event["type"], event["data"]) == ("transaction.created", created)
    assert isinstance(event["id"], int) and event["id"] > registered["id"]
    assert abs(datetime.fromisoformat(event["timestamp"]) - before) < timedelta(seconds=30)

    changed = client.patch(f"/transactions/{created['id']}", json={"amount": "13.00"}, headers=headers).json()
    assert client.delete(f"/transactions/{created['id']}", headers=headers).status_code == 204
    events, _ = new_events(client, headers, cursor)
    assert events == [("transaction.updated", changed), ("transaction.deleted", changed)]


def test_accounts_and_transfers_write_one_event_per_record_changed(client):
    _, headers = user_with_headers(client)
    _, cursor = read_all(client, headers)
    main = default_account(client, headers)
    savings = open_account(client, headers, "Savings")
    transfer = move(client, headers, main["id"], savings["id"], "25.00")
    moved = client.patch(f"/transfers/{transfer['id']}", json={"description": "rent"}, headers=headers).json()
    assert client.delete(f"/transfers/{transfer['id']}", headers=headers).status_code == 204
    renamed = client.patch(f"/accounts/{savings['id']}", json={"name": "Rainy day"}, headers=headers).json()
    # A new default account changes two accounts: one event each.
    made_default = client.patch(f"/accounts/{savings['id']}", json={"is_default": True}, headers=headers).json()
    old_default = client.get(f"/accounts/{main['id']}", headers=headers).json()
    spare = open_account(client, headers, "Spare")
    assert client.delete(f"/accounts/{spare['id']}", headers=headers).status_code == 204

    events, _ = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == [
        "account.created", "transfer.created", "transfer.updated", "transfer.deleted", "account.updated",
        "account.updated", "account.updated", "account.created", "account.deleted",
    ]
    by_position = dict(enumerate(data for _, data in events))
    assert (by_position[0], by_position[1], by_position[2], by_position[4]) == (savings, transfer, moved, renamed)
    assert by_position[3]["id"] == transfer["id"]
    assert {by_position[5]["id"], by_position[6]["id"]} == {main["id"], savings["id"]}
    assert made_default in (by_position[5], by_position[6]) and old_default in (by_position[5], by_position[6])
    assert (by_position[7], by_position[8]["id"]) == (spare, spare["id"])


def test_a_balance_moved_by_a_transaction_is_no_account_event(client):
    _, headers = user_with_headers(client)
    _, cursor = read_all(client, headers)
    create(client, headers, type="income", amount="100.00")
    events, _ = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == ["transaction.created"]


def test_a_csv_import_writes_one_event_per_row(client):
    _, headers = user_with_headers(client)
    _, cursor = read_all(client, headers)
    rows = "".join(f"2026-0{month}-01T00:00:00Z,expense,{month}.00,USD,Rent,\n" for month in range(1, 10))
    body = "occurred_at,type,amount,currency,category,description\n" + rows
    response = client.post(
        "/transactions/import", content=body.encode(), headers={**headers, "Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    events, _ = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == ["transaction.created"] * 9
    listed = client.get("/transactions", params={"sort": "occurred_at"}, headers=headers).json()["items"]
    assert [data for _, data in events] == sorted(listed, key=lambda item: item["id"])


def test_recurring_occurrences_write_one_event_each_at_creation_and_from_the_scheduler(client, tenant_envs, db):
    _, headers = user_with_headers(client)
    _, cursor = read_all(client, headers)
    rule = new_rule(client, headers, start_date=(today() - timedelta(days=2)).isoformat())
    events, cursor = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == ["transaction.created"] * 3
    assert {data["recurring_id"] for _, data in events} == {rule["id"]}

    move_back(db, [rule["id"]], 2)
    _, cursor = read_all(client, headers, cursor)  # moving back in SQL writes updates; not counted
    assert run_scheduler(tenant_envs["tenant1"]).returncode == 0
    events, _ = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == ["transaction.created"] * 2


def test_a_refused_or_rolled_back_change_writes_no_event(client, db):
    user_id, headers = user_with_headers(client)
    _, cursor = read_all(client, headers)
    archived = open_account(client, headers, "Old")
    assert client.patch(f"/accounts/{archived['id']}", json={"archived": True}, headers=headers).status_code == 200
    _, cursor = read_all(client, headers, cursor)
    refused = client.post("/transactions", json={"type": "expense", "amount": "1.00", "account_id": archived["id"]},
                          headers=headers)
    assert_error(refused, 409)
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO transactions (user_id, type, amount) VALUES (%s, 'expense', 5)", (user_id,))
        raise RuntimeError("roll back")
    assert feed(client, headers, cursor) == {"items": [], "next_cursor": cursor}
    assert db.execute("SELECT count(*) AS n FROM events WHERE user_id = %s AND type LIKE 'transaction.%%'",
                      (user_id,)).fetchone()["n"] == 0


def test_budget_exceeded_once_per_month_until_back_within(client):
    _, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "100.00")
    _, cursor = read_all(client, headers)
    month = today().replace(day=1)
    at = datetime(month.year, month.month, 1, 12, tzinfo=UTC).isoformat()

    def spend(amount: str) -> dict:
        return create(client, headers, type="expense", amount=amount, category="Food", occurred_at=at)

    spend("60.00")
    over = spend("50.00")
    status = client.get(f"/budgets/{budget['id']}", params={"month": f"{month:%Y-%m}"}, headers=headers).json()
    spend("10.00")
    events, cursor = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == ["transaction.created"] * 2 + ["budget.exceeded"] + [
        "transaction.created"]
    assert status["spent"] == "110.00" and status["percent_used"] == "110.0"
    assert events[2][1] == status

    # Back within, then over again: a second event. Another month is its own.
    assert client.delete(f"/transactions/{over['id']}", headers=headers).status_code == 204
    spend("45.00")
    other = add_months(month, -1)
    create(client, headers, type="expense", amount="101.00", category="Food",
           occurred_at=datetime(other.year, other.month, 2, tzinfo=UTC).isoformat())
    events, cursor = new_events(client, headers, cursor)
    types = [(event_type, data.get("month")) for event_type, data in events if event_type == "budget.exceeded"]
    assert types == [("budget.exceeded", f"{month:%Y-%m}"), ("budget.exceeded", f"{other:%Y-%m}")]

    # A budget made over a month already spent writes nothing, nor does spending more there: the
    # month never went from within to over.
    create(client, headers, type="expense", amount="20.00", category="Travel", occurred_at=at)
    _, cursor = read_all(client, headers, cursor)
    set_budget(client, headers, "Travel", "1.00")
    create(client, headers, type="expense", amount="1.00", category="Travel", occurred_at=at)
    events, _ = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events] == ["transaction.created"]


def test_the_feed_pages_and_validates(client):
    _, headers = user_with_headers(client)
    other_id, other = user_with_headers(client)
    for amount in ("1.00", "2.00", "3.00", "4.00"):
        create(client, headers, type="income", amount=amount)
    create(client, other, type="income", amount="9.00")
    first = feed(client, headers, limit=2)
    second = feed(client, headers, first["next_cursor"], limit=2)
    third = feed(client, headers, second["next_cursor"], limit=2)
    amounts = [item["data"].get("amount") for item in first["items"] + second["items"] + third["items"]]
    assert amounts == [None, "1.00", "2.00", "3.00", "4.00"]
    assert feed(client, headers, third["next_cursor"]) == {"items": [], "next_cursor": third["next_cursor"]}
    for params in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"after": "nope"}, {"after": "eyJ0IjotMX0"}):
        assert_error(client.get("/events", params=params, headers=headers), 400, "validation_error")
    assert_error(client.get("/events"), 401)


def test_a_poller_sees_every_event_once_while_writes_commit_out_of_order(client, db):
    user_id, headers = user_with_headers(client)
    _, cursor = read_all(client, headers)
    account_id = default_account(client, headers)["id"]
    # An older transaction takes its id first and commits last, with a higher event id.
    db.execute("BEGIN")
    db.execute("SELECT pg_current_xact_id()")
    later = create(client, headers, type="income", amount="2.00")
    db.execute("INSERT INTO transactions (user_id, account_id, type, amount) VALUES (%s, %s, 'income', 1)",
               (user_id, account_id))
    assert feed(client, headers, cursor)["items"] == []  # held back while the older one runs
    db.execute("COMMIT")
    items, cursor = read_all(client, headers, cursor)
    assert [item["data"]["amount"] for item in items] == ["1.00", "2.00"]
    assert items[0]["id"] > items[1]["id"] and items[1]["data"] == later

    # Writers on four threads while a client polls: every event exactly once.
    seen: list[int] = []
    done = threading.Event()

    def write(amounts: range) -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as http:
            for amount in amounts:
                create(http, headers, type="income", amount=f"{amount}.00")

    def poll() -> None:
        nonlocal cursor
        with httpx.Client(base_url=str(client.base_url), timeout=30) as http:
            while True:
                finished = done.is_set()
                body = feed(http, headers, cursor)
                seen.extend(item["id"] for item in body["items"])
                cursor = body["next_cursor"]
                if finished and not body["items"]:
                    return

    poller = threading.Thread(target=poll)
    poller.start()
    writers = [threading.Thread(target=write, args=(range(start, start + 25),)) for start in (100, 200, 300, 400)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    poller.join(timeout=60)
    stored = db.execute(
        "SELECT id FROM events WHERE user_id = %s AND id > %s ORDER BY id", (user_id, max(item["id"] for item in items))
    ).fetchall()
    assert len(seen) == len(set(seen)) == 100
    assert sorted(seen) == [row["id"] for row in stored]


def test_an_edit_of_an_expense_in_a_month_over_budget_writes_no_second_exceeded(client):
    _, headers = user_with_headers(client)
    savings = open_account(client, headers, "Savings")
    set_budget(client, headers, "Food", "100.00")
    month = today().replace(day=1)
    at = datetime(month.year, month.month, 1, 12, tzinfo=UTC).isoformat()
    create(client, headers, type="expense", amount="90.00", category="Food", occurred_at=at)
    _, cursor = read_all(client, headers)
    edited = create(client, headers, type="expense", amount="20.00", category="Food", occurred_at=at)
    # Each edit takes the old amount out of the month's totals and puts the new one in: the month
    # is over before and after, so it was told once.
    for change in ({"amount": "20.00"}, {"amount": "25.00"}, {"account_id": savings["id"]}, {"description": "x"}):
        assert client.patch(f"/transactions/{edited['id']}", json=change, headers=headers).status_code == 200
    events, _ = new_events(client, headers, cursor)
    assert [event_type for event_type, _ in events].count("budget.exceeded") == 1


def test_spending_at_once_on_two_accounts_over_a_budget_is_told_once(client):
    _, headers = user_with_headers(client)
    accounts = [default_account(client, headers)["id"], open_account(client, headers, "Card")["id"]]
    set_budget(client, headers, "Food", "100.00")
    month = today().replace(day=1)
    at = datetime(month.year, month.month, 1, 12, tzinfo=UTC).isoformat()
    create(client, headers, type="expense", amount="60.00", category="Food", occurred_at=at)
    _, cursor = read_all(client, headers)
    start = threading.Barrier(2)

    def spend(account_id: int) -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as http:
            start.wait()
            create(http, headers, type="expense", amount="30.00", category="Food", occurred_at=at,
                   account_id=account_id)

    for _ in range(5):  # each round: within (60), then two expenses of 30 at once take it over
        threads = [threading.Thread(target=spend, args=(account_id,)) for account_id in accounts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events, cursor = new_events(client, headers, cursor)
        assert [event_type for event_type, _ in events].count("budget.exceeded") == 1, events
        # Back within for the next round: the two new expenses deleted.
        for event_type, data in events:
            if event_type == "transaction.created":
                assert client.delete(f"/transactions/{data['id']}", headers=headers).status_code == 204
        _, cursor = read_all(client, headers, cursor)
