"""Register a user and log in for a token."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from .. import db
from ..core import rate_limits, users
from ..schemas import Credentials, TokenPublic, UserPublic
from ..security import IssuedToken
from . import limits
from .common import load_body, settings
from .docs import database_unavailable, error_model, model

ns = Namespace("auth", path="/", description="Registration and tokens")
# Schemas are built once: building one per request costs more than using it.
_credentials = Credentials()
_token_public = TokenPublic()
_user_public = UserPublic()
credentials_model = model(ns, Credentials, for_input=True)
error = error_model(ns)


@ns.route("/register")
class Register(Resource):
    @ns.expect(credentials_model)
    @ns.response(201, "User created", model(ns, UserPublic))
    @ns.response(400, "Invalid username or password", error)
    @ns.response(409, "Username already taken", error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    @database_unavailable(ns)
    @ns.response(429, limits.DOCUMENTED_429, error, headers=limits.RETRY_AFTER_HEADER)
    def post(self):
        """Create a user; usernames are unique whatever their letter case."""
        data = load_body(_credentials)
        limits.enforce("register", account=rate_limits.account_key(data["username"]))
        return _user_public.dump(users.register(db, username=data["username"], password=data["password"])), 201


@ns.route("/login")
class Login(Resource):
    @ns.expect(credentials_model)
    @ns.response(200, "Logged in", model(ns, TokenPublic))
    @ns.response(400, "Malformed credentials", error)
    @ns.response(401, "Unknown username or wrong password", error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    @database_unavailable(ns)
    @ns.response(
        429,
        "Too many requests from this client or for this account, or too many failed logins for this"
        " username; retry after Retry-After seconds",
        error,
        headers=limits.RETRY_AFTER_HEADER,
    )
    def post(self):
        """Exchange a username and password for a bearer token."""
        data = load_body(_credentials)
        limits.enforce("login", account=rate_limits.account_key(data["username"]))
        return token_body(users.log_in(db, settings(), username=data["username"], password=data["password"]))


def token_body(issued: IssuedToken) -> dict:
    """The body that hands a client its new token."""
    return _token_public.dump({"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in})
