"""The OpenAPI 3.0 document (`GET /openapi.json`), converted from the Swagger 2 document flask-restx
writes from the same resources and models (`/swagger.json`, itself derived from the marshmallow
schemas by docs.py), so the two never disagree and neither is written by hand. flask-restx writes
Swagger 2 only; code generators want OpenAPI 3.

The conversion is what OpenAPI 3.0 renamed or moved, nothing more: definitions become
components/schemas (every `$ref` follows), `x-nullable` becomes `nullable`, a body parameter
becomes the requestBody and form parameters its multipart schema, every other parameter's value
keywords move into its `schema`, a response's schema and example go under `content`,
securityDefinitions become components/securitySchemes (the `Authorization` header as an HTTP
bearer scheme), and basePath (and host) become the one server. What it does not know how to
convert it refuses, naming it, rather than leave out.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response
from flask_restx import Api

OPENAPI_VERSION = "3.0.3"
# The Flask endpoint of GET /openapi.json (Swagger UI reads it: service.api.JsonApi.specs_url).
ENDPOINT = "openapi"
JSON = "application/json"
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

# What a Swagger 2 parameter says about itself; every other keyword describes its value (its schema).
_PARAMETER_OWN = ("name", "in", "description", "required", "allowEmptyValue", "deprecated")
# Swagger 2's collectionFormat as OpenAPI 3's style and explode (query and header values).
_COLLECTION_FORMATS = {
    "csv": {"style": "form", "explode": False},
    "multi": {"style": "form", "explode": True},
    "ssv": {"style": "spaceDelimited", "explode": False},
    "pipes": {"style": "pipeDelimited", "explode": False},
}
# Keywords of a Swagger 2 schema whose value is a schema, or a list or map of schemas.
_SUBSCHEMA = ("items", "additionalProperties", "not")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
# Swagger 2 keywords with no OpenAPI 3 counterpart here; refused rather than dropped.
_UNCONVERTED_SCHEMA = ("discriminator", "xml")
_REFS = {"#/definitions/": "#/components/schemas/", "#/responses/": "#/components/responses/"}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


class Unconvertible(ValueError):
    """The Swagger 2 document says something this converter has no OpenAPI 3 words for."""


def _ref(ref: str) -> str:
    for old, new in _REFS.items():
        if ref.startswith(old):
            return new + ref[len(old) :]
    raise Unconvertible(f"$ref {ref!r}: only definitions and responses are converted")


def schema(swagger: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2 schema (a definition, a property, a parameter's value) as an OpenAPI 3.0 schema."""
    converted: dict[str, Any] = {}
    for key, value in swagger.items():
        if key in _UNCONVERTED_SCHEMA:
            raise Unconvertible(f"schema keyword {key!r}")
        if key == "$ref":
            converted[key] = _ref(value)
        elif key == "x-nullable":
            converted["nullable"] = value
        elif key == "type" and value == "file":
            converted.update(type="string", format="binary")
        elif key == "properties":
            converted[key] = {name: schema(prop) for name, prop in value.items()}
        elif key in _SUBSCHEMA and isinstance(value, dict):
            converted[key] = schema(value)
        elif key in _SUBSCHEMA_LISTS:
            converted[key] = [schema(item) for item in value]
        else:
            converted[key] = value
    return converted


def _split(param: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Swagger 2 parameter's own keywords, and its value's schema."""
    own = {key: value for key, value in param.items() if key in _PARAMETER_OWN}
    value = {key: value for key, value in param.items() if key not in _PARAMETER_OWN and key != "collectionFormat"}
    return own, schema(value)


def parameter(param: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2 path, query or header parameter as an OpenAPI 3 parameter."""
    if "$ref" in param:
        raise Unconvertible(f"parameter $ref {param['$ref']!r}")
    if param["in"] not in ("path", "query", "header"):
        raise Unconvertible(f"parameter {param['name']!r} in {param['in']!r}")
    own, value = _split(param)
    converted = {**own, "schema": value}
    if "collectionFormat" in param:
        if param["collectionFormat"] not in _COLLECTION_FORMATS:
            raise Unconvertible(f"parameter {param['name']!r}: collectionFormat {param['collectionFormat']!r}")
        converted.update(_COLLECTION_FORMATS[param["collectionFormat"]])
    if param["in"] == "path":
        converted["required"] = True
    return converted


def _request_body(body: dict | None, form: list[dict], consumes: list[str]) -> dict[str, Any] | None:
    """The body parameter, or the form parameters, as one requestBody."""
    if body is not None and form:
        raise Unconvertible(f"both a body parameter ({body['name']!r}) and form parameters")
    if body is not None:
        types = [media for media in consumes if media not in FORM_TYPES] or [JSON]
        converted: dict[str, Any] = {"content": {media: {"schema": schema(body["schema"])} for media in types}}
        if "description" in body:
            converted["description"] = body["description"]
        converted["required"] = bool(body.get("required", False))
        return converted
    if form:
        properties, required = {}, []
        for param in form:
            own, value = _split(param)
            if "description" in own:
                value["description"] = own["description"]
            properties[param["name"]] = value
            if own.get("required"):
                required.append(param["name"])
        form_schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            form_schema["required"] = required
        types = [media for media in consumes if media in FORM_TYPES] or [FORM_TYPES[0]]
        return {"content": {media: {"schema": form_schema} for media in types}, "required": bool(required)}
    return None


def _is_json(media: str) -> bool:
    return media == JSON or media.endswith("+json")


def response(status: str, swagger: dict[str, Any], produces: list[str]) -> dict[str, Any]:
    """A Swagger 2 response as an OpenAPI 3 one. A response with a schema is JSON (the service
    answers every body in JSON but the ones an operation produces in another type); a success
    without a schema, of an operation that produces another type, is that type as text (the CSV
    export); any other response without a schema has no body."""
    if "$ref" in swagger:
        return {"$ref": _ref(swagger["$ref"])}
    converted: dict[str, Any] = {"description": swagger.get("description", "")}
    if "headers" in swagger:
        converted["headers"] = {
            name: {
                **({"description": header["description"]} if "description" in header else {}),
                "schema": schema({key: value for key, value in header.items() if key != "description"}),
            }
            for name, header in swagger["headers"].items()
        }
    others = [media for media in produces if not _is_json(media)]
    if "schema" in swagger:
        types = [media for media in produces if _is_json(media)] or [JSON]
        converted["content"] = {media: {"schema": schema(swagger["schema"])} for media in types}
    elif others and status.startswith("2") and status != "204":
        converted["content"] = {media: {"schema": {"type": "string"}} for media in others}
    for media, example in swagger.get("examples", {}).items():
        if media not in converted.get("content", {}):
            raise Unconvertible(f"response {status}: an example of {media}, which it does not answer")
        converted["content"][media]["example"] = example
    return converted


def operation(swagger: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2 operation as an OpenAPI 3 one: its parameters split into parameters and requestBody."""
    converted = {
        key: value
        for key, value in swagger.items()
        if key not in ("parameters", "responses", "consumes", "produces", "schemes")
    }
    body = None
    form, params = [], []
    for param in swagger.get("parameters", []):
        if param.get("in") == "body":
            body = param
        elif param.get("in") == "formData":
            form.append(param)
        else:
            params.append(parameter(param))
    if params:
        converted["parameters"] = params
    consumes = swagger.get("consumes") or document.get("consumes") or [JSON]
    request_body = _request_body(body, form, consumes)
    if request_body is not None:
        converted["requestBody"] = request_body
    produces = swagger.get("produces") or document.get("produces") or [JSON]
    converted["responses"] = {
        str(status): response(str(status), answer, produces) for status, answer in swagger["responses"].items()
    }
    return converted


def security_scheme(name: str, swagger: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2 security definition as an OpenAPI 3 security scheme. Swagger 2 can say a bearer
    token only as an apiKey in the Authorization header; OpenAPI 3 says it as HTTP bearer."""
    described = {"description": swagger["description"]} if "description" in swagger else {}
    if swagger["type"] == "apiKey" and swagger["in"] == "header" and swagger["name"].lower() == "authorization":
        return {"type": "http", "scheme": "bearer", **described}
    if swagger["type"] == "apiKey":
        return {"type": "apiKey", "in": swagger["in"], "name": swagger["name"], **described}
    if swagger["type"] == "basic":
        return {"type": "http", "scheme": "basic", **described}
    raise Unconvertible(f"security definition {name!r} of type {swagger['type']!r}")


def _server(swagger: dict[str, Any]) -> dict[str, str]:
    """basePath (and host, when the document names one) as the one server; relative when no host."""
    base = swagger.get("basePath", "/")
    if "host" not in swagger:
        return {"url": base}
    scheme = (swagger.get("schemes") or ["https"])[0]
    return {"url": f"{scheme}://{swagger['host']}{base.rstrip('/')}"}


def convert(swagger: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 document as an OpenAPI 3.0.3 document."""
    if swagger.get("swagger") != "2.0":
        raise Unconvertible(f"not a Swagger 2.0 document: {sorted(swagger)[:5]}")
    if swagger.get("parameters"):
        raise Unconvertible("document-wide parameters")
    paths: dict[str, Any] = {}
    for path, item in swagger.get("paths", {}).items():
        converted: dict[str, Any] = {}
        for key, value in item.items():
            if key == "parameters":
                converted[key] = [parameter(param) for param in value]
            elif key in _METHODS:
                converted[key] = operation(value, swagger)
            else:
                converted[key] = value
        paths[path] = converted
    components: dict[str, Any] = {}
    if swagger.get("definitions"):
        components["schemas"] = {name: schema(definition) for name, definition in swagger["definitions"].items()}
    if swagger.get("responses"):
        produces = swagger.get("produces") or [JSON]
        components["responses"] = {
            name: response("default", answer, produces) for name, answer in swagger["responses"].items()
        }
    if swagger.get("securityDefinitions"):
        components["securitySchemes"] = {
            name: security_scheme(name, scheme) for name, scheme in swagger["securityDefinitions"].items()
        }
    document: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": swagger["info"], "servers": [_server(swagger)]}
    for key in ("tags", "security", "externalDocs"):
        if key in swagger:
            document[key] = swagger[key]
    document["paths"] = paths
    if components:
        document["components"] = components
    document.update({key: value for key, value in swagger.items() if key.startswith("x-")})
    return document


def init_app(app: Flask, api: Api) -> None:
    """Serve `GET /openapi.json`: the converted document, built on first request and kept (the
    Swagger document it comes from does not change while the app runs). Public, as /swagger.json."""
    kept: list[bytes] = []

    def openapi_json() -> Response:
        if not kept:
            kept.append(json.dumps(convert(api.__schema__)).encode())
        return app.response_class(kept[0], mimetype=JSON)

    app.add_url_rule("/openapi.json", ENDPOINT, openapi_json, methods=["GET"])
