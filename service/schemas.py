"""Marshmallow schemas: what each request may carry and what each response shows."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from marshmallow import Schema, ValidationError, fields, validates_schema
from marshmallow.validate import Equal, Length, OneOf, Range

from .outbound import MAX_URL_LENGTH
from .records import TRANSACTION, FeedPosition, Position
from .recurrence import FREQUENCIES
from .store.events import TYPES as EVENT_TYPES

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")
TRANSACTION_TYPES = ("income", "expense")
SORTS = TRANSACTION.sorts
# The longest account name (the accounts table's CHECK says the same).
MAX_ACCOUNT_NAME_CHARS = 64
ACCOUNT_KINDS = ("checking", "savings", "cash", "credit_card", "investment", "other")
PERIODS = ("current_month", "last_month", "current_year", "last_year")
GROUP_BYS = ("category", "month", "day")
# The most groups one analytics answer holds, and the most categories one page lists: whatever
# the data behind them, an answer stays under 1 MB (texts at their longest, escaped as JSON).
MAX_GROUPS = 1000
MAX_CATEGORIES_PAGE = 1000
# Dates outside this span are refused: they are not finance records, and near the ends of the
# calendar converting between zones overflows.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)
# The most digits an amount may have on either side of its point, as a string or a JSON number.
AMOUNT_DIGITS = 40
_AMOUNT_TEXT = re.compile(rf"^-?[0-9]{{1,{AMOUNT_DIGITS}}}(\.[0-9]{{1,{AMOUNT_DIGITS}}})?$")
# PostgreSQL text can hold neither NUL nor an unpaired surrogate (which has no UTF-8 form).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> None:
    """Refuse text the database cannot store, so it is a 400 rather than a 500."""
    if _UNSTORABLE.search(value):
        raise ValidationError("Must not contain NUL characters or unpaired surrogates.")


def supported_day(value: date | datetime) -> None:
    """Validator: the date, or the day of a date-time, lies within the supported span."""
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValidationError(f"Must be between {EARLIEST_DAY} and {LATEST_DAY}.")


class ExponentNumber:
    """A JSON number written with an exponent (1e3): kept as text so Money can refuse it."""

    def __init__(self, text: str) -> None:
        self.text = text


def parse_json_number(text: str) -> Decimal | ExponentNumber:
    """Read a JSON number with a fraction as an exact Decimal, never as a binary float."""
    return ExponentNumber(text) if "e" in text.lower() else Decimal(text)


class Money(fields.Field):
    """An amount of money: a JSON number or a decimal string, exact, with at most two places."""

    default_error_messages = {
        "invalid": 'Must be a number or a decimal string such as "12.50".',
        "exponent": "Write the amount in full, without an exponent.",
        "places": "At most 2 decimal places are allowed.",
        "range": "Must be greater than 0 and at most 999999999999.99.",
        "range_or_zero": "Must be between 0 and 999999999999.99.",
        "range_signed": "Must be between -999999999999.99 and 999999999999.99.",
    }

    def __init__(
        self, *, allow_zero: bool = False, signed: bool = False, metadata: dict | None = None, **kwargs
    ) -> None:
        super().__init__(metadata={"example": "12.50", **(metadata or {})}, **kwargs)
        self.allow_zero = allow_zero or signed
        # A balance may be negative (a credit card's), and zero.
        self.signed = signed

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        if isinstance(value, ExponentNumber):
            raise self.make_error("exponent")
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise self.make_error("invalid")
        if isinstance(value, str):
            if "e" in value.lower():
                raise self.make_error("exponent")
            if not _AMOUNT_TEXT.match(value):
                raise self.make_error("invalid")
        try:
            amount = Decimal(value)
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -AMOUNT_DIGITS:
            # A JSON number such as 1.000...0 with thousands of zeros, refused like the same string.
            raise self.make_error("invalid")
        if self.signed:
            if abs(amount) > MAX_AMOUNT:
                raise self.make_error("range_signed")
        elif not (amount >= 0 if self.allow_zero else amount > 0) or amount > MAX_AMOUNT:
            raise self.make_error("range_or_zero" if self.allow_zero else "range")
        if amount != amount.quantize(CENT):
            raise self.make_error("places")
        return amount.quantize(CENT)

    def _serialize(self, value, attr, obj, **kwargs) -> str | None:
        return None if value is None else f"{value:.2f}"


class Category(fields.String):
    """A category name: surrounding spaces trimmed, blank meaning none."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("allow_none", True)
        super().__init__(validate=[Length(max=64), storable_text], **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str | None:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return text or None

    def _validate(self, value) -> None:
        # A blank category has become None: nothing left for Length to measure.
        if value is not None:
            super()._validate(value)


class NamedCategory(Category):
    """A category that must be named: blank is refused."""

    default_error_messages = {"blank": "Must not be blank."}

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_none=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is None:
            raise self.make_error("blank")
        return text


class Month(fields.Field):
    """A calendar month, YYYY-MM, as its first day."""

    default_error_messages = {"invalid": "Must be a month, YYYY-MM (1900-01 to 2999-12)."}

    def _deserialize(self, value, attr, data, **kwargs) -> date:
        if not isinstance(value, str) or not _MONTH.match(value):
            raise self.make_error("invalid")
        return date(int(value[:4]), int(value[5:]), 1)

    def _serialize(self, value, attr, obj, **kwargs) -> str | None:
        return None if value is None else value.strftime("%Y-%m")


_MONTH = re.compile(r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$")


class DateOrDateTime(fields.Field):
    """A calendar date (2026-11-01) or an ISO 8601 date-time with an offset."""

    default_error_messages = {
        "invalid": "Must be a date (YYYY-MM-DD) or a date-time with an offset.",
    }

    def _deserialize(self, value, attr, data, **kwargs) -> date | datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        if moment.tzinfo is None:
            raise self.make_error("invalid")
        return moment


# PostgreSQL's bigint, the type of every id.
MAX_ID = 2**63 - 1


def encode_cursor(position: dict) -> str:
    """An opaque next_cursor: base64url of the position as compact JSON."""
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: object) -> dict:
    """The position a cursor encodes; raises ValueError (or TypeError, binascii.Error) otherwise."""
    if not isinstance(value, str):
        raise TypeError("a cursor is a string")
    position = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    if not isinstance(position, dict):
        raise TypeError("a cursor encodes an object")
    return position


class PageCursor(fields.Field):
    """An opaque next_cursor (see encode_cursor). A client can forge one, so what it holds is
    checked by `position` as strictly as the column it came from; anything else is refused alike."""

    default_error_messages = {"invalid": "Not a valid cursor; pass next_cursor unchanged."}

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.position(decode_cursor(value))
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, ValidationError) as exc:
            raise self.make_error("invalid") from exc

    def position(self, encoded: dict):
        raise NotImplementedError


def transaction_cursor(position: Position) -> str:
    """The next_cursor of a transaction page that ended at `position` (read back by Cursor)."""
    return encode_cursor({"s": position.sort, "k": position.key, "id": position.id})


class Cursor(PageCursor):
    """A transaction page's cursor (transaction_cursor): the last row's sort key (an amount as
    Money accepts it, or an instant) and id."""

    _amount = Money()

    def position(self, encoded: dict) -> Position:
        sort, key, row_id = encoded["s"], encoded["k"], encoded["id"]
        if sort not in SORTS or type(row_id) is not int or not 0 < row_id <= MAX_ID or not isinstance(key, str):
            raise ValueError(sort)
        parsed_key = self._amount.deserialize(key) if sort.lstrip("-") == "amount" else _instant(key)
        return Position(sort, parsed_key, row_id)


def _instant(text: str) -> datetime:
    """A cursor's date-time key: ISO 8601 with an offset, an instant of a supported day.

    The key is written in UTC, the app's session time zone; a supported day in an offset of up to
    a day lies within a day of the span in UTC.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    day = moment.astimezone(UTC).date()
    if not EARLIEST_DAY - timedelta(days=1) <= day <= LATEST_DAY + timedelta(days=1):
        raise ValueError(text)
    return moment


class Username(fields.String):
    """A username: surrounding whitespace trimmed before its length is checked."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


# A new password: what registration accepts, and a password change too. A lone surrogate has
# no UTF-8 form to hash.
PASSWORD_RULES = (Length(min=8, max=128), storable_text)
# A password to check against the stored hash: nothing longer can be right.
PRESENTED_PASSWORD_RULES = (Length(min=1, max=128), storable_text)


class Credentials(Schema):
    username = Username(
        required=True,
        validate=[Length(min=3, max=254), storable_text],
        metadata={"example": "sam.johnson@example.com"},
    )
    password = fields.String(
        required=True,
        load_only=True,
        validate=list(PASSWORD_RULES),
        metadata={"example": "password@123"},
    )


class PasswordChange(Schema):
    current_password = fields.String(
        required=True, load_only=True, validate=list(PRESENTED_PASSWORD_RULES),
        metadata={"example": "password@123"},
    )
    new_password = fields.String(
        required=True, load_only=True, validate=list(PASSWORD_RULES),
        metadata={"description": "8 to 128 characters, as at registration.", "example": "another-password@456"},
    )

    @validates_schema
    def new_differs(self, data, **kwargs) -> None:
        if data["current_password"] == data["new_password"]:
            raise ValidationError("Must differ from the current password.", "new_password")


class AccountDeletion(Schema):
    """Deleting the logged-in user (the published model name says account)."""

    password = fields.String(
        required=True, load_only=True, validate=list(PRESENTED_PASSWORD_RULES),
        metadata={"description": "The account's password, to confirm.", "example": "password@123"},
    )


class UserPublic(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)


class TokenPublic(Schema):
    token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds until expiry."})


class WholeNumber(fields.Integer):
    """A whole number, such as a record's id (a JSON number with a fraction is refused, never
    truncated), or its digits in a query string."""

    def _validated(self, value):
        if isinstance(value, Decimal | float) and value != int(value):
            raise self.make_error("invalid")
        return super()._validated(value)


def _account_id(description: str, example: int | None = None, **kwargs) -> WholeNumber:
    """An id of one of the user's accounts (another user's is refused like one that does not exist).
    An optional one has no example: a request body's example (docs.model) leaves it out, as the
    user's own ids are not known in advance."""
    metadata: dict = {"description": description}
    if example is not None:
        metadata["example"] = example
    return WholeNumber(validate=Range(min=1, max=MAX_ID), metadata=metadata, **kwargs)


# The examples of request bodies (what Swagger UI's "Try it out" sends): a weekly shop.
EXAMPLE_MOMENT = "2026-11-28T10:30:00+00:00"
# A recurring rule's start may be at most 366 days back (core.recurring): the first of the month
# this process started in is, for any process younger than eleven months.
EXAMPLE_START = date.today().replace(day=1).isoformat()


class EntryCreate(Schema):
    """What an income or expense is, as a transaction and a recurring rule take it."""

    account_id = _account_id("One of the user's accounts; the default account when absent.")
    type = fields.String(required=True, validate=OneOf(TRANSACTION_TYPES), metadata={"example": "expense"})
    amount = Money(required=True, metadata={"example": "42.50"})
    description = fields.String(
        allow_none=True, validate=[Length(max=500), storable_text], metadata={"example": "Weekly shop"}
    )
    category = Category(metadata={"example": "groceries"})


class TransactionCreate(EntryCreate):
    occurred_at = fields.AwareDateTime(
        format="iso",
        validate=supported_day,
        metadata={"description": "ISO 8601 with an offset; defaults to now.", "example": EXAMPLE_MOMENT},
    )


class Changes(Schema):
    """A PATCH body: at least one field, every one optional (a subclass of a create schema takes its
    fields, none required)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(partial=True, **kwargs)

    @validates_schema
    def not_empty(self, data, **kwargs) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.", "_schema")


class TransactionUpdate(TransactionCreate, Changes):
    """The same fields as a create, every one optional."""


class EntryPublic(Schema):
    id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    type = fields.String(required=True, validate=OneOf(TRANSACTION_TYPES))
    amount = Money(required=True)
    currency = fields.String(required=True, metadata={"example": "USD"})
    description = fields.String(allow_none=True)
    category = fields.String(allow_none=True)


class TransactionPublic(EntryPublic):
    occurred_at = fields.AwareDateTime(format="iso", required=True)
    recurring_id = fields.Integer(
        allow_none=True, required=True, metadata={"description": "The recurring rule that made it, or null."}
    )
    created_at = fields.AwareDateTime(format="iso", required=True)
    updated_at = fields.AwareDateTime(format="iso", required=True)


class TransactionFilters(Schema):
    account_id = _account_id("Only this account's transactions.")
    recurring_id = WholeNumber(
        validate=Range(min=1, max=MAX_ID), metadata={"description": "Only those this recurring rule made."}
    )
    type = fields.String(validate=OneOf(TRANSACTION_TYPES))
    category = Category()
    from_ = DateOrDateTime(
        data_key="from", validate=supported_day, metadata={"description": "Inclusive; a date or date-time."}
    )
    to = DateOrDateTime(validate=supported_day, metadata={"description": "Inclusive; a date covers the whole day."})
    min_amount = Money(allow_zero=True)
    max_amount = Money(allow_zero=True)
    q = fields.String(
        validate=[Length(min=1, max=200), storable_text], metadata={"description": "Text in the description."}
    )


class TransactionListQuery(TransactionFilters):
    sort = fields.String(load_default="-occurred_at", validate=OneOf(SORTS))
    limit = fields.Integer(load_default=50, validate=Range(min=1, max=200))
    cursor = Cursor(metadata={"description": "next_cursor of the previous page."})

    @validates_schema
    def cursor_matches_sort(self, data, **kwargs) -> None:
        if "cursor" in data and data["cursor"].sort != data["sort"]:
            raise ValidationError("This cursor belongs to another sort order.", "cursor")


class TransactionPage(Schema):
    items = fields.List(fields.Nested(TransactionPublic), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class ImportResult(Schema):
    imported = fields.Integer(required=True)


class CategoryPublic(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True)


class CategoryCursor(PageCursor):
    """A category page's cursor: the page's last name, a category as Category accepts it."""

    _category = Category()

    def position(self, encoded: dict) -> str:
        after = self._category.deserialize(encoded["after"])
        if after is None:
            raise ValueError("a blank category")
        return after


class CategoryListQuery(Schema):
    limit = fields.Integer(
        load_default=MAX_CATEGORIES_PAGE, validate=Range(min=1, max=MAX_CATEGORIES_PAGE),
        metadata={"description": f"At most {MAX_CATEGORIES_PAGE} (the default)."},
    )
    cursor = CategoryCursor(metadata={"description": "next_cursor of the previous page."})


class CategoryList(Schema):
    items = fields.List(fields.Nested(CategoryPublic), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class AnalyticsQuery(Schema):
    account_id = _account_id("Only this account's income and expense.")
    period = fields.String(validate=OneOf(PERIODS))
    from_ = fields.Date(data_key="from", validate=supported_day, metadata={"description": "First day, inclusive."})
    to = fields.Date(validate=supported_day, metadata={"description": "Last day, inclusive."})
    group_by = fields.String(validate=OneOf(GROUP_BYS))

    @validates_schema
    def one_range(self, data, **kwargs) -> None:
        has_dates = "from_" in data or "to" in data
        if "period" in data and has_dates:
            raise ValidationError("Give either period or from and to, not both.", "period")
        if has_dates and ("from_" not in data or "to" not in data):
            raise ValidationError("Give both from and to.", "from" if "from_" not in data else "to")
        if has_dates and data["from_"] > data["to"]:
            raise ValidationError("Must not be after to.", "from")


class Totals(Schema):
    total_income = Money(required=True)
    total_expense = Money(required=True)
    net_balance = Money(required=True, metadata={"example": "-12.50"})
    count = fields.Integer(required=True)


class AnalyticsGroup(Totals):
    key = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "The category (null: none), month (YYYY-MM) or day (YYYY-MM-DD)."},
    )


class AnalyticsSummary(Totals):
    period = fields.String(
        required=True, metadata={"description": "The period asked for, or custom for from/to."}
    )
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True)
    currency = fields.String(required=True)
    group_by = fields.String(allow_none=True)
    groups = fields.List(fields.Nested(AnalyticsGroup))


def _account_name(**kwargs) -> fields.String:
    """An account's name: 1 to 64 characters, unique per user in any letter case."""
    return fields.String(
        validate=[Length(min=1, max=MAX_ACCOUNT_NAME_CHARS), storable_text], metadata={"example": "Savings"}, **kwargs
    )


class AccountCreate(Schema):
    name = _account_name(required=True)
    kind = fields.String(required=True, validate=OneOf(ACCOUNT_KINDS), metadata={"example": "savings"})
    opening_balance = Money(
        signed=True,
        metadata={"description": "May be negative (a credit card); 0.00 when absent.", "example": "250.00"},
    )


class AccountUpdate(Changes):
    name = _account_name()
    kind = fields.String(validate=OneOf(ACCOUNT_KINDS), metadata={"example": "savings"})
    archived = fields.Boolean(metadata={"description": "An archived account takes no new records."})
    is_default = fields.Boolean(
        validate=Equal(True, error="Make another account the default instead."),
        metadata={"description": "true: this becomes the default account (the previous one stops being it)."},
    )


class AccountPublic(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=OneOf(ACCOUNT_KINDS))
    currency = fields.String(required=True, metadata={"example": "USD"})
    opening_balance = Money(required=True)
    balance = Money(required=True, metadata={"description": "Opening balance + income - expense + transfers in - out."})
    is_default = fields.Boolean(required=True)
    archived = fields.Boolean(required=True)
    created_at = fields.AwareDateTime(format="iso", required=True)


class AccountListQuery(Schema):
    include_archived = fields.Boolean(load_default=False, metadata={"description": "List archived accounts too."})


class AccountList(Schema):
    items = fields.List(fields.Nested(AccountPublic), required=True)
    total_balance = Money(required=True, metadata={"description": "The sum of the listed balances."})


class TransferCreate(Schema):
    from_account_id = _account_id("The account the money leaves.", example=1, required=True)
    to_account_id = _account_id("The account the money enters.", example=2, required=True)
    amount = Money(required=True, metadata={"example": "100.00"})
    description = fields.String(
        allow_none=True, validate=[Length(max=500), storable_text], metadata={"example": "Monthly saving"}
    )
    occurred_at = fields.AwareDateTime(
        format="iso",
        validate=supported_day,
        metadata={"description": "ISO 8601 with an offset; defaults to now.", "example": EXAMPLE_MOMENT},
    )

    @validates_schema
    def two_accounts(self, data, **kwargs) -> None:
        if data.get("from_account_id") is not None and data.get("from_account_id") == data.get("to_account_id"):
            raise ValidationError("Must differ from from_account_id.", "to_account_id")


class TransferUpdate(Changes):
    amount = Money(metadata={"example": "100.00"})
    description = fields.String(
        allow_none=True, validate=[Length(max=500), storable_text], metadata={"example": "Monthly saving"}
    )
    occurred_at = fields.AwareDateTime(format="iso", validate=supported_day, metadata={"example": EXAMPLE_MOMENT})


class TransferPublic(Schema):
    id = fields.Integer(required=True)
    from_account_id = fields.Integer(required=True)
    to_account_id = fields.Integer(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True, metadata={"example": "USD"})
    occurred_at = fields.AwareDateTime(format="iso", required=True)
    description = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(format="iso", required=True)


class TransferCursor(Cursor):
    """A transfer page's cursor: transfers list newest first only."""

    def position(self, encoded: dict) -> Position:
        position = super().position(encoded)
        if position.sort != "-occurred_at":
            raise ValueError(position.sort)
        return position


class TransferListQuery(Schema):
    account_id = _account_id("Transfers from or to this account.")
    from_ = DateOrDateTime(
        data_key="from", validate=supported_day, metadata={"description": "Inclusive; a date or date-time."}
    )
    to = DateOrDateTime(validate=supported_day, metadata={"description": "Inclusive; a date covers the whole day."})
    limit = fields.Integer(load_default=50, validate=Range(min=1, max=200))
    cursor = TransferCursor(metadata={"description": "next_cursor of the previous page."})


class TransferPage(Schema):
    items = fields.List(fields.Nested(TransferPublic), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class BudgetCreate(Schema):
    category = NamedCategory(
        required=True,
        metadata={
            "description": "Matched as the category filter of GET /transactions matches.", "example": "groceries"
        },
    )
    amount = Money(
        required=True, metadata={"description": "The monthly limit; it applies to every month.", "example": "400.00"}
    )


class BudgetUpdate(BudgetCreate, Changes):
    pass


class BudgetPublic(Schema):
    id = fields.Integer(required=True)
    category = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True, metadata={"example": "USD"})
    created_at = fields.AwareDateTime(format="iso", required=True)
    updated_at = fields.AwareDateTime(format="iso", required=True)


class BudgetMonthQuery(Schema):
    month = Month(metadata={"description": "YYYY-MM; the current month in the tenant's time zone by default."})


class BudgetFigures(BudgetPublic):
    spent = Money(required=True, metadata={"description": "The category's expenses in the month, over all accounts."})
    remaining = Money(required=True, metadata={"description": "amount - spent; negative when over."})
    percent_used = fields.String(
        required=True, metadata={"description": "spent / amount x 100, rounded half up.", "example": "45.3"}
    )


class BudgetStatus(BudgetFigures):
    month = Month(required=True)


class BudgetList(Schema):
    month = Month(required=True)
    currency = fields.String(required=True, metadata={"example": "USD"})
    items = fields.List(fields.Nested(BudgetFigures), required=True)
    total_budgeted = Money(required=True)
    total_spent = Money(required=True)


class RecurringCreate(EntryCreate):
    frequency = fields.String(required=True, validate=OneOf(FREQUENCIES), metadata={"example": "weekly"})
    interval = WholeNumber(
        validate=Range(min=1, max=366),
        metadata={"description": "Every this many days, weeks, months or years; 1 by default.", "example": 1},
    )
    start_date = fields.Date(
        required=True, validate=supported_day,
        metadata={
            "description": "The first occurrence, in the tenant's time zone; at most 366 days ago.",
            "example": EXAMPLE_START,
        },
    )
    end_date = fields.Date(
        allow_none=True, validate=supported_day, metadata={"description": "The last day an occurrence may fall on."}
    )

    @validates_schema
    def ends_after_start(self, data, **kwargs) -> None:
        if data.get("end_date") is not None and data.get("start_date") and data["end_date"] < data["start_date"]:
            raise ValidationError("Must not be before start_date.", "end_date")


class RecurringUpdate(RecurringCreate, Changes):
    """The same fields as a create, every one optional; a change applies to occurrences not yet made."""


class RecurringPublic(EntryPublic):
    frequency = fields.String(required=True, validate=OneOf(FREQUENCIES))
    interval = fields.Integer(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(allow_none=True, required=True)
    last_occurrence = fields.Date(
        allow_none=True, required=True,
        metadata={"description": "The last occurrence passed (made, or skipped while its account was archived)."},
    )
    next_occurrence = fields.Date(
        allow_none=True, required=True, metadata={"description": "The next occurrence; null when none is left."}
    )
    created_at = fields.AwareDateTime(format="iso", required=True)
    updated_at = fields.AwareDateTime(format="iso", required=True)


class RecurringList(Schema):
    items = fields.List(fields.Nested(RecurringPublic), required=True)


# Personal access tokens (core.access_tokens): their scopes, names and lifetimes.
TOKEN_SCOPES = ("read", "read_write")
MAX_TOKEN_NAME_CHARS = 100
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365


class TokenName(fields.String):
    """A personal access token's name: at most 100 characters as sent, surrounding whitespace
    trimmed, not blank. (Checked before trimming too, so the Swagger document's maxLength, which
    can only speak of the text sent, is exact.)"""

    default_error_messages = {"too_long": f"Longer than maximum length {MAX_TOKEN_NAME_CHARS}."}

    def __init__(self, **kwargs) -> None:
        super().__init__(validate=[Length(min=1, max=MAX_TOKEN_NAME_CHARS), storable_text], **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > MAX_TOKEN_NAME_CHARS:
            raise self.make_error("too_long")
        return text.strip()


class PersonalTokenCreate(Schema):
    name = TokenName(
        required=True,
        metadata={"description": "What the token is for; 1 to 100 characters.", "example": "Budget spreadsheet"},
    )
    scope = fields.String(
        required=True, validate=OneOf(TOKEN_SCOPES),
        metadata={
            "description": "read: GET only; read_write: everything but what needs a login token.", "example": "read"
        },
    )
    expires_in_days = WholeNumber(
        load_default=DEFAULT_TOKEN_DAYS, validate=Range(min=1, max=MAX_TOKEN_DAYS),
        metadata={
            "description": f"Days until it expires, 1 to {MAX_TOKEN_DAYS}; {DEFAULT_TOKEN_DAYS} by default.",
            "example": DEFAULT_TOKEN_DAYS,
        },
    )


class PersonalTokenPublic(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    scope = fields.String(required=True, validate=OneOf(TOKEN_SCOPES))
    created_at = fields.AwareDateTime(format="iso", required=True)
    expires_at = fields.AwareDateTime(format="iso", required=True)
    last_used_at = fields.AwareDateTime(
        format="iso", allow_none=True, required=True,
        metadata={"description": "When it last authenticated a request, to the minute; null before its first use."},
    )


class PersonalTokenIssued(PersonalTokenPublic):
    token = fields.String(
        required=True,
        metadata={
            "description": "The secret, shown only in this answer: send it as Authorization: Bearer or x-access-token.",
            "example": "fin_pat_3q2-7wEk0r9yZ8mXb1VtQ4nH6sLp5cJdAoKgIuFeRhT",
        },
    )


class PersonalTokenList(Schema):
    items = fields.List(fields.Nested(PersonalTokenPublic), required=True)


class EventCursor(PageCursor):
    """The feed's cursor (event_cursor): the last event's transaction id and id."""

    def position(self, encoded: dict) -> FeedPosition:
        txid, event_id = encoded["t"], encoded["id"]
        if type(txid) is not int or type(event_id) is not int or not (0 <= txid <= MAX_ID and 0 < event_id <= MAX_ID):
            raise ValueError(encoded)
        return FeedPosition(txid, event_id)


def event_cursor(position: FeedPosition) -> str:
    return encode_cursor({"t": position.txid, "id": position.id})


class EventQuery(Schema):
    after = EventCursor(metadata={"description": "next_cursor of the previous answer; from the first event without."})
    limit = fields.Integer(load_default=100, validate=Range(min=1, max=200))


class EventPublic(Schema):
    id = fields.Integer(required=True, metadata={"description": "Also the webhook-id of its deliveries."})
    type = fields.String(required=True, metadata={"example": "transaction.created"})
    timestamp = fields.AwareDateTime(format="iso", required=True, metadata={"description": "When the change was made."})
    data = fields.Dict(
        required=True,
        metadata={"description": "The record as the API shows it (a budget as GET /budgets/{id}?month= does)."},
    )


class EventFeed(Schema):
    items = fields.List(fields.Nested(EventPublic), required=True)
    next_cursor = fields.String(
        allow_none=True, required=True,
        metadata={"description": "Pass as `after` to read on; the same cursor again while nothing is new."},
    )


# A webhook's events: "*" alone (every type, those added later too), or types of EVENT_TYPES.
EVERY_EVENT = "*"
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def distinct(values: list) -> None:
    """Validator: no value listed twice (a duplicate is refused, not dropped: it is a mistake)."""
    if len(set(values)) != len(values):
        raise ValidationError("List each event type once.")


def every_alone(values: list) -> None:
    """Validator: "*" stands for every type, so it stands alone."""
    if EVERY_EVENT in values and len(values) > 1:
        raise ValidationError(f'"{EVERY_EVENT}" (every type) stands alone; list it or the types, not both.')


def _webhook_events(**kwargs) -> fields.List:
    return fields.List(
        fields.String(validate=OneOf((EVERY_EVENT, *EVENT_TYPES))),
        validate=[Length(min=1, max=len(EVENT_TYPES)), distinct, every_alone],
        metadata={
            "description": 'The event types to deliver, each once; or ["*"] for every type.',
            "example": ["transaction.created"],
        },
        **kwargs,
    )


class WebhookCreate(Schema):
    url = fields.String(
        required=True,
        validate=[Length(min=1, max=MAX_URL_LENGTH), storable_text],
        metadata={
            "description": "https, without a user or password or #fragment; its host must resolve to public"
            " addresses only.",
            "example": "https://example.com/hooks",
        },
    )
    events = _webhook_events(required=True)
    description = fields.String(
        allow_none=True, validate=[Length(max=500), storable_text], metadata={"example": "Budget app"}
    )


class WebhookUpdate(WebhookCreate, Changes):
    active = fields.Boolean(
        metadata={
            "description": "false: no deliveries are made; true takes one the service turned off back up.",
            "example": True,
        }
    )


class WebhookPublic(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    description = fields.String(allow_none=True, required=True)
    active = fields.Boolean(
        required=True, metadata={"description": "false: no deliveries are made (set by you, or after a 410)."}
    )
    created_at = fields.AwareDateTime(format="iso", required=True)


class WebhookCreated(WebhookPublic):
    secret = fields.String(
        required=True,
        metadata={
            "description": "whsec_ and base64: signs each delivery (Standard Webhooks). Shown only here; keep it.",
            "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw0Y0vOBS+WvE=",
        },
    )


class WebhookList(Schema):
    items = fields.List(fields.Nested(WebhookPublic), required=True)


class DeliveryCursor(PageCursor):
    """A deliveries page's cursor (delivery_cursor): the id of its last (oldest) delivery."""

    def position(self, encoded: dict) -> int:
        delivery_id = encoded["id"]
        if type(delivery_id) is not int or not 0 < delivery_id <= MAX_ID:
            raise ValueError(encoded)
        return delivery_id


def delivery_cursor(delivery_id: int) -> str:
    return encode_cursor({"id": delivery_id})


class DeliveryListQuery(Schema):
    limit = fields.Integer(load_default=50, validate=Range(min=1, max=200))
    cursor = DeliveryCursor(metadata={"description": "next_cursor of the previous page."})


class DeliveryPublic(Schema):
    id = fields.Integer(required=True)
    event_type = fields.String(required=True, metadata={"example": "transaction.created"})
    status = fields.String(required=True, validate=OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer(required=True, metadata={"description": "Sends tried so far."})
    last_status_code = fields.Integer(
        allow_none=True, required=True, metadata={"description": "The receiver's HTTP status at the last try."}
    )
    last_error = fields.String(
        allow_none=True, required=True, metadata={"description": "Why the last try failed, if it did."}
    )
    next_attempt_at = fields.AwareDateTime(
        format="iso", allow_none=True, required=True,
        metadata={"description": "When it is tried next; null once delivered or failed."},
    )
    created_at = fields.AwareDateTime(format="iso", required=True)


class DeliveryPage(Schema):
    items = fields.List(fields.Nested(DeliveryPublic), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
