"""Register an account and log in for a token."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from .. import db, metrics
from ..errors import ApiError
from ..schemas import Credentials, TokenPublic, UserPublic
from ..security import IssuedToken, hash_password, issue_token, verify_password
from ..store import login_failures, users
from . import limits
from .common import load_body, settings
from .docs import database_unavailable, error_model, model

ns = Namespace("auth", path="/", description="Accounts and tokens")
# Schemas are built once: building one per request costs more than using it.
_credentials = Credentials()
_token_public = TokenPublic()
_user_public = UserPublic()
credentials_model = model(ns, Credentials, for_input=True)
error = error_model(ns)


@ns.route("/register")
class Register(Resource):
    @ns.expect(credentials_model)
    @ns.response(201, "Account created", model(ns, UserPublic))
    @ns.response(400, "Invalid username or password", error)
    @ns.response(409, "Username already taken", error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    @database_unavailable(ns)
    @ns.response(429, limits.DOCUMENTED_429, error, headers=limits.RETRY_AFTER_HEADER)
    def post(self):
        """Create an account; usernames are unique whatever their letter case."""
        data = load_body(_credentials)
        username = data["username"]
        limits.enforce("register", account=limits.account_key(username))
        # The password is hashed without holding a connection: it is slow on purpose.
        db.release()
        password_hash = hash_password(data["password"])
        try:
            user = users.create_user(db.connection(), username=username, password_hash=password_hash)
        except users.UsernameTaken as exc:
            raise ApiError(409, "username_taken", "This username is already taken.") from exc
        return _user_public.dump(user), 201


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
        username = data["username"]
        limits.enforce("login", account=limits.account_key(username))
        user = users.find_user_by_username(db.connection(), username)
        check_password_attempt(
            username, user, data["password"],
            wrong="The username or password is wrong.",
            locked="Too many failed logins for this username; try again later.",
        )
        return token_body(issue_token(settings(), user["id"], user["token_version"]))


def check_password_attempt(username: str, user: dict | None, password: str, *, wrong: str, locked: str) -> None:
    """One password attempt for `username` (login, or confirming a password change or deletion).

    The attempt is counted toward the username's lockout before the password is checked, so
    parallel guesses cannot pass the limit, and a success clears the count. `user` is the row
    found on the request's connection (None for an unknown username, which is checked against a
    dummy hash in the same time). The slow check runs with the connection given back. Raises 429
    while the username is locked and 401 for a wrong password.
    """
    config = settings()
    locked_for = login_failures.begin_attempt(
        db.connection(),
        username=username,
        max_failures=config.login_max_failures,
        window=config.login_failure_window_seconds,
        lockout=config.login_lockout_seconds,
    )
    db.release()
    if locked_for:
        metrics.login_failed("locked")
        raise ApiError(429, "too_many_attempts", locked, headers={"Retry-After": str(locked_for)})
    if not verify_password(user["password_hash"] if user else None, password):
        metrics.login_failed("invalid_credentials")
        raise ApiError(401, "invalid_credentials", wrong)
    login_failures.clear_failures(db.connection(), username=username)


def token_body(issued: IssuedToken) -> dict:
    """The body that hands a client its new token."""
    return _token_public.dump({"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in})
