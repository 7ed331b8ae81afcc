"""What every resource shares: settings, loading requests and dumping responses (documented as they go), the
authentication check."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping

from flask import current_app, g, request
from flask_restx import Namespace, Resource
from marshmallow import Schema, ValidationError

from .. import db
from ..config import Settings
from ..core import idempotency, tokens
from ..core.errors import Forbidden, TokenRefused
from ..errors import ApiError
from ..schemas import MAX_ID, parse_json_number
from .docs import authenticated, model, query_params, refusal

TOKEN_HEADER = "x-access-token"  # noqa: S105 - a header name
# The methods a personal access token of scope `read` may use.
READ_METHODS = frozenset({"GET", "HEAD"})
# The attribute login_token_only sets on a method (require_user reads it).
_LOGIN_TOKEN_ONLY = "login_token_only"  # noqa: S105 - an attribute's name
LOGIN_TOKEN_REQUIRED = "A personal access token may not do this (login_token_required): use a login token"  # noqa: S105
INSUFFICIENT_SCOPE = "A personal access token of scope read may only read (insufficient_scope)"


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


def accepts_json(ns: Namespace, schema: type[Schema], *, invalid: str) -> Callable:
    """Decorator: the method takes a JSON body of `schema`, validated and passed as its first
    argument; documented with the 400 its validation answers (`invalid` says when) and the 413 and
    415 of any body."""
    refusals = {
        400: (invalid, "validation_error", "malformed_json"),
        413: ("Larger than 1 MiB", "payload_too_large"),
        415: ("The body is not JSON", "unsupported_media_type"),
    }
    return _accepts(ns, schema, load_body, refusals, expect=[model(ns, schema, for_input=True)])


def accepts_query(ns: Namespace, schema: type[Schema], *, invalid: str) -> Callable:
    """Decorator: the method takes the query parameters of `schema`, validated and passed as its
    first argument; documented with the 400 their validation answers (`invalid` says when)."""
    return _accepts(ns, schema, load_query, {400: (invalid, "validation_error")}, params=query_params(schema))


def responds(ns: Namespace, status: int, description: str, schema: type[Schema]) -> Callable:
    """Decorator: the method returns a body (or a body and headers) that is dumped with `schema` and
    answered with `status`; documented so."""
    dumper = schema()  # built once: building one per request costs more than using it

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def dumped(*args, **kwargs):
            result = method(*args, **kwargs)
            body, headers = result if isinstance(result, tuple) else (result, {})
            return dumper.dump(body), status, headers

        return ns.response(status, description, model(ns, schema))(dumped)

    return decorate


def _accepts(
    ns: Namespace, schema: type[Schema], load: Callable, refusals: dict[int, tuple[str, ...]], **doc
) -> Callable:
    loader = schema()  # built once: building one per request costs more than using it

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def loaded(self, *args, **kwargs):
            return method(self, load(loader), *args, **kwargs)

        for status, (why, *codes) in refusals.items():
            loaded = refusal(ns, status, why, *codes)(loaded)
        return ns.doc(**doc)(loaded)

    return decorate


def with_currency(row: dict) -> dict:
    """A record as its Public schema shows it: with the tenant's currency (every amount is in it)."""
    return {**row, "currency": settings().currency}


def idempotent(ns: Namespace) -> Callable:
    """Decorator: the create honours an Idempotency-Key (core.idempotency); documented with the 422
    of a key reused with another body."""
    header = {
        "in": "header",
        "type": "string",
        "description": "Retries with the same key and body replay the first response.",
        "pattern": idempotency.KEY.pattern,
    }

    def decorate(method: Callable) -> Callable:
        method = refusal(
            ns, 422,
            "Idempotency-Key reused with a different body (idempotency_key_reused), or more database time than one"
            " request may use (request_too_expensive)",
            "idempotency_key_reused", "request_too_expensive",
        )(method)
        return ns.doc(params={"Idempotency-Key": header})(method)

    return decorate


def create_idempotently(create: Callable[..., tuple[dict, bool]], collection: str, data: dict) -> tuple[dict, dict]:
    """Run a domain create of the user's with the request's Idempotency-Key; return the record and
    the 201's headers: where it is, and whether this answer replays an earlier one."""
    key = request.headers.get("Idempotency-Key")
    row, replayed = create(db.connection(), user_id=g.user_id, data=data, idempotency_key=key)
    headers = {"Location": f"{collection}/{row['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return with_currency(row), headers


def _presented_token() -> str | None:
    token = request.headers.get(TOKEN_HEADER)
    if token:
        return token.strip()
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def login_token_only(ns: Namespace) -> Callable:
    """Decorator: the method needs a login token; any personal access token, whatever its scope, is
    refused with 403 `login_token_required` (by require_user, which reads the mark). For what would
    let a stolen token outlive its revocation or take the account: making or deleting tokens,
    webhooks, the password, deleting the user, logging out (a personal access token is revoked by
    DELETE /tokens/{token_id}). Put it above the method's other decorators: the mark is an
    attribute of the function, which a decorator without functools.wraps above it would drop."""

    def decorate(method: Callable) -> Callable:
        setattr(method, _LOGIN_TOKEN_ONLY, True)
        return refusal(ns, 403, LOGIN_TOKEN_REQUIRED, "login_token_required")(method)

    return decorate


def _check_scope(method: Callable, claims: dict) -> None:
    """The one place a token's scope is enforced: a personal access token never reaches a
    login-only method, and one of scope read only reads."""
    if claims["pat"] is None:
        return
    if getattr(method, _LOGIN_TOKEN_ONLY, False):
        raise Forbidden(
            "login_token_required",
            "A personal access token may not do this; log in (POST /login) and use that token.",
        )
    if claims["scope"] != tokens.READ_WRITE and request.method not in READ_METHODS:
        raise Forbidden("insufficient_scope", "This personal access token may only read (scope read).")


def require_user(method: Callable) -> Callable:
    """Let the request through only with a valid, unrevoked token of this tenant for an existing
    user, that may do what the request asks (`_check_scope`); sets g.user_id and g.token_claims.
    Costs one database statement (core.tokens)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        token = _presented_token()
        if token is None:
            raise TokenRefused(
                "authentication_required",
                f"Send a token in the {TOKEN_HEADER} header or as Authorization: Bearer.",
            )
        claims = tokens.authenticate(db, settings(), token)
        g.user_id = claims["sub"]
        g.token_claims = claims
        _check_scope(method, claims)
        return method(*args, **kwargs)

    return wrapper


def user_route(ns: Namespace, path: str) -> Callable:
    """Class decorator: route `path` to a UserResource, documented as needing a token, and each of
    its methods that writes as refused to a personal access token of scope read (403)."""

    def decorate(cls: type) -> type:
        for name in getattr(cls, "methods", None) or ():
            method = getattr(cls, name.lower())
            if name not in READ_METHODS and not getattr(method, _LOGIN_TOKEN_ONLY, False):
                refusal(ns, 403, INSUFFICIENT_SCOPE, "insufficient_scope")(method)
        return ns.route(path)(authenticated(ns)(cls))

    return decorate


def user_item_route(ns: Namespace, collection: str, record: str, below: str = "") -> Callable:
    """Class decorator: route `collection/<id>` (and `below` it, such as /deliveries) to a
    UserResource for one `record` of the user, its id a path parameter `<record>_id` and another
    user's record (or none) documented as 404."""
    # Ids are PostgreSQL bigints; a larger number in the path is simply not found.
    path = f"{collection}/<int(max={MAX_ID}):{record}_id>{below}"

    def decorate(cls: type) -> type:
        cls = refusal(ns, 404, f"No such {record} of this user", "not_found")(cls)
        cls = ns.param(f"{record}_id", f"The {record}'s id")(cls)
        return user_route(ns, path)(cls)

    return decorate


class UserResource(Resource):
    """A resource whose every method needs a logged-in user (in g.user_id)."""

    method_decorators = [require_user]
