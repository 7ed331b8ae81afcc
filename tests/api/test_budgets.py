"""Monthly budgets per category over HTTP (issue 14): create, validation, one per category, the
month's figures (spent over every account in the tenant's calendar month, remaining, percent_used
rounded half up), the default month, one budget's figures, changes, other users' budgets, and
figures that follow the transactions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.utils import assert_error, create, user_with_headers
from tests.utils.accounts import MISSING_ID, open_account, validation_error
from tests.utils.budgets import (
    BUDGET_FIELDS,
    BUDGET_ITEM_FIELDS,
    BUDGET_LIST_FIELDS,
    NEW_YORK,
    budgets_of,
    expense_sum,
    set_budget,
    spend,
    spent_by_category,
)


def _stored(db, user_id: int) -> list[dict]:
    return db.execute("SELECT * FROM budgets WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _figures(item: dict) -> tuple:
    return item["category"], item["amount"], item["spent"], item["remaining"], item["percent_used"]


def _get(client, headers, budget_id: int, **params) -> dict:
    response = client.get(f"/budgets/{budget_id}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# --- create ------------------------------------------------------------------------------------


def test_create_is_201_with_every_field_a_location_and_a_trimmed_category(client, db):
    user_id, headers = user_with_headers(client)
    before = datetime.now(UTC)
    response = client.post("/budgets", json={"category": "  Groceries ", "amount": "300.5"}, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == BUDGET_FIELDS
    assert isinstance(created["id"], int)
    assert (created["category"], created["amount"], created["currency"]) == ("Groceries", "300.50", "USD")
    for name in ("created_at", "updated_at"):
        stamp = datetime.fromisoformat(created[name])
        assert stamp.tzinfo is not None and abs((stamp - before).total_seconds()) < 30, created
    location = response.headers["Location"]
    assert location.endswith(f"/budgets/{created['id']}")
    read = client.get(location, params={"month": "2026-03"}, headers=headers)
    assert read.status_code == 200, read.text
    assert read.json() == {
        **created, "spent": "0.00", "remaining": "300.50", "percent_used": "0.0", "month": "2026-03"
    }
    (row,) = _stored(db, user_id)
    assert (row["id"], row["category"], row["amount"]) == (created["id"], "Groceries", Decimal("300.50"))
    # A JSON number is exact too.
    assert set_budget(client, headers, "Rent", 1200)["amount"] == "1200.00"
    assert set_budget(client, headers, "Coffee", 0.01)["amount"] == "0.01"


def test_tenant2_budgets_show_its_currency(client2):
    _, headers = user_with_headers(client2)
    assert set_budget(client2, headers, "Lebensmittel", "250.00")["currency"] == "EUR"
    assert budgets_of(client2, headers, "2026-03")["currency"] == "EUR"


def test_invalid_create_is_400_naming_the_field_and_stores_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    valid = {"category": "Food", "amount": "100.00"}
    cases = [
        ("zero", {**valid, "amount": 0}, "amount"),
        ("zero text", {**valid, "amount": "0.00"}, "amount"),
        ("negative", {**valid, "amount": -1}, "amount"),
        ("negative text", {**valid, "amount": "-1.00"}, "amount"),
        ("three places", {**valid, "amount": "1.001"}, "amount"),
        ("three places number", {**valid, "amount": 1.001}, "amount"),
        ("not a number", {**valid, "amount": "abc"}, "amount"),
        ("exponent", {**valid, "amount": "1e2"}, "amount"),
        ("too large", {**valid, "amount": "1000000000000.00"}, "amount"),
        ("amount null", {**valid, "amount": None}, "amount"),
        ("no amount", {"category": "Food"}, "amount"),
        ("no category", {"amount": "100.00"}, "category"),
        ("empty category", {**valid, "category": ""}, "category"),
        ("blank category", {**valid, "category": "   "}, "category"),
        ("category null", {**valid, "category": None}, "category"),
        ("category a number", {**valid, "category": 5}, "category"),
        ("category of 65", {**valid, "category": "c" * 65}, "category"),
        ("NUL in category", {**valid, "category": "Fo\x00od"}, "category"),
        ("unknown field", {**valid, "spent": "1.00"}, "spent"),
        ("user_id", {**valid, "user_id": 1}, "user_id"),
    ]
    for name, body, field in cases:
        with subtests.test(msg=name):
            validation_error(client.post("/budgets", json=body, headers=headers), field)
    not_json = {**headers, "Content-Type": "application/json"}
    assert_error(client.post("/budgets", content=b"{not json", headers=not_json), 400)
    assert _stored(db, user_id) == []
    assert budgets_of(client, headers)["items"] == []
    # At the limits, it is accepted.
    assert set_budget(client, headers, "c" * 64, "999999999999.99")["amount"] == "999999999999.99"


def test_one_budget_per_category_per_user_is_409_budget_exists(client, db):
    user_id, headers = user_with_headers(client)
    food = set_budget(client, headers, "Food", "100.00")
    for category in ("Food", "  Food  "):
        response = client.post("/budgets", json={"category": category, "amount": "5.00"}, headers=headers)
        assert_error(response, 409, "budget_exists")
    # Categories match exactly, as the category filter of GET /transactions does.
    lower = set_budget(client, headers, "food", "20.00")
    assert len(_stored(db, user_id)) == 2
    # Nor may a change take another budget's category.
    for category in ("Food", " Food"):
        response = client.patch(f"/budgets/{lower['id']}", json={"category": category}, headers=headers)
        assert_error(response, 409, "budget_exists")
    assert _get(client, headers, lower["id"])["category"] == "food"
    assert [(row["category"], row["amount"]) for row in _stored(db, user_id)] == [
        ("Food", Decimal("100.00")), ("food", Decimal("20.00"))
    ]
    # A change to its own category is no conflict.
    same = client.patch(f"/budgets/{food['id']}", json={"category": "Food", "amount": "110"}, headers=headers)
    assert same.status_code == 200, same.text
    assert same.json()["amount"] == "110.00"
    # Another user has their own Food budget.
    _, other = user_with_headers(client)
    assert set_budget(client, other, "Food", "1.00")["category"] == "Food"


# --- the month's figures -----------------------------------------------------------------------


def test_month_figures_are_exact_ordered_by_category_and_percent_used_rounds_half_up(client):
    _, headers = user_with_headers(client)
    limits = {
        "Rent": "1200.00", "Groceries": "30.00", "Books": "30.00", "Transport": "100.00",
        "Coffee": "100.00", "Fun": "50.00", "Gifts": "10.00",
    }
    for category, amount in limits.items():
        set_budget(client, headers, category, amount)
    spending = [
        ("Groceries", "4.00"), ("Groceries", "6.00"), ("Books", "20.00"), ("Transport", "0.05"),
        ("Coffee", "0.25"), ("Rent", "1200.00"), ("Fun", "75.00"),
    ]
    for category, amount in spending:
        spend(client, headers, amount, category, "2026-03-10T15:00:00Z")
    status = budgets_of(client, headers, "2026-03")
    assert set(status) == BUDGET_LIST_FIELDS
    assert (status["month"], status["currency"]) == ("2026-03", "USD")
    for item in status["items"]:
        assert set(item) == BUDGET_ITEM_FIELDS and item["currency"] == "USD", item
    assert [_figures(item) for item in status["items"]] == [
        ("Books", "30.00", "20.00", "10.00", "66.7"),
        ("Coffee", "100.00", "0.25", "99.75", "0.3"),
        ("Fun", "50.00", "75.00", "-25.00", "150.0"),
        ("Gifts", "10.00", "0.00", "10.00", "0.0"),
        ("Groceries", "30.00", "10.00", "20.00", "33.3"),
        ("Rent", "1200.00", "1200.00", "0.00", "100.0"),
        ("Transport", "100.00", "0.05", "99.95", "0.1"),
    ]
    assert status["total_budgeted"] == "1520.00"
    assert status["total_spent"] == "1305.30"


def test_no_budgets_is_an_empty_month_with_zero_totals(client):
    _, headers = user_with_headers(client)
    spend(client, headers, "5.00", "Food", "2026-03-10T15:00:00Z")
    assert budgets_of(client, headers, "2026-03") == {
        "month": "2026-03", "currency": "USD", "items": [], "total_budgeted": "0.00", "total_spent": "0.00"
    }


def test_spent_is_the_expenses_of_the_calendar_month_in_the_tenants_time_zone(client):
    _, headers = user_with_headers(client)
    set_budget(client, headers, "Food", "100.00")
    set_budget(client, headers, "Rent", "1000.00")
    # 22:00 on 31 January in New York.
    spend(client, headers, "10.00", "Food", "2026-02-01T03:00:00Z")
    # Midnight on 1 February in New York.
    spend(client, headers, "20.00", "Food", "2026-02-01T05:00:00Z")
    # 23:59:59 on 31 December 2025 in New York, and midnight on 1 January 2026.
    spend(client, headers, "4.00", "Food", "2026-01-01T04:59:59Z")
    spend(client, headers, "7.00", "Food", "2026-01-01T05:00:00Z")
    spend(client, headers, "1.50", "Food", "2026-01-15T09:00:00-05:00")
    # Midnight on 1 April in New York (summer time): March's last instant is 03:59:59Z.
    spend(client, headers, "3.00", "Food", "2026-04-01T03:59:59Z")
    spend(client, headers, "8.00", "Food", "2026-04-01T04:00:00Z")
    # Income never counts, nor other categories or none.
    create(client, headers, type="income", amount="500.00", category="Food", occurred_at="2026-01-20T12:00:00Z")
    spend(client, headers, "9.00", "Fun", "2026-01-20T12:00:00Z")
    spend(client, headers, "9.00", None, "2026-01-20T12:00:00Z")
    spend(client, headers, "900.00", "Rent", "2026-03-02T12:00:00Z")
    expected = {
        "2025-12": {"Food": "4.00", "Rent": "0.00"},
        "2026-01": {"Food": "18.50", "Rent": "0.00"},
        "2026-02": {"Food": "20.00", "Rent": "0.00"},
        "2026-03": {"Food": "3.00", "Rent": "900.00"},
        "2026-04": {"Food": "8.00", "Rent": "0.00"},
        "2026-05": {"Food": "0.00", "Rent": "0.00"},
        "2025-01": {"Food": "0.00", "Rent": "0.00"},
    }
    for month, spent in expected.items():
        assert spent_by_category(client, headers, month) == spent, month
    # The same sums as GET /transactions?category= lists for the month's New York instants.
    for month in ("2025-12", "2026-01", "2026-02", "2026-03", "2026-04"):
        assert f"{expense_sum(client, headers, 'Food', month):.2f}" == expected[month]["Food"], month
    january = budgets_of(client, headers, "2026-01")
    assert (january["total_budgeted"], january["total_spent"]) == ("1100.00", "18.50")
    food = january["items"][0]
    assert (food["remaining"], food["percent_used"]) == ("81.50", "18.5")


def test_spent_is_over_every_account_of_the_user(client):
    _, headers = user_with_headers(client)
    savings = open_account(client, headers, "Savings", opening_balance="1000.00")
    cash = open_account(client, headers, "Cash", "cash")
    set_budget(client, headers, "Food", "100.00")
    spend(client, headers, "10.00", "Food", "2026-03-05T12:00:00Z")
    spend(client, headers, "20.00", "Food", "2026-03-06T12:00:00Z", account_id=savings["id"])
    spend(client, headers, "5.25", "Food", "2026-03-07T12:00:00Z", account_id=cash["id"])
    # An account archived since still holds the month's spending.
    client.patch(f"/accounts/{cash['id']}", json={"archived": True}, headers=headers)
    (item,) = budgets_of(client, headers, "2026-03")["items"]
    assert _figures(item) == ("Food", "100.00", "35.25", "64.75", "35.3")


def test_categories_match_as_the_transactions_filter_matches(client):
    _, headers = user_with_headers(client)
    set_budget(client, headers, "Food", "100.00")
    set_budget(client, headers, "food", "10.00")
    set_budget(client, headers, " Eating out ", "50.00")
    spend(client, headers, "10.00", "Food", "2026-03-05T12:00:00Z")
    spend(client, headers, "2.00", "  Food ", "2026-03-05T12:00:00Z")
    spend(client, headers, "3.00", "food", "2026-03-05T12:00:00Z")
    spend(client, headers, "4.00", "FOOD", "2026-03-05T12:00:00Z")
    spend(client, headers, "1.00", "Foods", "2026-03-05T12:00:00Z")
    spend(client, headers, "6.00", "Eating out", "2026-03-05T12:00:00Z")
    spend(client, headers, "0.50", "Eating  out", "2026-03-05T12:00:00Z")
    spent = spent_by_category(client, headers, "2026-03")
    assert spent == {"Eating out": "6.00", "Food": "12.00", "food": "3.00"}
    for category in spent:
        assert f"{expense_sum(client, headers, category, '2026-03'):.2f}" == spent[category], category


def test_another_users_spending_never_counts(client):
    _, headers = user_with_headers(client)
    _, other = user_with_headers(client)
    set_budget(client, headers, "Food", "100.00")
    set_budget(client, other, "Food", "40.00")
    spend(client, headers, "10.00", "Food", "2026-03-05T12:00:00Z")
    spend(client, other, "30.00", "Food", "2026-03-05T12:00:00Z")
    spend(client, other, "70.00", "Fun", "2026-03-05T12:00:00Z")
    mine = budgets_of(client, headers, "2026-03")
    theirs = budgets_of(client, other, "2026-03")
    assert [_figures(item) for item in mine["items"]] == [("Food", "100.00", "10.00", "90.00", "10.0")]
    assert [_figures(item) for item in theirs["items"]] == [("Food", "40.00", "30.00", "10.00", "75.0")]
    assert (mine["total_spent"], theirs["total_spent"]) == ("10.00", "30.00")


def test_an_invalid_month_is_400_on_the_list_and_the_item(client):
    _, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "100.00")
    for month in ("2026-13", "2026-00", "2026-1", "26-01", "abc", "1899-12", "3000-01", "2026-01-01", "2026/01"):
        for path in ("/budgets", f"/budgets/{budget['id']}"):
            response = client.get(path, params={"month": month}, headers=headers)
            assert_error(response, 400)
            assert "month" in response.json()["error"].get("fields", {}), (month, path, response.text)
    # The first and last months of the supported span are fine.
    assert budgets_of(client, headers, "1900-01")["month"] == "1900-01"
    assert budgets_of(client, headers, "2999-12")["month"] == "2999-12"


def test_the_default_month_is_the_current_month_in_new_york(client):
    _, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "40.00")
    # Now, by default: this month in New York.
    create(client, headers, amount="10.00", category="Food")
    months = {datetime.now(NEW_YORK).strftime("%Y-%m")}
    status = budgets_of(client, headers)
    item = _get(client, headers, budget["id"])
    months.add(datetime.now(NEW_YORK).strftime("%Y-%m"))
    assert status["month"] in months and item["month"] == status["month"]
    assert [_figures(item) for item in status["items"]] == [("Food", "40.00", "10.00", "30.00", "25.0")]
    assert status == budgets_of(client, headers, status["month"])
    # An empty parameter counts as absent, as forms send it.
    empty = client.get("/budgets", params={"month": ""}, headers=headers)
    assert empty.status_code == 200 and empty.json() == status, empty.text
    assert (item["spent"], item["percent_used"]) == ("10.00", "25.0")


def test_one_budget_has_the_list_items_figures_plus_its_month(client):
    _, headers = user_with_headers(client)
    ids = [set_budget(client, headers, category, "30.00")["id"] for category in ("Rent", "Food", "Fun")]
    spend(client, headers, "10.00", "Food", "2026-03-05T12:00:00Z")
    spend(client, headers, "45.00", "Fun", "2026-03-05T12:00:00Z")
    spend(client, headers, "20.00", "Food", "2026-04-05T12:00:00Z")
    for month in ("2026-03", "2026-04", "2026-05"):
        listed = {item["id"]: item for item in budgets_of(client, headers, month)["items"]}
        assert set(listed) == set(ids)
        for budget_id in ids:
            assert _get(client, headers, budget_id, month=month) == {**listed[budget_id], "month": month}
    assert _figures(_get(client, headers, ids[1], month="2026-04")) == ("Food", "30.00", "20.00", "10.00", "66.7")
    assert _figures(_get(client, headers, ids[2], month="2026-03")) == ("Fun", "30.00", "45.00", "-15.00", "150.0")


def test_a_budgets_amount_applies_to_every_month_and_a_change_to_all_of_them(client):
    _, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "40.00")
    spend(client, headers, "10.00", "Food", "2025-11-05T12:00:00Z")
    spend(client, headers, "50.00", "Food", "2026-02-05T12:00:00Z")
    expected = {"2025-11": ("10.00", "30.00", "25.0"), "2026-02": ("50.00", "-10.00", "125.0"),
                "2030-07": ("0.00", "40.00", "0.0")}
    for month, (spent, remaining, percent) in expected.items():
        figures = _figures(_get(client, headers, budget["id"], month=month))
        assert figures == ("Food", "40.00", spent, remaining, percent), month
    changed = client.patch(f"/budgets/{budget['id']}", json={"amount": "80"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert _figures(_get(client, headers, budget["id"], month="2025-11")) == ("Food", "80.00", "10.00", "70.00", "12.5")
    assert _figures(_get(client, headers, budget["id"], month="2026-02")) == ("Food", "80.00", "50.00", "30.00", "62.5")


# --- change and delete -------------------------------------------------------------------------


def test_patch_changes_category_and_amount_and_the_figures_follow(client, db):
    user_id, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "40.00")
    spend(client, headers, "10.00", "Food", "2026-03-05T12:00:00Z")
    spend(client, headers, "30.00", "Eating out", "2026-03-05T12:00:00Z")
    response = client.patch(f"/budgets/{budget['id']}", json={"category": " Eating out ", "amount": "60.00"},
                            headers=headers)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert set(changed) == BUDGET_FIELDS
    assert (changed["id"], changed["category"], changed["amount"]) == (budget["id"], "Eating out", "60.00")
    assert changed["created_at"] == budget["created_at"]
    assert datetime.fromisoformat(changed["updated_at"]) >= datetime.fromisoformat(budget["updated_at"])
    assert _figures(_get(client, headers, budget["id"], month="2026-03")) == (
        "Eating out", "60.00", "30.00", "30.00", "50.0"
    )
    (row,) = _stored(db, user_id)
    assert (row["category"], row["amount"]) == ("Eating out", Decimal("60.00"))
    # Food is free again.
    assert set_budget(client, headers, "Food", "5.00")["category"] == "Food"


def test_an_invalid_patch_is_400_and_changes_nothing(client, db, subtests):
    user_id, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "40.00")
    cases = [
        ("empty", {}, "_schema"),
        ("zero", {"amount": "0"}, "amount"),
        ("negative", {"amount": "-5"}, "amount"),
        ("three places", {"amount": "1.005"}, "amount"),
        ("not a number", {"amount": "abc"}, "amount"),
        ("amount null", {"amount": None}, "amount"),
        ("blank category", {"category": "  "}, "category"),
        ("category null", {"category": None}, "category"),
        ("category of 65", {"category": "c" * 65}, "category"),
        ("unknown", {"currency": "EUR"}, "currency"),
    ]
    for name, body, field in cases:
        with subtests.test(msg=name):
            validation_error(client.patch(f"/budgets/{budget['id']}", json=body, headers=headers), field)
    assert _get(client, headers, budget["id"])["amount"] == "40.00"
    assert [(row["category"], row["amount"]) for row in _stored(db, user_id)] == [("Food", Decimal("40.00"))]


def test_delete_is_204_then_404_and_the_category_is_free_again(client, db):
    user_id, headers = user_with_headers(client)
    food = set_budget(client, headers, "Food", "40.00")
    fun = set_budget(client, headers, "Fun", "20.00")
    response = client.delete(f"/budgets/{food['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    for method in ("GET", "PATCH", "DELETE"):
        body = {"amount": "1.00"} if method == "PATCH" else None
        assert_error(client.request(method, f"/budgets/{food['id']}", json=body, headers=headers), 404, "not_found")
    assert [item["id"] for item in budgets_of(client, headers, "2026-03")["items"]] == [fun["id"]]
    assert [row["id"] for row in _stored(db, user_id)] == [fun["id"]]
    assert set_budget(client, headers, "Food", "41.00")["id"] != food["id"]


def test_another_users_budget_is_404_for_get_patch_and_delete_and_stays_as_it_was(client, db):
    victim_id, victim = user_with_headers(client)
    theirs = set_budget(client, victim, "Food", "40.00")
    spend(client, victim, "10.00", "Food", "2026-03-05T12:00:00Z")
    before = _get(client, victim, theirs["id"], month="2026-03")
    _, headers = user_with_headers(client)
    set_budget(client, headers, "Fun", "5.00")
    for budget_id in (theirs["id"], MISSING_ID):
        answers = [
            client.get(f"/budgets/{budget_id}", headers=headers),
            client.get(f"/budgets/{budget_id}", params={"month": "2026-03"}, headers=headers),
            client.patch(f"/budgets/{budget_id}", json={"amount": "1.00", "category": "Mine"}, headers=headers),
            client.delete(f"/budgets/{budget_id}", headers=headers),
        ]
        for answer in answers:
            assert_error(answer, 404, "not_found")
    assert _get(client, victim, theirs["id"], month="2026-03") == before
    assert [(row["category"], row["amount"]) for row in _stored(db, victim_id)] == [("Food", Decimal("40.00"))]
    assert [item["category"] for item in budgets_of(client, headers)["items"]] == ["Fun"]


def test_budgets_need_a_token(client):
    _, headers = user_with_headers(client)
    budget = set_budget(client, headers, "Food", "40.00")
    for method, path in (("GET", "/budgets"), ("POST", "/budgets"), ("GET", f"/budgets/{budget['id']}"),
                         ("PATCH", f"/budgets/{budget['id']}"), ("DELETE", f"/budgets/{budget['id']}")):
        body = {"category": "X", "amount": "1"} if method in ("POST", "PATCH") else None
        assert_error(client.request(method, path, json=body), 401)
    assert _get(client, headers, budget["id"])["amount"] == "40.00"


# --- figures that follow the transactions ------------------------------------------------------


def test_figures_follow_changes_and_deletions_of_transactions(client):
    _, headers = user_with_headers(client)
    set_budget(client, headers, "Food", "40.00")
    set_budget(client, headers, "Fun", "20.00")
    spend(client, headers, "5.00", "Food", "2026-03-01T12:00:00Z")
    item = spend(client, headers, "10.00", "Food", "2026-03-05T12:00:00Z")
    path = f"/transactions/{item['id']}"

    def march() -> dict:
        return spent_by_category(client, headers, "2026-03")

    assert march() == {"Food": "15.00", "Fun": "0.00"}
    steps = [
        ({"amount": "12.34"}, {"Food": "17.34", "Fun": "0.00"}),
        ({"category": "Fun"}, {"Food": "5.00", "Fun": "12.34"}),
        ({"type": "income"}, {"Food": "5.00", "Fun": "0.00"}),
        ({"type": "expense", "category": "Food", "occurred_at": "2026-04-01T03:00:00Z"},
         {"Food": "17.34", "Fun": "0.00"}),
        # Midnight on 1 April in New York: April.
        ({"occurred_at": "2026-04-01T04:00:00Z"}, {"Food": "5.00", "Fun": "0.00"}),
        ({"category": None, "occurred_at": "2026-03-20T12:00:00Z"}, {"Food": "5.00", "Fun": "0.00"}),
        ({"category": "Food"}, {"Food": "17.34", "Fun": "0.00"}),
    ]
    for change, expected in steps:
        response = client.patch(path, json=change, headers=headers)
        assert response.status_code == 200, response.text
        assert march() == expected, change
    assert spent_by_category(client, headers, "2026-04") == {"Food": "0.00", "Fun": "0.00"}
    assert client.delete(path, headers=headers).status_code == 204
    assert march() == {"Food": "5.00", "Fun": "0.00"}
    status = budgets_of(client, headers, "2026-03")
    assert (status["total_budgeted"], status["total_spent"]) == ("60.00", "5.00")
