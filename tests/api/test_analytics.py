"""GET /analytics: totals over named periods and from/to ranges in the tenant's zone, groupings,
validation, isolation between users, and consistency with writes. Also GET /categories."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from service.periods import resolve_period
from tests.utils import assert_error, auth_headers, create

NEW_YORK = ZoneInfo("America/New_York")  # tenant1
BERLIN = ZoneInfo("Europe/Berlin")  # tenant2
FEBRUARY_2026 = {"from": "2026-02-01", "to": "2026-02-28"}


def analytics(client: httpx.Client, headers: dict, **params) -> dict:
    response = client.get("/analytics", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def february(client: httpx.Client, headers: dict, **params) -> dict:
    return analytics(client, headers, **FEBRUARY_2026, **params)


def local(day: date, tz: ZoneInfo, at: time = time(12)) -> str:
    """An ISO instant with offset for a wall-clock time of a day in a zone."""
    return datetime.combine(day, at, tzinfo=tz).isoformat()


def totals(body: dict) -> tuple[str, str, str, int]:
    return body["total_income"], body["total_expense"], body["net_balance"], body["count"]


def assert_groups_add_up(body: dict) -> None:
    groups = body["groups"]
    assert sum(Decimal(g["total_income"]) for g in groups) == Decimal(body["total_income"])
    assert sum(Decimal(g["total_expense"]) for g in groups) == Decimal(body["total_expense"])
    assert sum(Decimal(g["net_balance"]) for g in groups) == Decimal(body["net_balance"])
    assert sum(g["count"] for g in groups) == body["count"]
    for group in groups:
        net = Decimal(group["total_income"]) - Decimal(group["total_expense"])
        assert Decimal(group["net_balance"]) == net


def by_key(body: dict) -> dict:
    return {g["key"]: totals(g) for g in body["groups"]}


# --- ranges and totals ------------------------------------------------------------------------


def test_explicit_range_counts_rows_inside_and_not_just_outside_new_york_days(client):
    headers = auth_headers(client)
    # Local midnight in New York (EST, -05:00) starts and ends February.
    create(client, headers, type="income", amount="100.00", occurred_at="2026-02-01T05:00:00Z")
    create(client, headers, type="expense", amount="30.25", occurred_at="2026-03-01T04:59:59Z")
    create(client, headers, type="expense", amount="7.00", occurred_at="2026-02-01T04:59:59Z")
    create(client, headers, type="income", amount="50.00", occurred_at="2026-03-01T05:00:00Z")

    body = february(client, headers)

    assert totals(body) == ("100.00", "30.25", "69.75", 2)
    assert body["period"] == "custom"
    assert (body["from"], body["to"]) == ("2026-02-01", "2026-02-28")
    assert body["currency"] == "USD"
    assert body["group_by"] is None
    assert "groups" not in body


def test_response_carries_every_documented_field_as_the_right_type(client):
    headers = auth_headers(client)
    create(client, headers, type="income", amount="1.5", occurred_at="2026-02-10T12:00:00Z")
    body = february(client, headers)
    assert set(body) == {
        "total_income", "total_expense", "net_balance", "count",
        "currency", "period", "from", "to", "group_by",
    }
    assert totals(body) == ("1.50", "0.00", "1.50", 1)
    assert isinstance(body["count"], int)


def test_empty_period_totals_are_zero_strings(client):
    headers = auth_headers(client)
    assert totals(february(client, headers)) == ("0.00", "0.00", "0.00", 0)


def test_net_balance_is_negative_when_expense_exceeds_income(client):
    headers = auth_headers(client)
    create(client, headers, type="income", amount="5.00", occurred_at="2026-02-10T12:00:00Z")
    create(client, headers, type="expense", amount="10.00", occurred_at="2026-02-11T12:00:00Z")
    assert totals(february(client, headers)) == ("5.00", "10.00", "-5.00", 2)


def test_totals_are_exact_decimal_sums(client):
    headers = auth_headers(client)
    for _ in range(3):
        create(client, headers, type="income", amount="0.10", occurred_at="2026-02-10T12:00:00Z")
    create(client, headers, type="expense", amount="999999999999.99", occurred_at="2026-02-12T12:00:00Z")
    assert totals(february(client, headers)) == ("0.30", "999999999999.99", "-999999999999.69", 4)


def test_transaction_at_3am_utc_on_march_first_is_february_in_new_york(client):
    headers = auth_headers(client)
    create(client, headers, type="expense", amount="12.00", occurred_at="2026-03-01T03:00:00Z")

    assert totals(february(client, headers)) == ("0.00", "12.00", "-12.00", 1)
    march_first = analytics(client, headers, **{"from": "2026-03-01", "to": "2026-03-01"})
    assert march_first["count"] == 0
    feb_28 = analytics(client, headers, **{"from": "2026-02-28", "to": "2026-02-28"})
    assert feb_28["count"] == 1


def test_late_february_28_utc_is_already_march_first_in_berlin(client2):
    headers = auth_headers(client2)
    create(client2, headers, type="income", amount="8.00", occurred_at="2026-02-28T23:30:00Z")

    march_first = analytics(client2, headers, **{"from": "2026-03-01", "to": "2026-03-01"})
    assert totals(march_first) == ("8.00", "0.00", "8.00", 1)
    assert march_first["currency"] == "EUR"
    assert february(client2, headers)["count"] == 0


def test_single_day_range_on_new_york_spring_forward_day_covers_its_23_hours(client):
    headers = auth_headers(client)
    create(client, headers, amount="1.00", occurred_at="2026-03-08T04:59:59Z")  # Mar 7, 23:59:59 EST
    create(client, headers, amount="2.00", occurred_at="2026-03-08T05:00:00Z")  # Mar 8, 00:00 EST
    create(client, headers, amount="4.00", occurred_at="2026-03-09T03:59:59Z")  # Mar 8, 23:59:59 EDT
    create(client, headers, amount="8.00", occurred_at="2026-03-09T04:00:00Z")  # Mar 9, 00:00 EDT
    body = analytics(client, headers, **{"from": "2026-03-08", "to": "2026-03-08"})
    assert totals(body) == ("0.00", "6.00", "-6.00", 2)


@pytest.mark.parametrize("period", ["current_month", "last_month", "current_year", "last_year"])
def test_named_period_resolves_in_new_york_and_counts_its_edges(client, period):
    headers = auth_headers(client)
    first, last = resolve_period(period, datetime.now(NEW_YORK).date())
    create(client, headers, type="income", amount="100.00", occurred_at=local(first, NEW_YORK, time.min))
    create(client, headers, type="expense", amount="40.00", occurred_at=local(last, NEW_YORK, time.max))
    create(client, headers, type="income", amount="1.00",
           occurred_at=local(first - timedelta(days=1), NEW_YORK, time.max))
    create(client, headers, type="expense", amount="2.00",
           occurred_at=local(last + timedelta(days=1), NEW_YORK, time.min))

    body = analytics(client, headers, period=period)

    assert body["period"] == period
    assert (body["from"], body["to"]) == (first.isoformat(), last.isoformat())
    assert totals(body) == ("100.00", "40.00", "60.00", 2)


@pytest.mark.parametrize("period", ["current_month", "last_month", "current_year", "last_year"])
def test_named_period_resolves_in_berlin_for_tenant2(client2, period):
    headers = auth_headers(client2)
    first, last = resolve_period(period, datetime.now(BERLIN).date())
    create(client2, headers, type="expense", amount="3.00", occurred_at=local(first, BERLIN, time.min))
    create(client2, headers, type="expense", amount="5.00",
           occurred_at=local(first - timedelta(days=1), BERLIN, time.max))

    body = analytics(client2, headers, period=period)

    assert (body["period"], body["currency"]) == (period, "EUR")
    assert (body["from"], body["to"]) == (first.isoformat(), last.isoformat())
    assert totals(body) == ("0.00", "3.00", "-3.00", 1)


def test_named_periods_resolve_to_calendar_shapes(client):
    headers = auth_headers(client)
    today = datetime.now(NEW_YORK).date()
    month = analytics(client, headers, period="current_month")
    previous = analytics(client, headers, period="last_month")
    year = analytics(client, headers, period="current_year")
    last_year = analytics(client, headers, period="last_year")
    assert date.fromisoformat(month["from"]) == today.replace(day=1)
    assert date.fromisoformat(previous["to"]) == today.replace(day=1) - timedelta(days=1)
    assert date.fromisoformat(previous["from"]).day == 1
    assert (year["from"], year["to"]) == (f"{today.year}-01-01", f"{today.year}-12-31")
    assert (last_year["from"], last_year["to"]) == (f"{today.year - 1}-01-01", f"{today.year - 1}-12-31")


def test_no_period_means_current_month(client):
    headers = auth_headers(client)
    create(client, headers, amount="9.99")  # occurred now
    first, last = resolve_period("current_month", datetime.now(NEW_YORK).date())
    body = analytics(client, headers)
    assert body["period"] == "current_month"
    assert (body["from"], body["to"]) == (first.isoformat(), last.isoformat())
    assert totals(body) == ("0.00", "9.99", "-9.99", 1)


def test_group_by_alone_defaults_to_current_month(client):
    headers = auth_headers(client)
    create(client, headers, amount="2.00", category="food")
    body = analytics(client, headers, group_by="category")
    assert body["period"] == "current_month"
    assert by_key(body) == {"food": ("0.00", "2.00", "-2.00", 1)}


def test_only_the_callers_transactions_are_counted(client):
    alice, bob = auth_headers(client), auth_headers(client)
    create(client, alice, type="income", amount="10.00", occurred_at="2026-02-10T12:00:00Z")
    create(client, bob, type="income", amount="500.00", occurred_at="2026-02-10T12:00:00Z")
    create(client, bob, type="expense", amount="70.00", occurred_at="2026-02-11T12:00:00Z", category="x")

    assert totals(february(client, alice)) == ("10.00", "0.00", "10.00", 1)
    assert totals(february(client, bob)) == ("500.00", "70.00", "430.00", 2)
    assert by_key(february(client, alice, group_by="category")) == {None: ("10.00", "0.00", "10.00", 1)}


# --- groupings --------------------------------------------------------------------------------


def test_group_by_category_groups_null_category_under_null_key(client):
    headers = auth_headers(client)
    create(client, headers, type="expense", amount="10.00", category="food", occurred_at="2026-02-02T12:00:00Z")
    create(client, headers, type="expense", amount="5.50", category="food", occurred_at="2026-02-03T12:00:00Z")
    create(client, headers, type="income", amount="2000.00", category="salary", occurred_at="2026-02-04T12:00:00Z")
    create(client, headers, type="expense", amount="3.00", occurred_at="2026-02-05T12:00:00Z")
    create(client, headers, type="income", amount="1.00", occurred_at="2026-02-06T12:00:00Z")
    create(client, headers, type="expense", amount="99.00", category="food", occurred_at="2026-03-02T12:00:00Z")

    body = february(client, headers, group_by="category")

    assert body["group_by"] == "category"
    assert totals(body) == ("2001.00", "18.50", "1982.50", 5)
    assert by_key(body) == {
        "food": ("0.00", "15.50", "-15.50", 2),
        "salary": ("2000.00", "0.00", "2000.00", 1),
        None: ("1.00", "3.00", "-2.00", 2),
    }
    assert len(body["groups"]) == 3
    assert_groups_add_up(body)


def test_group_by_month_uses_new_york_months(client):
    headers = auth_headers(client)
    create(client, headers, type="income", amount="10.00", occurred_at="2026-01-01T05:00:00Z")  # Jan 1 00:00
    create(client, headers, type="expense", amount="1.00", occurred_at="2026-02-01T04:59:59Z")  # Jan 31
    create(client, headers, type="expense", amount="2.00", occurred_at="2026-03-01T03:00:00Z")  # Feb 28
    create(client, headers, type="expense", amount="4.00", occurred_at="2026-03-31T12:00:00Z")
    create(client, headers, type="expense", amount="8.00", occurred_at="2026-04-01T04:00:00Z")  # Apr 1 EDT

    body = analytics(client, headers, group_by="month", **{"from": "2026-01-01", "to": "2026-03-31"})

    assert by_key(body) == {
        "2026-01": ("10.00", "1.00", "9.00", 2),
        "2026-02": ("0.00", "2.00", "-2.00", 1),
        "2026-03": ("0.00", "4.00", "-4.00", 1),
    }
    assert [g["key"] for g in body["groups"]] == ["2026-01", "2026-02", "2026-03"]
    assert totals(body) == ("10.00", "7.00", "3.00", 4)
    assert_groups_add_up(body)


def test_group_by_month_uses_berlin_months(client2):
    headers = auth_headers(client2)
    create(client2, headers, type="expense", amount="1.00", occurred_at="2026-02-28T23:30:00Z")  # Mar 1
    create(client2, headers, type="expense", amount="2.00", occurred_at="2026-02-28T22:59:59Z")  # Feb 28
    create(client2, headers, type="income", amount="4.00", occurred_at="2025-12-31T23:00:00Z")  # Jan 1

    body = analytics(client2, headers, group_by="month", **{"from": "2026-01-01", "to": "2026-03-31"})

    assert by_key(body) == {
        "2026-01": ("4.00", "0.00", "4.00", 1),
        "2026-02": ("0.00", "2.00", "-2.00", 1),
        "2026-03": ("0.00", "1.00", "-1.00", 1),
    }
    assert_groups_add_up(body)


def test_group_by_day_uses_new_york_days_across_dst_change(client):
    headers = auth_headers(client)
    create(client, headers, amount="1.00", occurred_at="2026-03-08T04:59:59Z")  # Mar 7 23:59:59 EST
    create(client, headers, amount="2.00", occurred_at="2026-03-08T05:00:00Z")  # Mar 8 00:00 EST
    create(client, headers, amount="4.00", occurred_at="2026-03-09T03:59:59Z")  # Mar 8 23:59:59 EDT
    create(client, headers, type="income", amount="8.00", occurred_at="2026-03-09T04:00:00Z")  # Mar 9

    body = analytics(client, headers, group_by="day", **{"from": "2026-03-01", "to": "2026-03-31"})

    assert by_key(body) == {
        "2026-03-07": ("0.00", "1.00", "-1.00", 1),
        "2026-03-08": ("0.00", "6.00", "-6.00", 2),
        "2026-03-09": ("8.00", "0.00", "8.00", 1),
    }
    assert [g["key"] for g in body["groups"]] == ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert_groups_add_up(body)


def test_group_by_day_uses_berlin_days(client2):
    headers = auth_headers(client2)
    create(client2, headers, amount="1.00", occurred_at="2026-02-28T23:30:00Z")  # Mar 1 00:30 CET
    create(client2, headers, amount="2.00", occurred_at="2026-03-01T12:00:00Z")
    create(client2, headers, amount="4.00", occurred_at="2026-02-28T22:00:00Z")  # Feb 28 23:00 CET

    body = analytics(client2, headers, group_by="day", **{"from": "2026-02-01", "to": "2026-03-31"})

    assert by_key(body) == {
        "2026-02-28": ("0.00", "4.00", "-4.00", 1),
        "2026-03-01": ("0.00", "3.00", "-3.00", 2),
    }
    assert_groups_add_up(body)


@pytest.mark.parametrize("group_by", ["category", "month", "day"])
def test_grouping_an_empty_period_gives_no_groups_and_zero_totals(client, group_by):
    headers = auth_headers(client)
    body = february(client, headers, group_by=group_by)
    assert body["groups"] == []
    assert totals(body) == ("0.00", "0.00", "0.00", 0)
    assert body["group_by"] == group_by


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "fortnight"}, "period"),
        ({"period": "last_month", "from": "2026-01-01", "to": "2026-01-31"}, "period"),
        ({"period": "last_month", "from": "2026-01-01"}, "period"),
        ({"from": "2026-01-01"}, "to"),
        ({"to": "2026-01-31"}, "from"),
        ({"from": "2026-02-02", "to": "2026-02-01"}, "from"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
        ({"from": "2026-02-01", "to": "2026/03/01"}, "to"),
        ({"from": "yesterday", "to": "2026-03-01"}, "from"),
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "Category"}, "group_by"),
        ({"currency": "EUR"}, "currency"),
        ({"period": "current_month", "limit": "5"}, "limit"),
    ],
)
def test_invalid_analytics_query_is_a_400_envelope(client, params, field):
    headers = auth_headers(client)
    response = client.get("/analytics", params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]
    assert field in error["fields"]


def test_single_day_range_with_from_equal_to_is_valid(client):
    headers = auth_headers(client)
    body = analytics(client, headers, **{"from": "2026-02-28", "to": "2026-02-28"})
    assert (body["from"], body["to"], body["period"]) == ("2026-02-28", "2026-02-28", "custom")


# --- consistency with writes ------------------------------------------------------------------


def test_analytics_follow_create_patch_and_delete_immediately(client):
    headers = auth_headers(client)
    a = create(client, headers, type="income", amount="100.00", occurred_at="2026-02-10T12:00:00Z")
    b = create(client, headers, type="expense", amount="40.00", occurred_at="2026-02-11T12:00:00Z")
    assert totals(february(client, headers)) == ("100.00", "40.00", "60.00", 2)

    def patch(transaction: dict, **changes) -> None:
        response = client.patch(f"/transactions/{transaction['id']}", json=changes, headers=headers)
        assert response.status_code == 200, response.text

    patch(b, amount="45.50")
    assert totals(february(client, headers)) == ("100.00", "45.50", "54.50", 2)

    patch(a, type="expense")
    assert totals(february(client, headers)) == ("0.00", "145.50", "-145.50", 2)

    patch(a, occurred_at="2026-03-01T05:00:00Z")  # March 1 in New York: out of February
    assert totals(february(client, headers)) == ("0.00", "45.50", "-45.50", 1)

    patch(a, occurred_at="2026-03-01T04:00:00Z")  # Feb 28, 23:00 in New York: back in
    assert totals(february(client, headers)) == ("0.00", "145.50", "-145.50", 2)

    response = client.delete(f"/transactions/{b['id']}", headers=headers)
    assert response.status_code == 204
    assert totals(february(client, headers)) == ("0.00", "100.00", "-100.00", 1)


def test_analytics_include_imported_rows_immediately(client):
    headers = auth_headers(client)
    create(client, headers, type="income", amount="1.00", occurred_at="2026-02-01T12:00:00Z")
    csv_text = (
        "occurred_at,type,amount,category\n"
        "2026-02-14T18:00:00-05:00,expense,20.00,gifts\n"
        "2026-03-01T03:00:00Z,income,3.00,\n"
        "2026-03-01T05:00:00Z,income,1000.00,\n"
    )
    response = client.post(
        "/transactions/import", content=csv_text.encode(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"imported": 3}

    body = february(client, headers, group_by="category")
    assert totals(body) == ("4.00", "20.00", "-16.00", 3)
    assert by_key(body) == {"gifts": ("0.00", "20.00", "-20.00", 1), None: ("4.00", "0.00", "4.00", 2)}


def test_import_without_occurred_at_lands_in_current_month(client):
    headers = auth_headers(client)
    response = client.post(
        "/transactions/import", content=b"type,amount\nincome,12.34\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    assert totals(analytics(client, headers, period="current_month")) == ("12.34", "0.00", "12.34", 1)


# --- categories -------------------------------------------------------------------------------


def test_categories_lists_own_categories_with_counts_sorted_by_name(client):
    alice, bob = auth_headers(client), auth_headers(client)
    for category in ("travel", "food", "rent", "food", "travel", "food"):
        create(client, alice, category=category)
    create(client, alice)  # no category
    create(client, alice, category="   ")  # blank means none
    create(client, bob, category="zoo")
    create(client, bob, category="food")

    response = client.get("/categories", headers=alice)

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"name": "food", "count": 3},
            {"name": "rent", "count": 1},
            {"name": "travel", "count": 2},
        ],
        "next_cursor": None,
    }
    assert client.get("/categories", headers=bob).json() == {
        "items": [{"name": "food", "count": 1}, {"name": "zoo", "count": 1}],
        "next_cursor": None,
    }


def test_categories_of_a_user_without_transactions_is_empty(client):
    headers = auth_headers(client)
    create(client, headers)  # only a null category
    response = client.get("/categories", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


def test_categories_follow_updates_and_deletes(client):
    headers = auth_headers(client)
    a = create(client, headers, category="food")
    create(client, headers, category="food")
    assert client.patch(f"/transactions/{a['id']}", json={"category": "fun"}, headers=headers).status_code == 200
    assert client.get("/categories", headers=headers).json()["items"] == [
        {"name": "food", "count": 1}, {"name": "fun", "count": 1},
    ]
    assert client.delete(f"/transactions/{a['id']}", headers=headers).status_code == 204
    assert client.get("/categories", headers=headers).json()["items"] == [{"name": "food", "count": 1}]


def test_categories_are_trimmed_and_case_sensitive(client):
    headers = auth_headers(client)
    create(client, headers, category="  food ")
    create(client, headers, category="food")
    create(client, headers, category="Food")
    items = client.get("/categories", headers=headers).json()["items"]
    assert sorted((i["name"], i["count"]) for i in items) == [("Food", 1), ("food", 2)]


def test_categories_come_in_pages_that_join_up(client):
    headers = auth_headers(client)
    names = ["a", "B", "c", "d", "e"]
    for name in names:
        create(client, headers, category=name)
    create(client, headers, category="c")
    everything = client.get("/categories", headers=headers).json()["items"]
    seen, cursor = [], None
    for _ in range(len(names)):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/categories", params=params, headers=headers).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert sorted(item["name"] for item in seen) == sorted(names)
    assert {item["name"]: item["count"] for item in seen}["c"] == 2


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"cursor": "not-a-cursor"}, {"cursor": "e30"}])
def test_categories_refuse_a_bad_limit_or_cursor(client, params):
    response = client.get("/categories", params=params, headers=auth_headers(client))
    assert_error(response, 400, "validation_error")
