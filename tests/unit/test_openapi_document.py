"""The OpenAPI 3 document (/openapi.json) is the Swagger 2 document (/swagger.json) converted: valid,
complete, and saying the same things in OpenAPI 3's words."""

from __future__ import annotations

import copy

import pytest
from flask import Flask
from openapi_spec_validator import OpenAPIV30SpecValidator
from openapi_spec_validator import validate as validate_document

from service import api
from service.api import openapi
from service.api.openapi import Unconvertible, convert

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


@pytest.fixture(scope="module")
def app() -> Flask:
    """The service's Api on a bare Flask app: the documents touch neither settings nor database."""
    app = Flask(__name__)
    api.init_app(app)
    return app


@pytest.fixture(scope="module")
def swagger(app) -> dict:
    return app.test_client().get("/swagger.json").get_json()


@pytest.fixture(scope="module")
def document(app) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def operations(document: dict) -> dict[str, dict]:
    """Every operation of a document by its operationId."""
    found = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                assert operation["operationId"] not in found, operation["operationId"]
                found[operation["operationId"]] = {**operation, "path": path, "method": method}
    return found


def refs(node: object) -> list[str]:
    """Every $ref in a document."""
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def keys(node: object) -> set[str]:
    """Every key of every object in a document."""
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in keys(value)}
    if isinstance(node, list):
        return {key for value in node for key in keys(value)}
    return set()


def test_the_document_is_a_valid_openapi_3_0_document(document):
    assert document["openapi"] == "3.0.3"
    validate_document(document, cls=OpenAPIV30SpecValidator)
    assert document["servers"] == [{"url": "/"}]


def test_every_swagger_operation_is_there_with_the_same_operation_id(swagger, document):
    before, after = operations(swagger), operations(document)

    assert set(before) == set(after)
    for operation_id, operation in before.items():
        converted = after[operation_id]
        assert (converted["path"], converted["method"]) == (operation["path"], operation["method"])
        assert set(converted["responses"]) == set(operation["responses"]), operation_id
        assert converted.get("security") == operation.get("security"), operation_id
        assert converted["tags"] == operation["tags"]
    assert document["info"] == swagger["info"] and document["tags"] == swagger["tags"]


def test_operation_ids_are_identifiers_and_schema_names_are_clean(document):
    for operation_id in operations(document):
        assert operation_id.isidentifier(), operation_id
    for name in document["components"]["schemas"]:
        assert name.isidentifier() and name[0].isupper(), name


def test_both_token_headers_are_security_schemes(document):
    schemes = document["components"]["securitySchemes"]

    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["token"] == {"type": "apiKey", "in": "header", "name": "x-access-token"}
    create = operations(document)["post_transaction_collection"]
    assert create["security"] == [{"token": []}, {"bearer": []}]
    assert "security" not in operations(document)["post_register"]


def test_every_ref_resolves_within_the_document(document):
    found = refs(document)

    assert found
    for ref in found:
        assert ref.startswith("#/components/"), ref
        node = document
        for part in ref[2:].split("/"):
            node = node[part]
        assert isinstance(node, dict) and node, ref


def test_no_swagger_2_words_remain(document):
    assert not {"definitions", "securityDefinitions", "basePath", "swagger", "consumes", "produces"} & set(document)
    assert not {"x-nullable", "collectionFormat", "formData"} & keys(document)
    for operation_id, operation in operations(document).items():
        for param in operation.get("parameters", []):
            assert param["in"] in ("path", "query", "header"), operation_id
            assert "type" not in param and "schema" in param, (operation_id, param["name"])


def test_x_nullable_becomes_nullable(swagger, document):
    before = swagger["definitions"]["TransactionPublic"]["properties"]
    after = document["components"]["schemas"]["TransactionPublic"]["properties"]

    assert before["recurring_id"]["x-nullable"] is True
    assert after["recurring_id"] == {
        "type": "integer", "description": "The recurring rule that made it, or null.", "nullable": True,
    }  # fmt: skip
    assert "nullable" not in after["amount"]
    page = document["components"]["schemas"]["TransactionPage"]["properties"]
    assert page["items"] == {"type": "array", "items": {"$ref": "#/components/schemas/TransactionPublic"}}
    assert page["next_cursor"]["nullable"] is True


def test_a_body_parameter_becomes_a_json_request_body(document):
    create = operations(document)["post_transaction_collection"]

    assert create["requestBody"] == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TransactionCreate"}}},
        "required": True,
    }
    (key,) = create["parameters"]
    assert key["name"] == "Idempotency-Key" and key["in"] == "header"
    assert key["schema"] == {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"}
    assert key["description"].startswith("Retries with the same key")
    # The model keeps what the request may not carry.
    assert document["components"]["schemas"]["TransactionCreate"]["additionalProperties"] is False


def test_query_and_path_parameters_keep_their_rules_in_a_schema(swagger, document):
    listing = operations(document)["get_transaction_collection"]
    limit = next(param for param in listing["parameters"] if param["name"] == "limit")
    swagger_limit = next(
        param for param in operations(swagger)["get_transaction_collection"]["parameters"] if param["name"] == "limit"
    )

    assert limit["in"] == "query" and limit["required"] is False and limit["allowEmptyValue"] is True
    assert limit["schema"]["type"] == "integer"
    for keyword in ("minimum", "maximum", "default"):
        assert limit["schema"][keyword] == swagger_limit[keyword], keyword
    kind = next(param for param in listing["parameters"] if param["name"] == "type")
    assert kind["schema"] == {"type": "string", "enum": ["income", "expense"]}
    (item_id,) = document["paths"]["/transactions/{transaction_id}"]["parameters"]
    assert item_id == {
        "in": "path", "name": "transaction_id", "description": "The transaction's id", "required": True,
        "schema": {"type": "integer"},
    }  # fmt: skip


def test_responses_carry_their_schema_as_json_content_and_their_headers(document):
    create = operations(document)["post_transaction_collection"]["responses"]

    assert create["201"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/TransactionPublic"}}
    }
    assert create["503"]["headers"] == {
        "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
    }
    assert "content" not in operations(document)["delete_transaction_item"]["responses"]["204"]


def test_the_csv_export_answers_csv_and_its_errors_json(document):
    export = operations(document)["get_transaction_export"]["responses"]

    assert export["200"]["content"] == {"text/csv": {"schema": {"type": "string"}}}
    assert list(export["400"]["content"]) == ["application/json"]


def test_a_form_upload_becomes_a_multipart_request_body(document):
    upload = operations(document)["post_transaction_import"]

    assert "parameters" not in upload
    assert upload["requestBody"] == {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The CSV (multipart)"}
                    },
                    "required": ["file"],
                }
            }
        },
        "required": True,
    }


def test_the_document_is_converted_once_per_app(monkeypatch):
    calls = []
    monkeypatch.setattr(openapi, "convert", lambda swagger: calls.append(swagger) or convert(swagger))
    app = Flask(__name__)
    api.init_app(app)
    http = app.test_client()

    first, second = http.get("/openapi.json"), http.get("/openapi.json")

    assert first.data == second.data
    assert len(calls) == 1


# --- what the converter refuses rather than drop -------------------------------------------------


def _minimal(**changes) -> dict:
    document = {
        "swagger": "2.0",
        "basePath": "/",
        "info": {"title": "probe", "version": "1"},
        "paths": {"/probe": {"post": {"operationId": "probe", "responses": {"200": {"description": "ok"}}}}},
    }
    document.update(changes)
    return document


def test_a_minimal_document_converts_and_validates():
    converted = convert(_minimal(host="api.example.com", schemes=["https"]))

    validate_document(converted, cls=OpenAPIV30SpecValidator)
    assert converted["servers"] == [{"url": "https://api.example.com"}]
    assert converted["paths"]["/probe"]["post"]["responses"] == {"200": {"description": "ok"}}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"swagger": "3.0"}, "not a Swagger 2.0 document", id="not-swagger-2"),
        pytest.param({"definitions": {"A": {"discriminator": "kind"}}}, "discriminator", id="discriminator"),
        pytest.param({"securityDefinitions": {"o": {"type": "oauth2", "flow": "implicit"}}}, "oauth2", id="oauth2"),
        pytest.param({"parameters": {"p": {"name": "p", "in": "query", "type": "string"}}}, "parameters", id="shared"),
    ],
)
def test_what_has_no_openapi_3_words_here_is_refused_naming_it(change, named):
    with pytest.raises(Unconvertible, match=named):
        convert(_minimal(**change))


def test_a_body_and_form_parameters_together_are_refused():
    document = _minimal()
    operation = document["paths"]["/probe"]["post"]
    operation["parameters"] = [
        {"name": "payload", "in": "body", "schema": {"type": "object"}},
        {"name": "file", "in": "formData", "type": "file"},
    ]

    with pytest.raises(Unconvertible, match="both a body parameter"):
        convert(document)


def test_converting_leaves_the_swagger_document_as_it_was(swagger):
    before = copy.deepcopy(swagger)

    convert(swagger)

    assert swagger == before
