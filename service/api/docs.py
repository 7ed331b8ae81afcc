"""Swagger models and query parameters derived from the marshmallow schemas, so both agree."""

from __future__ import annotations

from typing import cast

from flask_restx import Model, Namespace
from flask_restx import fields as rx
from marshmallow import Schema, missing
from marshmallow import fields as ma
from marshmallow.validate import Length, OneOf, Range

from ..schemas import DateOrDateTime, Money, PageCursor, Username, storable_text

# An amount as a decimal string: 0.01 to 999999999999.99, at most 2 places.
AMOUNT_PATTERN = r"^([1-9][0-9]{0,11}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$"
# A query amount (min_amount, max_amount): 0 to 999999999999.99, at most 2 places.
QUERY_AMOUNT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
# A date (1900-01-01 to 2999-12-31) or a date-time with an offset on such a day.
DATE_OR_DATE_TIME_PATTERN = (
    r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
)
# Text PostgreSQL can store (schemas.storable_text): no NUL character.
STORABLE_TEXT_PATTERN = r"^[^\u0000]*$"
# Whitespace by the rules of both Python (str.strip, which the server uses) and ECMAScript (which
# many generators use for `pattern`): outside it, both agree a character is not whitespace.
_SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# A username as the server counts it, after trimming surrounding whitespace: at least three
# characters from the first non-space to the last, no NUL.
USERNAME_PATTERN = rf"^[{_SPACE}]*[^{_SPACE}\u0000][^\u0000]+[^{_SPACE}\u0000][{_SPACE}]*$"
_SIMPLE = [
    (Money, rx.String, {"pattern": r"^-?[0-9]+\.[0-9]{2}$"}),
    (DateOrDateTime, rx.String, {"pattern": DATE_OR_DATE_TIME_PATTERN}),
    (ma.AwareDateTime, rx.DateTime, {}),
    (ma.Date, rx.Date, {}),
    (ma.Integer, rx.Integer, {}),
    (PageCursor, rx.String, {}),
    (Username, rx.String, {"pattern": USERNAME_PATTERN}),
    (ma.String, rx.String, {}),
]


def _constraints(field: ma.Field) -> dict:
    """Swagger keywords for a field's validators."""
    found: dict = {}
    for validator in field.validators:
        if isinstance(validator, OneOf):
            found["enum"] = list(validator.choices)
        elif isinstance(validator, Length):
            found.update(min_length=validator.min, max_length=validator.max)
        elif isinstance(validator, Range):
            found.update(min=validator.min, max=validator.max)
    return {key: value for key, value in found.items() if value is not None}


class _Nullable:
    """Mixin of a flask-restx field that may be null: Swagger 2 has no `nullable`, so the document
    says it with the `x-nullable` extension that client generators and schemathesis read."""

    def schema(self) -> dict:
        return {**super().schema(), "x-nullable": True}  # type: ignore[misc]


_NULLABLE_TYPES: dict[type, type] = {}


def _nullable(rx_type: type) -> type:
    if rx_type not in _NULLABLE_TYPES:
        _NULLABLE_TYPES[rx_type] = type(f"Nullable{rx_type.__name__}", (_Nullable, rx_type), {})
    return _NULLABLE_TYPES[rx_type]


def _rx_field(ns: Namespace, field: ma.Field, *, for_input: bool) -> rx.Raw:
    options = {"required": field.required}
    options.update({key: field.metadata[key] for key in ("description", "example") if key in field.metadata})
    if isinstance(field, ma.List):
        return rx.List(_rx_field(ns, field.inner, for_input=for_input), **options)
    if isinstance(field, ma.Nested):
        return rx.Nested(model(ns, cast(type[Schema], field.nested), for_input=for_input), **options)
    for ma_type, rx_type, extra in _SIMPLE:
        if isinstance(field, ma_type):
            if isinstance(field, Money) and for_input:
                extra = {"description": "A decimal string or a number, at most 2 places.", "pattern": AMOUNT_PATTERN}
            if storable_text in field.validators:
                extra = {"pattern": STORABLE_TEXT_PATTERN, **extra}
            field_type = _nullable(rx_type) if field.allow_none else rx_type
            return field_type(**{**extra, **options, **_constraints(field)})
    raise TypeError(f"no Swagger mapping for {type(field).__name__}")


def model(ns: Namespace, schema: type[Schema], *, for_input: bool = False) -> Model:
    """The Swagger model of a schema: its loadable fields for input, its dumped ones otherwise."""
    name = schema.__name__
    if name in ns.models:
        return ns.models[name]
    fields = {}
    for attr, field in schema._declared_fields.items():
        if (for_input and field.dump_only) or (not for_input and field.load_only):
            continue
        fields[field.data_key or attr] = _rx_field(ns, field, for_input=for_input)
    # Input refuses unknown fields (marshmallow's RAISE): additionalProperties false says so.
    return ns.model(name, fields, strict=for_input)


def query_params(schema: type[Schema]) -> dict:
    """Swagger query parameters of a query schema. An empty value (`?q=`) counts as absent."""
    params = {}
    for attr, field in schema._declared_fields.items():
        swagger_type = "integer" if isinstance(field, ma.Integer) else "string"
        param = {"in": "query", "type": swagger_type, "required": field.required, "allowEmptyValue": True}
        if field.metadata.get("description"):
            param["description"] = field.metadata["description"]
        if isinstance(field, Money):
            param["pattern"] = QUERY_AMOUNT_PATTERN
        elif isinstance(field, ma.Date):
            param["format"] = "date"
        elif isinstance(field, DateOrDateTime):
            param["pattern"] = DATE_OR_DATE_TIME_PATTERN
        elif storable_text in field.validators:
            param["pattern"] = STORABLE_TEXT_PATTERN
        for validator in field.validators:
            if isinstance(validator, OneOf):
                param["enum"] = list(validator.choices)
            elif isinstance(validator, Range):
                param.update(minimum=validator.min, maximum=validator.max)
            elif isinstance(validator, Length):
                lengths = {"minLength": validator.min, "maxLength": validator.max}
                param.update({key: value for key, value in lengths.items() if value is not None})
        if field.load_default is not missing:
            param["default"] = field.load_default
        params[field.data_key or attr] = param
    return params


def error_model(ns: Namespace) -> Model:
    """The one error envelope, as a Swagger model."""
    if "Error" in ns.models:
        return ns.models["Error"]
    detail = ns.model(
        "ErrorDetail",
        {
            "code": rx.String(required=True, example="validation_error"),
            "message": rx.String(required=True),
            "fields": rx.Raw(description="Per-field messages, for validation errors."),
        },
    )
    return ns.model("Error", {"error": rx.Nested(detail, required=True)})


# Swagger security requirements: either header carries the token.
AUTHORIZATIONS = {
    "token": {"type": "apiKey", "in": "header", "name": "x-access-token"},
    "bearer": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Bearer <token>",
    },
}


# Any operation that reaches the database answers 503 while it is unreachable or while other
# requests hold what it needs, and 422 when it needs more database time than one request may
# use (errors.py).
DATABASE_UNAVAILABLE = (
    "The database is unavailable (service_unavailable), or other requests hold the records this one"
    " needs (busy); retry after Retry-After seconds"
)
TOO_EXPENSIVE = "More database time than one request may use (request_too_expensive); ask for less"
RETRY_AFTER = {"Retry-After": {"type": "integer", "description": "Seconds to wait before retrying"}}


def database_unavailable(ns: Namespace):
    """Decorator: document the 503 of a database outage or of contention."""
    return ns.response(503, DATABASE_UNAVAILABLE, error_model(ns), headers=RETRY_AFTER)


def authenticated(ns: Namespace):
    """Class decorator: document that every method needs a token and may answer 401 (and, as
    checking the token reads the database, 503 during an outage or contention, and 422 past the
    statement timeout)."""

    def decorate(cls: type) -> type:
        cls = ns.response(401, "Missing, invalid, expired or revoked token", error_model(ns))(cls)
        cls = ns.response(422, TOO_EXPENSIVE, error_model(ns))(cls)
        cls = database_unavailable(ns)(cls)
        return ns.doc(security=[{"token": []}, {"bearer": []}])(cls)

    return decorate
