"""Unit tests of the marshmallow schemas and fields in service/schemas.py (no server, no database)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from marshmallow import ValidationError

from service.records import Position
from service.schemas import (
    Cursor,
    DateOrDateTime,
    ExponentNumber,
    Money,
    Totals,
    TransactionCreate,
    TransactionListQuery,
    TransactionPublic,
    TransactionUpdate,
    encode_cursor,
    parse_json_number,
    transaction_cursor,
)


def _messages(field, value) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        field.deserialize(value)
    messages = caught.value.messages
    assert isinstance(messages, list) and messages
    return messages


def _raw_cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


# --- parse_json_number -------------------------------------------------------------------------


def test_json_numbers_with_a_fraction_become_exact_decimals():
    parsed = json.loads('{"a": 0.1, "b": 123456789012.34, "c": 10}', parse_float=parse_json_number)
    assert parsed["a"] == Decimal("0.1") and isinstance(parsed["a"], Decimal)
    assert parsed["b"] == Decimal("123456789012.34")
    assert parsed["c"] == 10 and isinstance(parsed["c"], int)


@pytest.mark.parametrize("text", ["1e3", "1E3", "1.5e-2", "2e+2"])
def test_json_numbers_with_an_exponent_are_kept_as_text(text):
    parsed = parse_json_number(text)
    assert isinstance(parsed, ExponentNumber)
    assert parsed.text == text


# --- Money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.1"), Decimal("0.10")),
        (Decimal("10000.0"), Decimal("10000.00")),
        (Decimal("1.10"), Decimal("1.10")),
        (5, Decimal("5.00")),
        ("12.5", Decimal("12.50")),
        ("7", Decimal("7.00")),
        ("0.01", Decimal("0.01")),
        ("999999999999.99", Decimal("999999999999.99")),
        (Decimal("999999999999.99"), Decimal("999999999999.99")),
    ],
)
def test_money_accepts_numbers_and_decimal_strings_exactly(value, expected):
    amount = Money().deserialize(value)
    assert isinstance(amount, Decimal)
    assert amount == expected
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "greater than 0"),
        ("0", "greater than 0"),
        (Decimal("0.00"), "greater than 0"),
        (-1, "greater than 0"),
        (Decimal("-0.01"), "greater than 0"),
        (Decimal("1000000000000.00"), "999999999999.99"),
        ("999999999999.991", None),
        (10**15, "999999999999.99"),
        (Decimal("1.005"), "2 decimal places"),
        ("1.005", "2 decimal places"),
        ("0.001", "2 decimal places"),
        ("abc", "decimal string"),
        ("", "decimal string"),
        ("-5.00", None),
        ("+5.00", "decimal string"),
        ("1,000.00", "decimal string"),
        (" 5.00", "decimal string"),
        ("0x10", "decimal string"),
        ("NaN", "decimal string"),
        ("Infinity", "decimal string"),
        (Decimal("NaN"), "decimal string"),
        (Decimal("Infinity"), "decimal string"),
        (True, "decimal string"),
        (False, "decimal string"),
        ([1], "decimal string"),
        ({"amount": 1}, "decimal string"),
        (ExponentNumber("1e3"), "exponent"),
        ("1e3", "exponent"),
        ("1E3", "exponent"),
    ],
)
def test_money_refuses_what_is_not_a_positive_amount_with_two_places(value, message):
    messages = _messages(Money(), value)
    if message is not None:
        assert any(message in text for text in messages), messages


def test_money_refuses_null():
    _messages(Money(), None)


def test_money_allowing_zero_accepts_zero_but_not_less():
    assert Money(allow_zero=True).deserialize("0") == Decimal("0.00")
    assert Money(allow_zero=True).deserialize(0) == Decimal("0.00")
    assert Money(allow_zero=True).deserialize("999999999999.99") == Decimal("999999999999.99")
    assert any("between 0" in text for text in _messages(Money(allow_zero=True), -1))
    _messages(Money(allow_zero=True), "1000000000000")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("5"), "5.00"),
        (Decimal("0.1"), "0.10"),
        (Decimal("12.50"), "12.50"),
        (Decimal("-12.5"), "-12.50"),
        (Decimal("999999999999.99"), "999999999999.99"),
        (Decimal("2999999999999.97"), "2999999999999.97"),
        (Decimal("0"), "0.00"),
        (Decimal("30.000"), "30.00"),
    ],
)
def test_money_is_shown_as_a_string_with_two_places(value, shown):
    assert Money().serialize("amount", {"amount": value}) == shown


def test_money_shows_null_as_null():
    assert Money().serialize("amount", {"amount": None}) is None


def test_totals_are_shown_as_exact_strings():
    shown = Totals().dump(
        {
            "total_income": sum([Decimal("0.10")] * 300),
            "total_expense": Decimal("30.1"),
            "net_balance": Decimal("-0.10"),
            "count": 301,
        }
    )
    assert shown == {"total_income": "30.00", "total_expense": "30.10", "net_balance": "-0.10", "count": 301}


# --- Cursor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["occurred_at", "-occurred_at"])
def test_cursor_round_trips_an_instant(sort):
    moment = datetime(2026, 1, 15, 12, 30, 45, 123456, tzinfo=UTC)
    text = transaction_cursor(Position(sort, moment, 42))
    assert "=" not in text
    assert Cursor().deserialize(text) == Position(sort, moment, 42)


def test_cursor_round_trips_a_whole_second_in_another_offset():
    moment = datetime(2026, 1, 15, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    decoded = Cursor().deserialize(transaction_cursor(Position("occurred_at", moment, 1)))
    assert decoded.key == moment
    assert decoded.key.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("sort", ["amount", "-amount"])
def test_cursor_round_trips_an_exact_amount(sort):
    text = transaction_cursor(Position(sort, Decimal("12.50"), 7))
    decoded = Cursor().deserialize(text)
    assert decoded == Position(sort, Decimal("12.50"), 7)
    assert str(decoded.key) == "12.50"


def test_cursor_is_url_safe():
    # Enough varied bytes that standard base64 would produce + and /.
    text = encode_cursor({"s": "amount", "k": Decimal("999999999999.99"), "id": 2**62 - 1, "pad": "??>>~~"})
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("not a cursor", id="spaces"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("é", id="non-ascii"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(), id="not-utf8"),
        pytest.param(base64.urlsafe_b64encode(b"{not json").decode(), id="not-json"),
        pytest.param(_raw_cursor([1, 2, 3]), id="list"),
        pytest.param(_raw_cursor("text"), id="string"),
        pytest.param(_raw_cursor(5), id="number"),
        pytest.param(_raw_cursor(None), id="null"),
        pytest.param(_raw_cursor({}), id="empty-object"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00"}), id="no-id"),
        pytest.param(_raw_cursor({"k": "2026-01-15T12:00:00+00:00", "id": 1}), id="no-sort"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "id": 1}), id="no-key"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00", "id": "1"}), id="id-text"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00", "id": 1.5}), id="id-float"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "k": "2026-01-15T12:00:00+00:00", "id": True}), id="id-bool"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "k": "soon", "id": 1}), id="bad-instant"),
        pytest.param(_raw_cursor({"s": "-occurred_at", "k": 1767225600, "id": 1}), id="instant-number"),
        pytest.param(_raw_cursor({"s": "amount", "k": "lots", "id": 1}), id="bad-amount"),
        pytest.param(_raw_cursor({"s": "amount", "k": 12.5, "id": 1}), id="amount-number"),
        pytest.param(_raw_cursor({"s": "id", "k": "1", "id": 1}), id="unknown-sort"),
        pytest.param(_raw_cursor({"s": ["amount"], "k": "1", "id": 1}), id="sort-list"),
    ],
)
def test_cursor_refuses_anything_but_an_encoded_position(text):
    messages = _messages(Cursor(), text)
    assert any("cursor" in message for message in messages), messages


def test_cursor_refuses_a_non_string():
    _messages(Cursor(), 123)


# --- DateOrDateTime ----------------------------------------------------------------------------


def test_date_or_date_time_reads_a_calendar_date():
    value = DateOrDateTime().deserialize("2026-01-10")
    assert value == date(2026, 1, 10)
    assert not isinstance(value, datetime)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-01-10T12:00:00+01:00", datetime(2026, 1, 10, 11, 0, tzinfo=UTC)),
        ("2026-01-10T12:00:00Z", datetime(2026, 1, 10, 12, 0, tzinfo=UTC)),
        ("2026-01-10T12:00:00.5-05:00", datetime(2026, 1, 10, 17, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_date_or_date_time_reads_an_instant_with_an_offset(text, instant):
    value = DateOrDateTime().deserialize(text)
    assert isinstance(value, datetime) and value.tzinfo is not None
    assert value == instant


@pytest.mark.parametrize(
    "value",
    ["2026-01-10T12:00:00", "2026-13-01", "2026-02-30", "20260110", "yesterday", "", 20260110, None],
)
def test_date_or_date_time_refuses_naive_or_invalid_values(value):
    _messages(DateOrDateTime(), value)


# --- TransactionCreate / TransactionUpdate -----------------------------------------------------


def test_create_schema_loads_a_full_transaction():
    loaded = TransactionCreate().load(
        {
            "type": "income",
            "amount": Decimal("10000.0"),
            "description": "Salary",
            "category": "  work ",
            "occurred_at": "2026-01-15T09:30:00-05:00",
        }
    )
    assert loaded == {
        "type": "income",
        "amount": Decimal("10000.00"),
        "description": "Salary",
        "category": "work",
        "occurred_at": datetime(2026, 1, 15, 14, 30, tzinfo=UTC),
    }


def test_create_schema_leaves_out_what_was_not_given():
    assert TransactionCreate().load({"type": "expense", "amount": "1"}) == {
        "type": "expense", "amount": Decimal("1.00")
    }


@pytest.mark.parametrize("blank", ["", "   ", "\t", None])
def test_blank_category_loads_as_none(blank):
    loaded = TransactionCreate().load({"type": "expense", "amount": "1", "category": blank})
    assert loaded["category"] is None


def test_category_length_is_measured_after_trimming():
    loaded = TransactionCreate().load({"type": "expense", "amount": "1", "category": f"  {'c' * 64}  "})
    assert loaded["category"] == "c" * 64


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"amount": "1"}, "type"),
        ({"type": "expense"}, "amount"),
        ({"type": "refund", "amount": "1"}, "type"),
        ({"type": None, "amount": "1"}, "type"),
        ({"type": "expense", "amount": "1", "description": "x" * 501}, "description"),
        ({"type": "expense", "amount": "1", "category": "c" * 65}, "category"),
        ({"type": "expense", "amount": "1", "description": "a\x00b"}, "description"),
        ({"type": "expense", "amount": "1", "category": "a\x00b"}, "category"),
        ({"type": "expense", "amount": "1", "description": "\ud800"}, "description"),
        ({"type": "expense", "amount": "1", "occurred_at": "2026-01-15T10:00:00"}, "occurred_at"),
        ({"type": "expense", "amount": "1", "occurred_at": None}, "occurred_at"),
        ({"type": "expense", "amount": "1", "id": 1}, "id"),
        ({"type": "expense", "amount": "1", "user_id": 1}, "user_id"),
        ({"type": "expense", "amount": "1", "created_at": "2026-01-15T10:00:00+00:00"}, "created_at"),
        ({"type": "expense", "amount": "1", "foo": "bar"}, "foo"),
    ],
)
def test_create_schema_refuses_invalid_fields(data, field):
    with pytest.raises(ValidationError) as caught:
        TransactionCreate().load(data)
    assert field in caught.value.messages


def test_update_schema_makes_every_field_optional():
    assert TransactionUpdate().load({"amount": 5}) == {"amount": Decimal("5.00")}
    assert TransactionUpdate().load({"description": None, "category": None}) == {
        "description": None, "category": None
    }


def test_update_schema_refuses_an_empty_change():
    with pytest.raises(ValidationError) as caught:
        TransactionUpdate().load({})
    assert "_schema" in caught.value.messages


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": None}, "type"),
        ({"amount": None}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"occurred_at": None}, "occurred_at"),
        ({"id": 3}, "id"),
    ],
)
def test_update_schema_validates_like_create(data, field):
    with pytest.raises(ValidationError) as caught:
        TransactionUpdate().load(data)
    assert field in caught.value.messages


def test_public_schema_shows_amounts_as_strings_and_instants_with_offsets():
    moment = datetime(2026, 1, 15, 14, 30, tzinfo=UTC)
    shown = TransactionPublic().dump(
        {
            "id": 1, "type": "expense", "amount": Decimal("0.1"), "currency": "USD", "description": None,
            "category": None, "occurred_at": moment, "created_at": moment, "updated_at": moment,
        }
    )
    assert shown["amount"] == "0.10"
    assert datetime.fromisoformat(shown["occurred_at"]) == moment
    assert datetime.fromisoformat(shown["occurred_at"]).tzinfo is not None


# --- TransactionListQuery ----------------------------------------------------------------------


def test_list_query_defaults_to_newest_first_fifty_a_page():
    assert TransactionListQuery().load({}) == {"sort": "-occurred_at", "limit": 50}


@pytest.mark.parametrize("limit", ["1", "200"])
def test_list_query_accepts_limits_from_1_to_200(limit):
    assert TransactionListQuery().load({"limit": limit})["limit"] == int(limit)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort": "id"}, "sort"),
        ({"min_amount": "-1"}, "min_amount"),
        ({"max_amount": "1.001"}, "max_amount"),
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00"}, "q"),
        ({"from": "2026-01-10T00:00:00"}, "from"),
        ({"page": "2"}, "page"),
    ],
)
def test_list_query_refuses_invalid_parameters(query, field):
    with pytest.raises(ValidationError) as caught:
        TransactionListQuery().load(query)
    assert field in caught.value.messages


def test_list_query_accepts_a_cursor_of_its_own_sort():
    cursor = transaction_cursor(Position("amount", Decimal("5.00"), 3))
    loaded = TransactionListQuery().load({"sort": "amount", "cursor": cursor})
    assert loaded["cursor"] == Position("amount", Decimal("5.00"), 3)


@pytest.mark.parametrize(
    ("cursor_sort", "query_sort"),
    [("amount", "-amount"), ("amount", None), ("-occurred_at", "occurred_at"), ("occurred_at", "amount")],
)
def test_list_query_refuses_a_cursor_of_another_sort(cursor_sort, query_sort):
    key = Decimal("5.00") if "amount" in cursor_sort else datetime(2026, 1, 1, tzinfo=UTC)
    query = {"cursor": encode_cursor({"s": cursor_sort, "k": key, "id": 3})}
    if query_sort is not None:
        query["sort"] = query_sort
    with pytest.raises(ValidationError) as caught:
        TransactionListQuery().load(query)
    assert "cursor" in caught.value.messages


def test_list_query_keeps_percent_and_underscore_in_q():
    assert TransactionListQuery().load({"q": "50%_off"})["q"] == "50%_off"
