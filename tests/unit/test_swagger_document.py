"""The Swagger document is derived from the marshmallow schemas, completely, or refuses loudly."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_restx import Api, Namespace, Resource
from marshmallow import Schema, fields, validate, validates_schema
from openapi_spec_validator import validate as validate_document

from service import schemas
from service.api.docs import model, query_params

SCHEMAS = sorted(
    (
        value
        for value in vars(schemas).values()
        if isinstance(value, type) and issubclass(value, Schema) and value.__module__ == schemas.__name__
    ),
    key=lambda schema: schema.__name__,
)

# The schemas of query strings, by the names they share.
QUERIES = [schema for schema in SCHEMAS if schema.__name__.endswith(("Query", "Filters"))]


def _documented(prop: dict) -> bool:
    return any(key in prop for key in ("type", "$ref", "allOf"))


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
def test_every_field_and_validator_of_every_schema_maps_to_swagger(schema):
    """A field class, validator or schema rule with no mapping raises, naming it, while building these."""
    loaded = model(Namespace("requests"), schema, for_input=True).__schema__["properties"]
    dumped = model(Namespace("responses"), schema).__schema__["properties"]
    queried = query_params(schema) if schema in QUERIES else {}
    for attr, field in schema().fields.items():
        name = field.data_key or attr
        if not field.dump_only:
            assert _documented(loaded[name]), (schema.__name__, name, loaded[name])
            if queried:
                assert "type" in queried[name], (schema.__name__, name, queried[name])
        if not field.load_only:
            assert _documented(dumped[name]), (schema.__name__, name, dumped[name])


def test_query_params_document_booleans_and_floats_with_their_types():
    class Flags(Schema):
        archived = fields.Boolean(load_default=False)
        ratio = fields.Float(validate=validate.Range(min=0, max=1, min_inclusive=False))

    params = query_params(Flags)

    assert params["archived"] == {
        "in": "query", "type": "boolean", "default": False, "required": False, "allowEmptyValue": True,
    }  # fmt: skip
    assert params["ratio"]["type"] == "number"
    assert (params["ratio"]["minimum"], params["ratio"]["maximum"]) == (0, 1)
    assert params["ratio"]["exclusiveMinimum"] is True


@pytest.mark.parametrize(
    ("field", "named"),
    [
        pytest.param(fields.Tuple((fields.String(), fields.Integer())), "Tuple", id="tuple"),
        pytest.param(fields.Raw(), "Raw", id="raw"),
        pytest.param(fields.Method("compute"), "Method", id="method"),
        pytest.param(type("Shouting", (fields.String,), {})(), "Shouting", id="own-string-subclass"),
        pytest.param(fields.String(validate=validate.Email()), "Email", id="unknown-validator"),
        pytest.param(fields.String(validate=lambda value: None), "lambda", id="own-function-validator"),
        pytest.param(fields.Nested(schemas.UserPublic, allow_none=True), "null", id="nullable-nested"),
    ],
)
def test_a_field_or_validator_without_a_mapping_is_refused_naming_the_field(field, named):
    probe = type("Probe", (Schema,), {"odd": field, "compute": lambda self, obj: None})

    with pytest.raises(TypeError) as refused:
        model(Namespace("probe"), probe)

    assert "Probe.odd" in str(refused.value) and named in str(refused.value)


def test_a_schema_rule_without_a_mapping_is_refused_naming_it():
    class Probe(Schema):
        low = fields.Integer()

        @validates_schema
        def ordered(self, data, **kwargs) -> None:
            pass

    with pytest.raises(TypeError, match=r"Probe\.ordered"):
        model(Namespace("probe"), Probe, for_input=True)


def test_a_partial_update_requires_no_particular_field_but_one_at_least():
    update = model(Namespace("probe"), schemas.TransactionUpdate, for_input=True).__schema__

    assert "required" not in update
    assert update["minProperties"] == 1
    assert update["additionalProperties"] is False


def test_money_is_shown_with_two_places_and_accepted_as_a_decimal_string():
    shown = model(Namespace("responses"), schemas.TransactionPublic).__schema__["properties"]["amount"]
    accepted = model(Namespace("requests"), schemas.TransactionCreate, for_input=True).__schema__["properties"]
    queried = query_params(schemas.TransactionFilters)

    assert shown["pattern"] == r"^-?[0-9]+\.[0-9]{2}$"
    assert accepted["amount"]["pattern"].startswith("^([1-9]")
    assert queried["min_amount"]["pattern"] == r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
    assert "example" not in queried["min_amount"] and "description" not in queried["min_amount"]


def test_nested_schemas_are_definitions_of_a_valid_document():
    app = Flask(__name__)
    ns = Api(app).namespace("probe")

    @ns.route("/page")
    class Page(Resource):
        @ns.expect(model(ns, schemas.TransactionCreate, for_input=True))
        @ns.response(200, "A page", model(ns, schemas.TransactionPage))
        @ns.doc(params=query_params(schemas.TransactionListQuery))
        def post(self):
            return {}

    document = app.test_client().get("/swagger.json").get_json()

    validate_document(document)
    assert set(document["definitions"]) == {"TransactionCreate", "TransactionPage", "TransactionPublic"}
    items = document["definitions"]["TransactionPage"]["properties"]["items"]
    assert items == {"type": "array", "items": {"$ref": "#/definitions/TransactionPublic"}}


def test_choices_that_are_no_identifiers_are_named_for_generated_clients():
    sort = query_params(schemas.TransactionListQuery)["sort"]
    kind = query_params(schemas.TransactionListQuery)["type"]

    assert sort["enum"] == ["occurred_at", "-occurred_at", "amount", "-amount"]
    assert sort["x-enum-varnames"] == ["occurred_at", "occurred_at_desc", "amount", "amount_desc"]
    assert "x-enum-varnames" not in kind


@pytest.mark.parametrize(
    ("choices", "named"),
    [
        pytest.param(["a", "b c"], "'b c'", id="unnameable"),
        pytest.param(["x_desc", "-x"], "twice", id="twice"),
    ],
)
def test_a_choice_without_a_name_is_refused(choices, named):
    probe = type("Probe", (Schema,), {"odd": fields.String(validate=validate.OneOf(choices))})

    with pytest.raises(TypeError, match=named):
        model(Namespace("probe"), probe)


def test_a_request_body_example_is_its_fields_examples_without_the_fields_that_have_none():
    """Swagger UI sends a body model's example as it is; without one it makes up every field,
    optional ids of records the user does not have and random text from patterns included."""
    body = model(Namespace("requests"), schemas.TransactionCreate, for_input=True).__schema__
    shown = model(Namespace("responses"), schemas.TransactionPublic).__schema__

    properties = body["properties"]
    assert body["example"] == {name: prop["example"] for name, prop in properties.items() if "example" in prop}
    assert "account_id" in properties and "account_id" not in body["example"]
    assert "example" not in shown  # a response's example stays Swagger UI's, from the fields
