"""Recurring transactions over HTTP (issue 14): a rule's past occurrences made at once, dated the
start of their New York day, exactly once; validation; idempotent creates; other users' rules;
changes that apply only to what is not yet made; deleted rules whose transactions stay; the
recurring_id filter; accounts a rule uses; DELETE /me; and `python -m service run-scheduled` as its
own process: catching up after downtime, two runs at once, --every until SIGTERM, a bad database URL."""

from __future__ import annotations

import signal
import socket
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from psycopg import sql

from tests.utils import PASSWORD, assert_error, bearer, count_transactions, create, login, register, user_with_headers
from tests.utils.accounts import MISSING_ID, default_account, get_account, open_account, validation_error, walk
from tests.utils.budgets import (
    RULE_FIELDS,
    add_months,
    days_of,
    made_by,
    move_back,
    new_rule,
    run_scheduler,
    scheduler,
    set_budget,
    today,
)

RENT = {"type": "expense", "amount": "1200.00", "category": "Rent", "description": "Flat", "frequency": "monthly"}


def _rules(db, user_id: int | None = None) -> list[dict]:
    if user_id is None:
        return db.execute("SELECT * FROM recurring_transactions ORDER BY id").fetchall()
    return db.execute("SELECT * FROM recurring_transactions WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _three_months_back() -> tuple[date, list[date]]:
    """A monthly rule's start about three months ago (on a day every month has), and its occurrences
    due by today."""
    now = today()
    start = add_months(now.replace(day=min(now.day, 28)), -3)
    return start, [add_months(start, n) for n in range(4)]


def _get_rule(client, headers, rule_id: int) -> dict:
    response = client.get(f"/recurring-transactions/{rule_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _patch_rule(client, headers, rule_id: int, changes: dict) -> dict:
    response = client.patch(f"/recurring-transactions/{rule_id}", json=changes, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# --- create ------------------------------------------------------------------------------------


def test_a_rule_that_started_three_months_ago_makes_its_past_occurrences_at_once(client, db):
    user_id, headers = user_with_headers(client)
    main = default_account(client, headers)
    start, due = _three_months_back()
    before = datetime.now(UTC)
    response = client.post("/recurring-transactions", json={**RENT, "start_date": start.isoformat()}, headers=headers)
    assert response.status_code == 201, response.text
    rule = response.json()
    assert set(rule) == RULE_FIELDS
    assert isinstance(rule["id"], int)
    assert {name: rule[name] for name in RULE_FIELDS - {"id", "created_at", "updated_at"}} == {
        "account_id": main["id"], "type": "expense", "amount": "1200.00", "currency": "USD",
        "description": "Flat", "category": "Rent", "frequency": "monthly", "interval": 1,
        "start_date": start.isoformat(), "end_date": None, "last_occurrence": due[-1].isoformat(),
        "next_occurrence": add_months(start, 4).isoformat(),
    }
    assert abs((datetime.fromisoformat(rule["created_at"]) - before).total_seconds()) < 30
    assert "Idempotent-Replayed" not in response.headers
    location = response.headers["Location"]
    assert location.endswith(f"/recurring-transactions/{rule['id']}")
    assert client.get(location, headers=headers).json() == rule

    made = made_by(client, headers, rule["id"])
    assert days_of(made) == due
    for item in made:
        assert (item["recurring_id"], item["account_id"], item["type"]) == (rule["id"], main["id"], "expense"), item
        assert (item["amount"], item["category"], item["description"]) == ("1200.00", "Rent", "Flat"), item
        assert client.get(f"/transactions/{item['id']}", headers=headers).json() == item
    # They are the user's transactions like any other, and the balance moved with them.
    assert sorted(item["id"] for item in walk(client, headers, "/transactions")) == sorted(i["id"] for i in made)
    assert get_account(client, headers, main["id"])["balance"] == "-4800.00"
    assert count_transactions(db, user_id) == 4
    # A budget counts them as any other expense, each in the month of its New York day.
    set_budget(client, headers, "Rent", "1000.00")
    for day in due:
        (item,) = client.get("/budgets", params={"month": f"{day:%Y-%m}"}, headers=headers).json()["items"]
        assert (item["spent"], item["remaining"], item["percent_used"]) == ("1200.00", "-200.00", "120.0"), day
    (row,) = _rules(db, user_id)
    assert (row["last_occurrence"], row["next_occurrence"]) == (due[-1], add_months(start, 4))


def test_a_rule_in_a_named_account_every_two_weeks(client):
    _, headers = user_with_headers(client)
    savings = open_account(client, headers, "Savings", opening_balance="100.00")
    now = today()
    start = now - timedelta(days=20)
    rule = new_rule(client, headers, type="income", amount="250.5", account_id=savings["id"], frequency="weekly",
                    interval=2, start_date=start.isoformat(), category="  Salary ", description=None)
    assert (rule["account_id"], rule["amount"], rule["interval"], rule["category"]) == (
        savings["id"], "250.50", 2, "Salary"
    )
    assert (rule["last_occurrence"], rule["next_occurrence"]) == (
        (start + timedelta(days=14)).isoformat(), (start + timedelta(days=28)).isoformat()
    )
    made = made_by(client, headers, rule["id"])
    assert days_of(made) == [start, start + timedelta(days=14)]
    assert {(item["account_id"], item["type"], item["amount"], item["description"]) for item in made} == {
        (savings["id"], "income", "250.50", None)
    }
    assert get_account(client, headers, savings["id"])["balance"] == "601.00"
    assert default_account(client, headers)["balance"] == "0.00"


def test_tenant2_rules_show_its_currency_and_start_each_day_in_berlin(client2):
    _, headers = user_with_headers(client2)
    rule = new_rule(client2, headers, start_date=(today() - timedelta(days=1)).isoformat())
    assert rule["currency"] == "EUR"
    made = made_by(client2, headers, rule["id"])
    assert len(made) >= 2
    for item in made:
        at = datetime.fromisoformat(item["occurred_at"]).astimezone(ZoneInfo("Europe/Berlin"))
        assert (at.hour, at.minute, at.second, item["currency"]) == (0, 0, 0, "EUR"), item


def test_a_monthly_rule_from_a_31st_falls_on_the_last_day_of_shorter_months(client):
    _, headers = user_with_headers(client)
    start = today() - timedelta(days=60)
    while start.day != 31:
        start -= timedelta(days=1)
    rule = new_rule(client, headers, frequency="monthly", start_date=start.isoformat())
    expected = []
    n = 0
    while add_months(start, n) <= today():
        expected.append(add_months(start, n))
        n += 1
    # At least one of the months after a 31st is shorter.
    assert any(day.day < 31 for day in expected), expected
    assert days_of(made_by(client, headers, rule["id"])) == expected
    assert rule["next_occurrence"] == add_months(start, n).isoformat()


def test_today_in_new_york_is_made_and_tomorrow_is_not(client):
    _, headers = user_with_headers(client)
    now = today()
    due = new_rule(client, headers, start_date=now.isoformat())
    later = new_rule(client, headers, start_date=(now + timedelta(days=1)).isoformat(), frequency="weekly")
    assert days_of(made_by(client, headers, due["id"])) == [now]
    assert (due["last_occurrence"], due["next_occurrence"]) == (now.isoformat(), (now + timedelta(days=1)).isoformat())
    assert made_by(client, headers, later["id"]) == []
    assert (later["last_occurrence"], later["next_occurrence"]) == (None, (now + timedelta(days=1)).isoformat())


def test_an_end_date_stops_the_rule_and_leaves_no_next_occurrence(client):
    _, headers = user_with_headers(client)
    now = today()
    rule = new_rule(client, headers, start_date=(now - timedelta(days=10)).isoformat(),
                    end_date=(now - timedelta(days=5)).isoformat())
    assert days_of(made_by(client, headers, rule["id"])) == [now - timedelta(days=n) for n in range(10, 4, -1)]
    assert (rule["last_occurrence"], rule["next_occurrence"]) == ((now - timedelta(days=5)).isoformat(), None)
    # end_date equal to start_date: one occurrence.
    once = new_rule(client, headers, start_date=now.isoformat(), end_date=now.isoformat(), frequency="yearly")
    assert days_of(made_by(client, headers, once["id"])) == [now]
    assert (once["end_date"], once["next_occurrence"]) == (now.isoformat(), None)


def test_start_date_may_be_366_days_back_but_not_367(client, db):
    user_id, headers = user_with_headers(client)
    now = today()
    oldest = now - timedelta(days=366)
    rule = new_rule(client, headers, frequency="yearly", start_date=oldest.isoformat())
    expected = [day for day in (oldest, add_months(oldest, 12)) if day <= now]
    assert days_of(made_by(client, headers, rule["id"])) == expected
    body = {"type": "expense", "amount": "1.00", "frequency": "yearly",
            "start_date": (now - timedelta(days=367)).isoformat()}
    validation_error(client.post("/recurring-transactions", json=body, headers=headers), "start_date")
    keyed = {**headers, "Idempotency-Key": "too-old"}
    validation_error(client.post("/recurring-transactions", json=body, headers=keyed), "start_date")
    assert [row["id"] for row in _rules(db, user_id)] == [rule["id"]]
    assert count_transactions(db, user_id) == len(expected)
    # The most occurrences at once: daily from 366 days back, every day once.
    daily = new_rule(client, headers, start_date=oldest.isoformat(), amount="0.01")
    assert days_of(made_by(client, headers, daily["id"])) == [oldest + timedelta(days=n) for n in range(367)]


def test_invalid_create_is_400_naming_the_field_and_stores_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    now = today()
    start = (now - timedelta(days=40)).isoformat()
    valid = {"type": "expense", "amount": "10.00", "frequency": "monthly", "start_date": start}
    cases = [
        ("frequency hourly", {**valid, "frequency": "hourly"}, "frequency"),
        ("frequency capitalised", {**valid, "frequency": "Monthly"}, "frequency"),
        ("frequency null", {**valid, "frequency": None}, "frequency"),
        ("no frequency", {k: v for k, v in valid.items() if k != "frequency"}, "frequency"),
        ("interval 0", {**valid, "interval": 0}, "interval"),
        ("interval 367", {**valid, "interval": 367}, "interval"),
        ("interval -1", {**valid, "interval": -1}, "interval"),
        ("interval 1.5", {**valid, "interval": 1.5}, "interval"),
        ("interval x", {**valid, "interval": "x"}, "interval"),
        ("interval null", {**valid, "interval": None}, "interval"),
        ("start 367 days back", {**valid, "start_date": (now - timedelta(days=367)).isoformat()}, "start_date"),
        ("start in 1899", {**valid, "start_date": "1899-12-31"}, "start_date"),
        ("start 30 February", {**valid, "start_date": "2026-02-30"}, "start_date"),
        ("start month 13", {**valid, "start_date": "2026-13-01"}, "start_date"),
        ("start a date-time", {**valid, "start_date": "2026-11-01T00:00:00Z"}, "start_date"),
        ("start words", {**valid, "start_date": "tomorrow"}, "start_date"),
        ("start null", {**valid, "start_date": None}, "start_date"),
        ("no start", {k: v for k, v in valid.items() if k != "start_date"}, "start_date"),
        ("end before start", {**valid, "end_date": (now - timedelta(days=41)).isoformat()}, "end_date"),
        ("end bad", {**valid, "end_date": "2026-02-29"}, "end_date"),
        ("end after 2999", {**valid, "end_date": "3000-01-01"}, "end_date"),
        ("type transfer", {**valid, "type": "transfer"}, "type"),
        ("no type", {k: v for k, v in valid.items() if k != "type"}, "type"),
        ("amount 0", {**valid, "amount": "0"}, "amount"),
        ("amount -1", {**valid, "amount": -1}, "amount"),
        ("amount 1.001", {**valid, "amount": "1.001"}, "amount"),
        ("amount abc", {**valid, "amount": "abc"}, "amount"),
        ("no amount", {k: v for k, v in valid.items() if k != "amount"}, "amount"),
        ("category of 65", {**valid, "category": "c" * 65}, "category"),
        ("description of 501", {**valid, "description": "d" * 501}, "description"),
        ("account_id 0", {**valid, "account_id": 0}, "account_id"),
        ("account_id x", {**valid, "account_id": "x"}, "account_id"),
        ("account_id missing", {**valid, "account_id": MISSING_ID}, "account_id"),
        ("currency", {**valid, "currency": "EUR"}, "currency"),
        ("next_occurrence", {**valid, "next_occurrence": now.isoformat()}, "next_occurrence"),
        ("user_id", {**valid, "user_id": 1}, "user_id"),
    ]
    for name, body, field in cases:
        with subtests.test(msg=name):
            validation_error(client.post("/recurring-transactions", json=body, headers=headers), field)
            keyed = {**headers, "Idempotency-Key": f"invalid-{name.replace(' ', '-')}"}
            validation_error(client.post("/recurring-transactions", json=body, headers=keyed), field)
    assert _rules(db, user_id) == []
    assert count_transactions(db, user_id) == 0
    assert client.get("/recurring-transactions", headers=headers).json() == {"items": []}
    # The limits themselves are fine.
    widest = new_rule(client, headers, interval=366, start_date=now.isoformat(), category="c" * 64,
                      description="d" * 500, amount="999999999999.99")
    assert (widest["interval"], widest["next_occurrence"]) == (366, (now + timedelta(days=366)).isoformat())


def test_an_account_of_another_user_is_400_naming_account_id_and_stores_nothing(client, db):
    victim_id, victim = user_with_headers(client)
    theirs = open_account(client, victim, "Theirs")
    their_main = default_account(client, victim)
    user_id, headers = user_with_headers(client)
    start = (today() - timedelta(days=3)).isoformat()
    answers = []
    for account_id in (theirs["id"], their_main["id"], MISSING_ID):
        body = {**RENT, "start_date": start, "account_id": account_id}
        answers.append(validation_error(client.post("/recurring-transactions", json=body, headers=headers),
                                        "account_id"))
    # Another user's account is refused exactly as one that does not exist.
    assert answers[0] == answers[1] == answers[2]
    assert _rules(db) == []
    assert count_transactions(db) == 0
    assert get_account(client, victim, theirs["id"])["balance"] == "0.00"
    # Nor may a change move a rule there.
    rule = new_rule(client, headers, start_date=today().isoformat())
    moved = client.patch(f"/recurring-transactions/{rule['id']}", json={"account_id": theirs["id"]}, headers=headers)
    validation_error(moved, "account_id")
    assert _get_rule(client, headers, rule["id"]) == rule
    assert count_transactions(db, victim_id) == 0 and count_transactions(db, user_id) == 1


def test_an_archived_account_is_409_account_archived_and_stores_nothing(client, db):
    user_id, headers = user_with_headers(client)
    old = open_account(client, headers, "Old")
    client.patch(f"/accounts/{old['id']}", json={"archived": True}, headers=headers)
    body = {**RENT, "start_date": (today() - timedelta(days=40)).isoformat(), "account_id": old["id"]}
    assert_error(client.post("/recurring-transactions", json=body, headers=headers), 409, "account_archived")
    keyed = {**headers, "Idempotency-Key": "archived-rule"}
    assert_error(client.post("/recurring-transactions", json=body, headers=keyed), 409, "account_archived")
    assert _rules(db, user_id) == []
    assert count_transactions(db, user_id) == 0
    # Unarchived, it takes the rule, and the refused key was not used up.
    client.patch(f"/accounts/{old['id']}", json={"archived": False}, headers=headers)
    response = client.post("/recurring-transactions", json=body, headers=keyed)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers, response.text
    assert len(made_by(client, headers, response.json()["id"])) == 2


# --- idempotency -------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_and_makes_no_second_rule_or_transactions(client, db):
    user_id, headers = user_with_headers(client)
    start, due = _three_months_back()
    body = {**RENT, "start_date": start.isoformat()}
    keyed = {**headers, "Idempotency-Key": "rent-rule-1"}
    first = client.post("/recurring-transactions", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(2):
        retry = client.post("/recurring-transactions", json=body, headers=keyed)
        assert retry.status_code == 201, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json() == first.json()
        assert retry.headers["Location"] == first.headers["Location"]
    assert len(_rules(db, user_id)) == 1
    assert count_transactions(db, user_id) == len(due)
    assert days_of(made_by(client, headers, first.json()["id"])) == due
    # The same key with another body is refused and makes nothing.
    other = client.post("/recurring-transactions", json={**body, "amount": "1200.01"}, headers=keyed)
    assert_error(other, 422, "idempotency_key_reused")
    # Without a key, the same body is a second rule with its own occurrences.
    second = client.post("/recurring-transactions", json=body, headers=headers)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert len(_rules(db, user_id)) == 2
    assert count_transactions(db, user_id) == 2 * len(due)


# --- list, read, other users -------------------------------------------------------------------


def test_the_list_holds_the_users_own_rules_oldest_first(client):
    _, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    mine = [new_rule(client, headers, amount=amount, frequency="weekly") for amount in ("3.00", "1.00", "2.00")]
    theirs = new_rule(client, other, amount="9.00")
    response = client.get("/recurring-transactions", headers=headers)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert set(listed) == {"items"}
    assert [item["id"] for item in listed["items"]] == [rule["id"] for rule in mine]
    for item in listed["items"]:
        assert item == _get_rule(client, headers, item["id"])
    theirs_listed = client.get("/recurring-transactions", headers=other).json()
    assert theirs_listed == {"items": [_get_rule(client, other, theirs["id"])]}
    assert_error(client.get("/recurring-transactions"), 401)


def test_another_users_rule_is_404_and_nothing_changes(client, db):
    victim_id, victim = user_with_headers(client)
    start, due = _three_months_back()
    theirs = new_rule(client, victim, **{**RENT, "start_date": start.isoformat()})
    their_made = made_by(client, victim, theirs["id"])
    _, headers = user_with_headers(client)
    mine = new_rule(client, headers, start_date=today().isoformat())
    path = f"/recurring-transactions/{theirs['id']}"
    for rule_id in (theirs["id"], MISSING_ID):
        path = f"/recurring-transactions/{rule_id}"
        assert_error(client.get(path, headers=headers), 404, "not_found")
        changes = {"amount": "1.00", "start_date": today().isoformat(), "end_date": None, "frequency": "daily"}
        assert_error(client.patch(path, json=changes, headers=headers), 404, "not_found")
        assert_error(client.delete(path, headers=headers), 404, "not_found")
    # Nor does the filter show another user's transactions.
    assert walk(client, headers, "/transactions", recurring_id=theirs["id"]) == []
    assert _get_rule(client, victim, theirs["id"]) == theirs
    assert made_by(client, victim, theirs["id"]) == their_made
    assert count_transactions(db, victim_id) == len(due)
    assert [item["id"] for item in client.get("/recurring-transactions", headers=headers).json()["items"]] == [
        mine["id"]
    ]


# --- changes -----------------------------------------------------------------------------------


def test_a_change_of_amount_applies_only_to_occurrences_made_later(client, db):
    _, headers = user_with_headers(client)
    now = today()
    start = now - timedelta(days=3)
    rule = new_rule(client, headers, amount="10.00", category="Coffee", start_date=start.isoformat(),
                    end_date=(now - timedelta(days=2)).isoformat())
    assert rule["next_occurrence"] is None
    changed = _patch_rule(client, headers, rule["id"], {"amount": "25.00", "category": "Tea"})
    assert (changed["amount"], changed["category"]) == ("25.00", "Tea")
    assert (changed["last_occurrence"], changed["next_occurrence"]) == ((now - timedelta(days=2)).isoformat(), None)
    assert changed["created_at"] == rule["created_at"]
    assert _get_rule(client, headers, rule["id"]) == changed
    made = made_by(client, headers, rule["id"])
    assert [(item["amount"], item["category"]) for item in made] == [("10.00", "Coffee")] * 2
    # The end lifted: the days after the last one made come with the new amount, at once.
    extended = _patch_rule(client, headers, rule["id"], {"end_date": None})
    assert (extended["last_occurrence"], extended["next_occurrence"]) == (
        now.isoformat(), (now + timedelta(days=1)).isoformat()
    )
    made = made_by(client, headers, rule["id"])
    assert days_of(made) == [start + timedelta(days=n) for n in range(4)]
    assert [(item["amount"], item["category"]) for item in made] == [("10.00", "Coffee")] * 2 + [("25.00", "Tea")] * 2
    assert default_account(client, headers)["balance"] == "-70.00"


def test_a_change_of_schedule_never_remakes_an_occurrence_already_made(client, db):
    user_id, headers = user_with_headers(client)
    now = today()
    rule = new_rule(client, headers, start_date=(now - timedelta(days=3)).isoformat())
    before = made_by(client, headers, rule["id"])
    assert days_of(before) == [now - timedelta(days=n) for n in (3, 2, 1, 0)]
    schedules = [
        {"start_date": (now - timedelta(days=10)).isoformat()},
        {"frequency": "weekly", "start_date": (now - timedelta(days=14)).isoformat()},
        {"frequency": "daily", "interval": 2, "start_date": (now - timedelta(days=3)).isoformat()},
        {"frequency": "monthly", "interval": 1, "start_date": now.isoformat()},
        {"frequency": "daily", "start_date": (now - timedelta(days=3)).isoformat(), "end_date": now.isoformat()},
    ]
    for change in schedules:
        changed = _patch_rule(client, headers, rule["id"], change)
        assert changed["last_occurrence"] == now.isoformat(), change
        assert made_by(client, headers, rule["id"]) == before, change
    assert count_transactions(db, user_id) == 4
    # The next occurrence follows the new schedule after the last one made.
    changed = _patch_rule(client, headers, rule["id"], {"frequency": "weekly", "end_date": None,
                                                        "start_date": (now - timedelta(days=7)).isoformat()})
    assert changed["next_occurrence"] == (now + timedelta(days=7)).isoformat()
    assert made_by(client, headers, rule["id"]) == before


def test_an_invalid_change_is_400_and_changes_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    now = today()
    rule = new_rule(client, headers, start_date=(now - timedelta(days=2)).isoformat())
    cases = [
        ("empty", {}, "_schema"),
        ("frequency", {"frequency": "hourly"}, "frequency"),
        ("interval", {"interval": 0}, "interval"),
        ("start 367 days back", {"start_date": (now - timedelta(days=367)).isoformat()}, "start_date"),
        ("end before start", {"end_date": (now - timedelta(days=3)).isoformat()}, "end_date"),
        ("start after end", {"start_date": now.isoformat(), "end_date": (now - timedelta(days=1)).isoformat()},
         "end_date"),
        ("amount", {"amount": "0"}, "amount"),
        ("type", {"type": "transfer"}, "type"),
        ("last_occurrence", {"last_occurrence": None}, "last_occurrence"),
    ]
    for name, body, field in cases:
        with subtests.test(msg=name):
            response = client.patch(f"/recurring-transactions/{rule['id']}", json=body, headers=headers)
            validation_error(response, field)
    assert _get_rule(client, headers, rule["id"]) == rule
    assert count_transactions(db, user_id) == 3


def test_a_deleted_occurrence_is_not_made_again_by_a_change(client, db):
    user_id, headers = user_with_headers(client)
    now = today()
    rule = new_rule(client, headers, start_date=(now - timedelta(days=2)).isoformat())
    first, middle, last = made_by(client, headers, rule["id"])
    assert client.delete(f"/transactions/{middle['id']}", headers=headers).status_code == 204
    _patch_rule(client, headers, rule["id"], {"description": "changed"})
    _patch_rule(client, headers, rule["id"], {"start_date": (now - timedelta(days=2)).isoformat()})
    assert [item["id"] for item in made_by(client, headers, rule["id"])] == [first["id"], last["id"]]
    assert count_transactions(db, user_id) == 2


# --- delete ------------------------------------------------------------------------------------


def test_delete_is_204_stops_the_rule_and_leaves_its_transactions_as_ordinary_ones(client, db):
    user_id, headers = user_with_headers(client)
    start, due = _three_months_back()
    rule = new_rule(client, headers, **{**RENT, "start_date": start.isoformat()})
    made = made_by(client, headers, rule["id"])
    response = client.delete(f"/recurring-transactions/{rule['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    for method in ("GET", "PATCH", "DELETE"):
        body = {"amount": "1.00"} if method == "PATCH" else None
        answer = client.request(method, f"/recurring-transactions/{rule['id']}", json=body, headers=headers)
        assert_error(answer, 404, "not_found")
    assert client.get("/recurring-transactions", headers=headers).json() == {"items": []}
    assert _rules(db, user_id) == []
    # Its transactions stay exactly as they were, still carrying its id.
    assert made_by(client, headers, rule["id"]) == made
    assert days_of(made) == due
    # The user may change or delete them like any other.
    changed = client.patch(f"/transactions/{made[0]['id']}", json={"amount": "1100.00"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["amount"], changed.json()["recurring_id"]) == ("1100.00", rule["id"])
    assert client.delete(f"/transactions/{made[1]['id']}", headers=headers).status_code == 204
    left = [item["id"] for item in made_by(client, headers, rule["id"])]
    assert left == [made[0]["id"], *[item["id"] for item in made[2:]]]
    assert default_account(client, headers)["balance"] == f"-{1100 + 1200 * (len(due) - 2)}.00"


def test_an_account_a_rule_uses_cannot_be_deleted_until_the_rule_goes(client, db):
    _, headers = user_with_headers(client)
    bills = open_account(client, headers, "Bills")
    # A rule that has made nothing yet still holds its account.
    rule = new_rule(client, headers, account_id=bills["id"], start_date=(today() + timedelta(days=5)).isoformat())
    assert made_by(client, headers, rule["id"]) == []
    assert_error(client.delete(f"/accounts/{bills['id']}", headers=headers), 409, "account_in_use")
    assert get_account(client, headers, bills["id"])["name"] == "Bills"
    assert client.delete(f"/recurring-transactions/{rule['id']}", headers=headers).status_code == 204
    assert client.delete(f"/accounts/{bills['id']}", headers=headers).status_code == 204


# --- recurring_id on transactions --------------------------------------------------------------


def test_transactions_not_made_by_a_rule_carry_a_null_recurring_id_and_the_filter_leaves_them_out(client):
    _, headers = user_with_headers(client)
    plain = create(client, headers, amount="3.00")
    assert plain["recurring_id"] is None
    assert client.get(f"/transactions/{plain['id']}", headers=headers).json()["recurring_id"] is None
    one = new_rule(client, headers, start_date=(today() - timedelta(days=1)).isoformat())
    two = new_rule(client, headers, start_date=today().isoformat(), frequency="weekly")
    everything = walk(client, headers, "/transactions")
    assert sorted((item["recurring_id"] or 0) for item in everything) == sorted([0, one["id"], one["id"], two["id"]])
    assert [item["recurring_id"] for item in made_by(client, headers, one["id"])] == [one["id"]] * 2
    assert [item["recurring_id"] for item in made_by(client, headers, two["id"])] == [two["id"]]
    # The filter combines with the others.
    assert walk(client, headers, "/transactions", recurring_id=one["id"], type="income") == []
    assert len(walk(client, headers, "/transactions", recurring_id=one["id"], min_amount="10.00")) == 2


def test_an_invalid_recurring_id_filter_is_400(client):
    _, headers = user_with_headers(client)
    for value in ("abc", "0", "-1", "1.5", "1e3", "9223372036854775808"):
        response = client.get("/transactions", params={"recurring_id": value}, headers=headers)
        validation_error(response, "recurring_id")


# --- DELETE /me --------------------------------------------------------------------------------


def test_delete_me_removes_the_users_budgets_and_rules(client, db):
    user = register(client)
    token = login(client, user["username"])
    headers = bearer(token)
    set_budget(client, headers, "Food", "100.00")
    new_rule(client, headers, start_date=(today() - timedelta(days=2)).isoformat())
    new_rule(client, headers, account_id=open_account(client, headers, "Bills")["id"], frequency="monthly")
    other_id, other = user_with_headers(client)
    set_budget(client, other, "Food", "50.00")
    kept = new_rule(client, other)
    response = client.request("DELETE", "/me", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 204, response.text
    for table in ("budgets", "recurring_transactions", "transactions", "accounts"):
        query = sql.SQL("SELECT count(*) AS n FROM {} WHERE user_id = %s").format(sql.Identifier(table))
        left = db.execute(query, (user["id"],)).fetchone()["n"]
        assert left == 0, table
    assert [row["id"] for row in _rules(db)] == [kept["id"]]
    assert [row["user_id"] for row in db.execute("SELECT user_id FROM budgets").fetchall()] == [other_id]
    assert count_transactions(db, other_id) == 1


# --- python -m service run-scheduled -----------------------------------------------------------


def _made_days(db, rule_id: int) -> list[date]:
    rows = db.execute(
        "SELECT (occurred_at AT TIME ZONE 'America/New_York') AS local FROM transactions"
        " WHERE recurring_id = %s ORDER BY occurred_at", (rule_id,)
    ).fetchall()
    for row in rows:
        assert row["local"].time() == datetime.min.time(), row
    return [row["local"].date() for row in rows]


def test_run_scheduled_catches_up_after_days_of_downtime_and_makes_each_occurrence_once(client, db, tenant_envs):
    user_id, headers = user_with_headers(client)
    now = today()
    daily = new_rule(client, headers, amount="2.50")
    weekly = new_rule(client, headers, frequency="weekly", amount="7.00")
    ended = new_rule(client, headers, end_date=(now + timedelta(days=1)).isoformat(), amount="1.00")
    # As if they had been created 15 days ago and nothing had run since.
    move_back(db, [daily["id"], weekly["id"], ended["id"]], 15)
    assert _made_days(db, daily["id"]) == [now - timedelta(days=15)]
    result = run_scheduler(tenant_envs["tenant1"])
    assert result.returncode == 0, result.stderr
    assert _made_days(db, daily["id"]) == [now - timedelta(days=n) for n in range(15, -1, -1)]
    assert _made_days(db, weekly["id"]) == [now - timedelta(days=n) for n in (15, 8, 1)]
    # Its end (14 days ago, once moved back) stops it.
    assert _made_days(db, ended["id"]) == [now - timedelta(days=15), now - timedelta(days=14)]
    assert (_get_rule(client, headers, daily["id"])["last_occurrence"],
            _get_rule(client, headers, daily["id"])["next_occurrence"]) == (
        now.isoformat(), (now + timedelta(days=1)).isoformat()
    )
    assert _get_rule(client, headers, weekly["id"])["next_occurrence"] == (now + timedelta(days=6)).isoformat()
    assert _get_rule(client, headers, ended["id"])["next_occurrence"] is None
    # Over HTTP they are the rules' transactions, at the start of each New York day.
    assert days_of(made_by(client, headers, daily["id"])) == _made_days(db, daily["id"])
    assert default_account(client, headers)["balance"] == f"-{Decimal('2.50') * 16 + 7 * 3 + 2:.2f}"
    # Run again: nothing is due, nothing is made.
    again = run_scheduler(tenant_envs["tenant1"])
    assert again.returncode == 0, again.stderr
    assert count_transactions(db, user_id) == 16 + 3 + 2


def test_two_runs_at_once_make_each_occurrence_exactly_once(client, db, tenant_envs):
    rules = []
    users = [user_with_headers(client) for _ in range(2)]
    for _, headers in users:
        rules += [new_rule(client, headers, amount=f"{n + 1}.00") for n in range(25)]
    ids = [rule["id"] for rule in rules]
    move_back(db, ids, 6)
    runs = [scheduler(tenant_envs["tenant1"]) for _ in range(2)]
    for run in runs:
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stderr
    pairs = db.execute(
        "SELECT recurring_id, occurred_at, count(*) AS n FROM transactions GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    assert [row for row in pairs if row["n"] != 1] == []
    assert len(pairs) == 50 * 7
    assert count_transactions(db) == 50 * 7
    expected = [today() - timedelta(days=n) for n in range(6, -1, -1)]
    for rule_id in ids:
        assert _made_days(db, rule_id) == expected, rule_id
    for row in _rules(db):
        assert (row["last_occurrence"], row["next_occurrence"]) == (today(), today() + timedelta(days=1))
    for _, headers in users:
        assert default_account(client, headers)["balance"] == f"-{sum(range(1, 26)) * 7}.00"


def _wait_for(check, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_run_scheduled_every_second_keeps_running_and_stops_with_0_on_sigterm(client, db, tenant_envs):
    _, headers = user_with_headers(client)
    first = new_rule(client, headers)
    move_back(db, [first["id"]], 2)
    process = scheduler(tenant_envs["tenant1"], "--every", "1")
    try:
        assert _wait_for(lambda: len(_made_days(db, first["id"])) == 3), process.poll()
        # A later run takes up what became due since.
        second = new_rule(client, headers, frequency="weekly")
        move_back(db, [second["id"]], 14)
        assert _wait_for(lambda: len(_made_days(db, second["id"])) == 3), process.poll()
        assert process.poll() is None
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert time.monotonic() - stopping < 5
    assert _made_days(db, first["id"]) == [today() - timedelta(days=n) for n in (2, 1, 0)]
    assert _made_days(db, second["id"]) == [today() - timedelta(days=n) for n in (14, 7, 0)]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_scheduled_with_a_bad_database_url_exits_non_zero_without_printing_the_password(tenant_envs):
    env = tenant_envs["tenant1"]
    url = urlsplit(env["DATABASE_URL"])
    password = url.password
    assert password
    made_up = "Wr0ng-pa55word-f0r-the-test"

    def with_parts(secret: str, port: int | None = None, path: str | None = None) -> str:
        netloc = f"{url.username}:{secret}@{url.hostname}:{port or url.port}"
        return urlunsplit((url.scheme, netloc, path or url.path, url.query, url.fragment))

    bad = [
        with_parts(made_up),
        with_parts(password, path="/no_such_database"),
        with_parts(password, port=_closed_port()),
        with_parts(password).replace(f":{url.port}/", ":notaport/"),
    ]
    runs = [scheduler({**env, "DATABASE_URL": database_url}) for database_url in bad]
    for database_url, run in zip(bad, runs, strict=True):
        stdout, stderr = run.communicate(timeout=60)
        assert run.returncode != 0, (database_url, stdout, stderr)
        output = stdout + stderr
        assert output.strip(), database_url
        for secret in (password, made_up):
            assert secret not in output, output
