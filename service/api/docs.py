"""Swagger models and query parameters derived from the marshmallow schemas by apispec, so both agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from apispec.ext.marshmallow.openapi import OpenAPIConverter
from flask_restx import Model, Namespace
from flask_restx import fields as rx
from flask_restx.model import SchemaModel
from marshmallow import RAISE, Schema
from marshmallow import fields as ma
from marshmallow.decorators import VALIDATES_SCHEMA
from marshmallow.validate import Equal, Length, OneOf, Range, Validator

from ..schemas import (
    EARLIEST_DAY,
    LATEST_DAY,
    AnalyticsQuery,
    Category,
    Changes,
    DateOrDateTime,
    Money,
    Month,
    PageCursor,
    PasswordChange,
    RecurringCreate,
    TokenName,
    TransactionListQuery,
    TransferCreate,
    Username,
    WholeNumber,
    distinct,
    every_alone,
    storable_text,
    supported_day,
)

# An amount as a decimal string: 0.01 to 999999999999.99, at most 2 places.
AMOUNT_PATTERN = r"^([1-9][0-9]{0,11}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$"
# An amount that may be zero (the query's min_amount, max_amount): 0 to 999999999999.99, at most 2 places.
QUERY_AMOUNT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
# A signed amount in a request (an opening balance): -999999999999.99 to 999999999999.99.
SIGNED_AMOUNT_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,2})?$"
# An amount as a response shows it: always two places.
SHOWN_AMOUNT_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"
# A date (1900-01-01 to 2999-12-31) or a date-time with an offset on such a day.
DATE_OR_DATE_TIME_PATTERN = (
    r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
)
# A calendar month, 1900-01 to 2999-12.
MONTH_PATTERN = r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$"
# Text PostgreSQL can store (schemas.storable_text): no NUL character.
STORABLE_TEXT_PATTERN = r"^[^\u0000]*$"
# Whitespace by the rules of both Python (str.strip, which the server uses) and ECMAScript (which
# many generators use for `pattern`): outside it, both agree a character is not whitespace.
_SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# A username as the server counts it, after trimming surrounding whitespace: at least three
# characters from the first non-space to the last, no NUL.
USERNAME_PATTERN = rf"^[{_SPACE}]*[^{_SPACE}\u0000][^\u0000]+[^{_SPACE}\u0000][{_SPACE}]*$"
# A personal access token's name as the server takes it: something besides whitespace, no NUL.
TOKEN_NAME_PATTERN = rf"^[{_SPACE}]*[^{_SPACE}\u0000][^\u0000]*$"

# Where a schema's values travel: a response body, a request body, or the query string.
Place = Literal["response", "body", "query"]
_Keywords = Callable[..., dict]


def _money(field: Money, place: Place) -> dict:
    """A response shows an amount with two places; a request gives a decimal string, or in a body a number."""
    if place == "response":
        return {"type": "string", "pattern": SHOWN_AMOUNT_PATTERN}
    pattern = SIGNED_AMOUNT_PATTERN if field.signed else QUERY_AMOUNT_PATTERN if field.allow_zero else AMOUNT_PATTERN
    keywords = {"type": "string", "pattern": pattern}
    if place == "body":
        keywords["description"] = "A decimal string or a number, at most 2 places."
    return keywords


def _always(**keywords: Any) -> _Keywords:
    """The same keywords for every field and place."""
    return lambda *args: dict(keywords)


# Our field classes (and their subclasses, such as each PageCursor) as Swagger keywords; apispec
# maps marshmallow's own. A class of ours below one of marshmallow's still needs a row here.
_FIELDS: dict[type, _Keywords] = {
    Money: _money,
    DateOrDateTime: _always(type="string", pattern=DATE_OR_DATE_TIME_PATTERN),
    PageCursor: _always(type="string"),
    Username: _always(type="string", pattern=USERNAME_PATTERN),
    Category: _always(type="string"),
    WholeNumber: _always(type="integer"),
    Month: _always(type="string", pattern=MONTH_PATTERN),
    TokenName: _always(type="string", pattern=TOKEN_NAME_PATTERN),
}
# The validators whose rule a field class's own pattern already holds: Swagger 2 has one pattern.
_PATTERN_HOLDS: dict[type, tuple] = {Username: (storable_text,), TokenName: (storable_text,)}
# Marshmallow classes apispec types from their nested schema or their enum, not from its table.
_TYPED_BY_APISPEC = (ma.Nested, ma.Enum)


def _pattern(pattern: str) -> _Keywords:
    def keywords(field: ma.Field, validator: object, ret: dict) -> dict:
        if "pattern" not in ret:
            return {"pattern": pattern}
        holds = next((rule for cls, rule in _PATTERN_HOLDS.items() if isinstance(field, cls)), ())
        if validator in holds:
            return {}
        raise TypeError(f"{_where(field)}: {validator!r} needs a pattern beside {ret['pattern']!r}; Swagger 2 has one")

    return keywords


def _choice_name(field: ma.Field, choice: str) -> str:
    """A name for a choice in generated code: the choice itself, a sort order's `-key`
    (descending, records.Record.sorts) as `key_desc`, an event type's `record.change` as
    `record_change`, and a webhook's `*` (every event type) as `all`."""
    if choice.isidentifier():
        return choice
    if choice.startswith("-") and choice[1:].isidentifier():
        return f"{choice[1:]}_desc"
    if choice.replace(".", "_").isidentifier():
        return choice.replace(".", "_")
    if choice == "*":
        return "all"
    raise TypeError(f"{_where(field)}: no name for the choice {choice!r} (teach docs._choice_name one)")


def _choices(field: ma.Field, validator: OneOf, ret: dict) -> dict:
    """apispec writes OneOf's enum; its first choice is the example, as flask-restx always showed.
    Where a text choice is no identifier, generated clients get a name for each (x-enum-varnames,
    which openapi-python-client and openapi-generator read) rather than VALUE_1."""
    keywords = {} if "example" in ret else {"example": ret["enum"][0]}
    choices = ret["enum"]
    if all(isinstance(choice, str) for choice in choices) and not all(choice.isidentifier() for choice in choices):
        names = [_choice_name(field, choice) for choice in choices]
        if len(set(names)) != len(names):
            raise TypeError(f"{_where(field)}: choices {choices!r} give names {names!r} twice")
        keywords["x-enum-varnames"] = names
    return keywords


def _exclusive(field: ma.Field, validator: Range, ret: dict) -> dict:
    """apispec writes Range's bounds, not whether they are exclusive."""
    flags = {
        "exclusiveMinimum": validator.min is not None and not validator.min_inclusive,
        "exclusiveMaximum": validator.max is not None and not validator.max_inclusive,
    }
    return {key: True for key, on in flags.items() if on}


# Each validator's Swagger keywords beyond those apispec writes (OneOf's enum, Length's
# minLength/maxLength, Range's minimum/maximum); a validator with no row here is refused.
_VALIDATORS: dict[object, _Keywords] = {
    OneOf: _choices,
    # apispec writes an Equal as a one-value enum.
    Equal: _always(),
    Length: _always(),
    Range: _exclusive,
    storable_text: _pattern(STORABLE_TEXT_PATTERN),
    # The day's span, in the extension apispec itself writes for a Range on dates.
    supported_day: _always(**{"x-minimum": EARLIEST_DAY.isoformat(), "x-maximum": LATEST_DAY.isoformat()}),
    distinct: _always(uniqueItems=True),
    # "*" or the types, not both: Swagger 2 has no words for it (its 400 names the field).
    every_alone: _always(),
}

# Each schema-wide rule (a validates_schema method) as Swagger keywords of a request body; {} for
# a rule across fields, which Swagger 2 has no words for (its 400 names the field).
_SCHEMA_RULES: dict[Callable, dict] = {
    Changes.not_empty: {"minProperties": 1},
    PasswordChange.new_differs: {},
    TransactionListQuery.cursor_matches_sort: {},
    AnalyticsQuery.one_range: {},
    TransferCreate.two_accounts: {},
    RecurringCreate.ends_after_start: {},
}


def _schema_rules(schema: Schema) -> dict:
    """The Swagger keywords of a schema's own rules; a rule with no row in _SCHEMA_RULES is refused."""
    keywords: dict = {}
    for attr, _, _ in schema._hooks[VALIDATES_SCHEMA]:
        rule = getattr(type(schema), attr)
        if rule not in _SCHEMA_RULES:
            raise TypeError(f"{type(schema).__name__}.{attr}: no Swagger mapping (add one to docs._SCHEMA_RULES)")
        keywords.update(_SCHEMA_RULES[rule])
    return keywords


def _where(field: ma.Field) -> str:
    """A bound field's place, such as TransactionPage.items."""
    names: list[str] = []
    owner: object = field
    while isinstance(owner, ma.Field):
        names.insert(0, owner.name or "?")
        owner = owner.parent
    return ".".join([type(owner).__name__, *names])


class _Converter(OpenAPIConverter):
    """apispec's marshmallow to Swagger 2 converter for one place, taught our field classes and
    validators; it refuses, naming the field, a field class or validator it has no mapping for."""

    def __init__(self, place: Place, ns: Namespace | None = None) -> None:
        # No apispec document: a nested schema becomes a model of ns (resolve_nested_schema).
        super().__init__("2.0", schema_name_resolver=None, spec=None)  # type: ignore[arg-type]
        self.place = place
        self.ns = ns
        self.refers_to: list[SchemaModel] = []

    def init_attribute_functions(self) -> None:
        super().init_attribute_functions()
        self.attribute_functions.append(self.validator_keywords)

    def field2type_and_format(self, field: ma.Field, **kwargs: Any) -> dict:
        ours = next((cls for cls in type(field).__mro__ if cls in _FIELDS), None)
        if ours is not None:
            return _FIELDS[ours](field, self.place)
        if type(field).__module__.startswith("marshmallow."):
            if isinstance(field, ma.Nested) and field.allow_none:
                raise TypeError(f"{_where(field)}: Swagger 2 cannot say that a nested object may be null")
            if isinstance(field, _TYPED_BY_APISPEC):
                return {}
            # apispec's table; what it leaves untyped (Field, Raw, Tuple, Method...) is refused.
            keywords = super().field2type_and_format(field)
            if keywords:
                return keywords
        raise TypeError(f"{_where(field)}: no Swagger mapping for {type(field).__name__} (add one to docs._FIELDS)")

    def validator_keywords(self, field: ma.Field, ret: dict) -> dict:
        keywords: dict = {}
        for validator in field.validators:
            key = type(validator) if isinstance(validator, Validator) else validator
            if key not in _VALIDATORS:
                named = getattr(validator, "__qualname__", None) or repr(validator)
                raise TypeError(f"{_where(field)}: no Swagger mapping for {named} (add one to docs._VALIDATORS)")
            keywords.update(_VALIDATORS[key](field, validator, {**ret, **keywords}))
        return keywords

    def resolve_nested_schema(self, schema: Schema) -> dict:
        """A nested schema as a reference to its own model, which the model being built refers to."""
        if self.ns is None or schema.only or schema.exclude:
            raise TypeError(f"{type(schema).__name__}: only a whole schema nests, and not in a query")
        nested = model(self.ns, type(schema), for_input=self.place == "body")
        self.refers_to.append(nested)
        ref = {"$ref": f"#/definitions/{nested.name}"}
        return {"type": "array", "items": ref} if schema.many else ref


class _SchemaModel(SchemaModel):
    """A model given as JSON schema. flask-restx documents the models that a model's fields or
    parents name; this one has no fields, so the models its `$ref`s name are its parents, and its
    schema stays as given (not flask-restx's allOf of the parents)."""

    def __init__(self, name: str, schema: dict, refers_to: list[SchemaModel], *, for_input: bool) -> None:
        super().__init__(name, schema)
        self.__parents__ = refers_to
        self.for_input = for_input

    @property
    def __schema__(self) -> dict:
        return self._schema


def _body_example(json_schema: dict) -> dict:
    """A request body's example: each field's own example (schemas.py), the fields without one left
    out. Swagger UI's "Try it out" starts from it; without it Swagger UI makes up a value from each
    field's type and pattern (random text for a category) and sends every optional field, such as an
    account id the user does not have."""
    return {name: prop["example"] for name, prop in json_schema["properties"].items() if "example" in prop}


def model(ns: Namespace, schema: type[Schema], *, for_input: bool = False) -> SchemaModel:
    """The Swagger model of a schema: its loadable fields for input, its dumped ones otherwise."""
    name = schema.__name__
    if name in ns.models:
        if getattr(ns.models[name], "for_input", for_input) != for_input:
            raise TypeError(f"{name} is documented both as a request and as a response; give each its schema")
        return ns.models[name]
    instance = schema()
    fields = {
        attr: field
        for attr, field in instance.fields.items()
        if not (field.dump_only if for_input else field.load_only)
    }
    converter = _Converter("body" if for_input else "response", ns)
    json_schema = converter.fields2jsonschema(fields, partial=instance.partial)
    rules = _schema_rules(instance)  # checked for every schema; they hold for what is loaded
    if for_input:
        json_schema.update(rules)
        if instance.unknown == RAISE:
            json_schema["additionalProperties"] = False
        json_schema["example"] = _body_example(json_schema)
    return ns.add_model(name, _SchemaModel(name, json_schema, converter.refers_to, for_input=for_input))


# What a Swagger 2 query parameter may say besides its name and place.
_PARAMETER_KEYWORDS = {
    "description", "required", "type", "format", "allowEmptyValue", "items", "collectionFormat", "default",
    "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "uniqueItems", "enum", "multipleOf",
}  # fmt: skip
# What a field's property says that a query parameter cannot: an example (Swagger 2 parameters
# have none), and null (a query value is text; an empty one counts as absent).
_NOT_IN_QUERIES = {"example", "x-nullable"}


def query_params(schema: type[Schema]) -> dict:
    """Swagger query parameters of a query schema. An empty value (`?q=`) counts as absent."""
    instance = schema()
    if _schema_rules(instance):
        raise TypeError(f"{schema.__name__}: a rule across query parameters has no Swagger words")
    params = {}
    for param in _Converter("query").schema2parameters(instance, location="query"):
        name, place = param.pop("name"), param.pop("in")
        unsayable = {key for key in param if not key.startswith("x-")} - _PARAMETER_KEYWORDS - _NOT_IN_QUERIES
        if unsayable:
            raise TypeError(f"{schema.__name__}.{name}: a query parameter cannot say {sorted(unsayable)}")
        kept = {key: value for key, value in param.items() if key not in _NOT_IN_QUERIES}
        params[name] = {"in": place, **kept, "allowEmptyValue": True}
    return params


def error_model(ns: Namespace) -> Model:
    """The one error envelope, as a Swagger model. Its code has no example of its own: each error
    response shows its own (`refusal`)."""
    if "Error" in ns.models:
        return ns.models["Error"]
    detail = ns.model(
        "ErrorDetail",
        {
            "code": rx.String(required=True, description="Stable, for programs; each response names its own."),
            "message": rx.String(required=True),
            "fields": rx.Raw(description="Per-field messages, for validation errors."),
        },
    )
    return ns.model("Error", {"error": rx.Nested(detail, required=True)})


# The keyword of ns.response that carries an error response's codes (read by
# service.api.ErrorExamples, which writes the response's example from the first).
CODES = "codes"


def refusal(ns: Namespace, status: int, description: str, *codes: str, headers: dict | None = None):
    """Decorator: document an error response in the envelope, with the codes the service answers it
    with, the usual one first: the document shows an example of that one, so that a 401 does not
    show the example of a 400. Every error response is documented through here."""
    if not codes:
        raise TypeError(f"{status} {description!r}: name the codes the service answers it with")
    return ns.response(status, description, error_model(ns), headers=headers, **{CODES: codes})


def error_example(code: str, description: str) -> dict:
    """An error response's example body: its code, and its description as the message."""
    return {"error": {"code": code, "message": description}}


# Swagger security schemes: either header carries the token. `token` comes first and every
# protected operation lists it: the token from POST /login goes in it as it comes, which is what
# people paste into Swagger UI's Authorize dialog. `bearer` is the same token after "Bearer ":
# Swagger 2 has no other words for it; the OpenAPI 3 document (which /docs shows) calls it an HTTP
# bearer scheme, where Swagger UI and generated clients add "Bearer " themselves.
AUTHORIZATIONS = {
    "token": {
        "type": "apiKey",
        "in": "header",
        "name": "x-access-token",
        "description": "The token from POST /login (or a personal access token), as it comes",
    },
    "bearer": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Bearer <token>",
    },
}
# What every protected operation accepts, token first.
SECURITY: list[dict[str, list]] = [{"token": []}, {"bearer": []}]


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
    return refusal(ns, 503, DATABASE_UNAVAILABLE, "service_unavailable", "busy", headers=RETRY_AFTER)


def authenticated(ns: Namespace):
    """Class decorator: document that every method needs a token and may answer 401 (and, as
    checking the token reads the database, 503 during an outage or contention, and 422 past the
    statement timeout)."""

    def decorate(cls: type) -> type:
        cls = refusal(
            ns, 401, "Missing, invalid, expired or revoked token (authentication_required, invalid_token)",
            "authentication_required", "invalid_token",
        )(cls)
        cls = refusal(ns, 422, TOO_EXPENSIVE, "request_too_expensive")(cls)
        cls = database_unavailable(ns)(cls)
        return ns.doc(security=SECURITY)(cls)

    return decorate
