"""The OpenAPI 3 document (/openapi.json) is the Swagger 2 document (/swagger.json) converted: valid,
complete, and saying the same things in OpenAPI 3's words."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import OpenAPIV30SpecValidator
from openapi_spec_validator import validate as validate_document

import service
from service import api, errors, schemas
from service.api import openapi
from service.api.common import UserResource
from service.api.openapi import Unconvertible, convert
from service.core import errors as domain_errors
from service.core.errors import DomainError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


@pytest.fixture(scope="module")
def app() -> Flask:
    """The service's Api on a bare Flask app: the documents touch neither settings nor database."""
    app = Flask(__name__)
    api.init_app(app, "probe")
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
    assert {key: schemes["token"][key] for key in ("type", "in", "name")} == {
        "type": "apiKey", "in": "header", "name": "x-access-token",
    }  # fmt: skip
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
    api.init_app(app, "probe")
    http = app.test_client()

    first, second = http.get("/openapi.json"), http.get("/openapi.json")

    assert first.data == second.data
    assert len(calls) == 1


# --- what Swagger UI shows: the tenant, the token as it comes, examples that work ------------------


def test_swagger_ui_shows_the_openapi_document_under_a_title_naming_the_tenant(app, document, swagger):
    page = app.test_client().get("/docs").get_data(as_text=True)

    (title,) = re.findall(r"<title>(.*?)</title>", page)
    (url,) = re.findall(r'url: "([^"]*)"', page)
    assert title == "Personal finance API — probe"
    assert url == "/openapi.json"
    assert document["info"]["title"] == swagger["info"]["title"] == title


def _needing_a_token(app: Flask) -> set[str]:
    """The paths, as the documents write them, of the resources that need a token (UserResource)."""
    return {
        re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if issubclass(getattr(app.view_functions[rule.endpoint], "view_class", object), UserResource)
    }


def test_the_token_as_it_comes_is_the_first_scheme_of_every_protected_operation(app, swagger, document):
    """Swagger UI's Authorize dialog offers the schemes in order; the first takes the token from
    POST /login as it is. In the OpenAPI 3 document /docs shows, `bearer` is HTTP bearer: Swagger UI
    adds "Bearer " itself, so a token pasted there works too."""
    for schemes in (swagger["securityDefinitions"], document["components"]["securitySchemes"]):
        name, scheme = next(iter(schemes.items()))
        assert name == "token"
        assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-access-token")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    protected = _needing_a_token(app)
    assert len(protected) > 15 and "/register" not in protected
    for which in (swagger, document):
        for operation_id, operation in operations(which).items():
            if operation["path"] in protected:
                assert operation["security"][0] == {"token": []}, operation_id
            else:
                assert "security" not in operation, operation_id


def _json_bodies(swagger: dict) -> dict[str, str]:
    """Each operation of the Swagger document that takes a JSON body, with its model's name."""
    return {
        operation_id: param["schema"]["$ref"].rpartition("/")[2]
        for operation_id, operation in operations(swagger).items()
        for param in operation.get("parameters", [])
        if param["in"] == "body"
    }


def test_every_json_request_body_has_an_example_its_own_schema_accepts(swagger, document):
    """Swagger UI's "Try it out" starts from the model's example; one the schema refused would fail
    as shown (the random category text Swagger UI made up from its pattern, before)."""
    bodies = _json_bodies(swagger)

    assert {"post_transaction_collection", "post_register", "post_transfer_collection"} <= set(bodies)
    for operation_id, name in bodies.items():
        definition = swagger["definitions"][name]
        example = definition["example"]
        assert set(definition.get("required", ())) <= set(example), operation_id
        for field, value in example.items():
            assert definition["properties"][field]["example"] == value, (name, field)
        getattr(schemas, name)().load(example)  # the schema the endpoint loads with: raises if refused
        assert document["components"]["schemas"][name]["example"] == example


def test_the_transaction_example_is_a_weekly_shop(swagger):
    example = swagger["definitions"]["TransactionCreate"]["example"]

    assert {key: example[key] for key in ("type", "amount", "category", "description")} == {
        "type": "expense", "amount": "42.50", "category": "groceries", "description": "Weekly shop",
    }  # fmt: skip
    assert schemas.TransactionCreate().load(example)["occurred_at"].tzinfo is not None
    assert "account_id" not in example  # the user's own ids are not known in advance


def _relayed_codes(function: ast.FunctionDef, kinds: dict[str, type[DomainError]]) -> dict[str, type]:
    """The parameters a function raises a domain error with as its code (quotas.make_room's `code`)."""
    params = {arg.arg for arg in function.args.args + function.args.kwonlyargs}
    return {
        call.args[0].id: kinds[_callee(call)]
        for call in ast.walk(function)
        if isinstance(call, ast.Call) and _callee(call) in kinds and call.args
        and isinstance(call.args[0], ast.Name) and call.args[0].id in params
    }  # fmt: skip


def _callee(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def _literal(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def answered_codes() -> dict[int, set[str]]:
    """Every code the service answers each status with, read from its source rather than typed
    again: each `ApiError(status, "code", ...)`, each domain error made as `Kind("code", ...)` (its
    status from errors.DOMAIN_STATUS), each `code="..."` given to a function that raises a domain
    error with it, and werkzeug's own errors (errors.HTTP_CODES)."""
    kinds = {
        name: kind for name, kind in vars(domain_errors).items()
        if isinstance(kind, type) and issubclass(kind, DomainError) and errors.domain_status(kind) is not None
    }  # fmt: skip
    trees = [ast.parse(path.read_text()) for path in sorted(Path(service.__file__).parent.rglob("*.py"))]
    relays = {
        node.name: relayed
        for tree in trees for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and (relayed := _relayed_codes(node, kinds))
    }  # fmt: skip
    answered: dict[int, set[str]] = {status: {code} for status, code in errors.HTTP_CODES.items()}

    def add(status: object, code: object) -> None:
        if isinstance(status, int) and isinstance(code, str):
            answered.setdefault(status, set()).add(code)

    for tree in trees:
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            name = _callee(call)
            if name == "ApiError" and len(call.args) >= 2:
                add(_literal(call.args[0]), _literal(call.args[1]))
            elif name in kinds and call.args:
                add(errors.domain_status(kinds[name]), _literal(call.args[0]))
            for keyword in call.keywords if name in relays else ():
                if keyword.arg in relays[name]:
                    add(errors.domain_status(relays[name][keyword.arg]), _literal(keyword.value))
    return answered


def test_the_codes_are_read_from_every_way_the_service_answers_an_error():
    answered = answered_codes()

    assert {"not_found", "payload_too_large", "unsupported_media_type"} <= answered[404] | answered[413] | answered[415]
    assert {"authentication_required", "invalid_token", "invalid_credentials"} <= answered[401]
    assert {"account_exists", "too_many_accounts", "too_many_webhooks"} <= answered[409]  # made_room's code=
    assert {"busy", "service_unavailable", "migrations_pending"} <= answered[503]
    assert {"rate_limited", "too_many_attempts"} <= answered[429]
    assert "validation_error" not in answered[401] | answered[413] | answered[415] | answered[429] | answered[503]


def _example_code(document: dict, response: dict) -> str | None:
    """The code of an error response's example, where each document says it."""
    if "swagger" in document:
        example = response.get("examples", {}).get("application/json")
    else:
        example = response.get("content", {}).get("application/json", {}).get("example")
    return example["error"]["code"] if example else None


@pytest.mark.parametrize("which", ["swagger", "document"])
def test_every_error_response_shows_a_code_the_service_answers_that_status_with(which, request):
    document = request.getfixturevalue(which)
    answered = answered_codes()
    shown = set()
    for operation_id, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            code = _example_code(document, response)
            assert code in answered[int(status)], (operation_id, status, code)
            shown.add(code)
    assert len(shown) > 20
    assert "validation_error" in shown


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


def test_a_response_example_goes_with_its_schema_and_one_of_a_type_not_answered_is_refused():
    example = {"error": {"code": "not_found", "message": "No such probe"}}
    document = _minimal()
    document["paths"]["/probe"]["post"]["responses"]["404"] = {
        "description": "No such probe", "schema": {"type": "object"}, "examples": {"application/json": example},
    }  # fmt: skip

    converted = convert(document)["paths"]["/probe"]["post"]["responses"]["404"]

    assert converted["content"] == {"application/json": {"schema": {"type": "object"}, "example": example}}
    document["paths"]["/probe"]["post"]["responses"]["404"]["examples"] = {"text/csv": "id\n"}
    with pytest.raises(Unconvertible, match="text/csv"):
        convert(document)


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
