"""Swagger models and query parameters derived from the marshmallow schemas, so both agree."""

from __future__ import annotations

from typing import cast

from flask_restx import Model, Namespace
from flask_restx import fields as rx
from marshmallow import Schema, missing
from marshmallow import fields as ma
from marshmallow.validate import Length, OneOf, Range

from ..schemas import Cursor, DateOrDateTime, Money

_SIMPLE = [
    (Money, rx.String, {"pattern": r"^-?[0-9]+\.[0-9]{2}$"}),
    (DateOrDateTime, rx.String, {}),
    (ma.AwareDateTime, rx.DateTime, {}),
    (ma.Date, rx.Date, {}),
    (ma.Integer, rx.Integer, {}),
    (Cursor, rx.String, {}),
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
                extra = {"description": "A decimal string or a number, at most 2 places."}
            return rx_type(**{**extra, **options, **_constraints(field)})
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
    return ns.model(name, fields)


def query_params(schema: type[Schema]) -> dict:
    """Swagger query parameters of a query schema."""
    params = {}
    for attr, field in schema._declared_fields.items():
        swagger_type = "integer" if isinstance(field, ma.Integer) else "string"
        param = {"in": "query", "type": swagger_type, "required": field.required}
        if field.metadata.get("description"):
            param["description"] = field.metadata["description"]
        for validator in field.validators:
            if isinstance(validator, OneOf):
                param["enum"] = list(validator.choices)
            elif isinstance(validator, Range):
                param.update(minimum=validator.min, maximum=validator.max)
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


def authenticated(ns: Namespace):
    """Class decorator: document that every method needs a token and may answer 401."""

    def decorate(cls: type) -> type:
        cls = ns.response(401, "Missing, invalid or expired token", error_model(ns))(cls)
        return ns.doc(security=[{"token": []}, {"bearer": []}])(cls)

    return decorate
