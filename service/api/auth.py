"""Register a user and log in for a token."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from .. import db
from ..core import rate_limits, users
from ..schemas import Credentials, TokenPublic, UserPublic
from ..security import IssuedToken
from . import limits
from .common import accepts_json, responds, settings
from .docs import refusal

# The tags and texts below are part of the published Swagger document (generated clients name
# their classes after them): they keep the original wording.
ns = Namespace("auth", path="/", description="Accounts and tokens")


@ns.route("/register")
class Register(Resource):
    @accepts_json(ns, Credentials, invalid="Invalid username or password")
    @responds(ns, 201, "Account created", UserPublic)
    @refusal(ns, 409, "Username already taken (username_taken)", "username_taken")
    @limits.documented(ns)
    def post(self, data: dict):
        """Create an account; usernames are unique whatever their letter case."""
        limits.enforce("register", account=rate_limits.account_key(data["username"]))
        return users.register(db, username=data["username"], password=data["password"])


@ns.route("/login")
class Login(Resource):
    @accepts_json(ns, Credentials, invalid="Malformed credentials")
    @responds(ns, 200, "Logged in", TokenPublic)
    @refusal(ns, 401, "Unknown username or wrong password (invalid_credentials)", "invalid_credentials")
    @limits.documented(
        ns, also=", or too many failed logins for this username (too_many_attempts)", codes=("too_many_attempts",)
    )
    def post(self, data: dict):
        """Exchange a username and password for a bearer token."""
        limits.enforce("login", account=rate_limits.account_key(data["username"]))
        return token_body(users.log_in(db, settings(), username=data["username"], password=data["password"]))


def token_body(issued: IssuedToken) -> dict:
    """The body that hands a client its new token."""
    return {"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}
