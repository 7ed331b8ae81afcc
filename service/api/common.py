"""What every resource shares: settings, request parsing and validation, the authentication check."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping

from flask import current_app, g, request
from flask_restx import Resource
from marshmallow import Schema, ValidationError

from .. import db
from ..config import Settings
from ..core import tokens
from ..core.errors import Unauthenticated
from ..errors import ApiError
from ..schemas import parse_json_number

TOKEN_HEADER = "x-access-token"  # noqa: S105 - a header name


def settings() -> Settings:
    return current_app.extensions["settings"]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def json_body() -> object:
    """Parse the request body as JSON with exact decimals; refuse anything else with a 4xx."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw, parse_float=parse_json_number, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", "The request body is not valid JSON.") from exc


def validation_error(messages: dict | list) -> ApiError:
    fields = messages if isinstance(messages, dict) else {"_schema": messages}
    return ApiError(400, "validation_error", "The request is not valid.", fields=fields)


def load(schema: Schema, data: object) -> dict:
    """Validate data with a marshmallow schema; a failure becomes a 400 with per-field messages."""
    if not isinstance(data, Mapping):
        raise validation_error(["The request body must be a JSON object."])
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise validation_error(exc.messages) from exc


def load_body(schema: Schema) -> dict:
    return load(schema, json_body())


def load_query(schema: Schema) -> dict:
    """Validate the query string; an empty parameter (`?q=`) counts as absent, as forms send them."""
    return load(schema, {name: value for name, value in request.args.items() if value != ""})


def _presented_token() -> str | None:
    token = request.headers.get(TOKEN_HEADER)
    if token:
        return token.strip()
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def require_user(method: Callable) -> Callable:
    """Let the request through only with a valid, unrevoked token of this tenant for an existing
    user; sets g.user_id and g.token_claims. Costs one database query (core.tokens)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        token = _presented_token()
        if token is None:
            raise Unauthenticated(
                "authentication_required",
                f"Send a token in the {TOKEN_HEADER} header or as Authorization: Bearer.",
            )
        claims = tokens.authenticate(db.connection(), settings(), token)
        g.user_id = claims["sub"]
        g.token_claims = claims
        return method(*args, **kwargs)

    return wrapper


class UserResource(Resource):
    """A resource whose every method needs a logged-in user (in g.user_id)."""

    method_decorators = [require_user]
