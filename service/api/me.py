"""The logged-in user: log out, change the password, delete the user and all their data."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import tokens, users
from ..schemas import PasswordChange, TokenPublic, UserDeletion
from .auth import token_body
from .common import UserResource, load_body, settings
from .docs import authenticated, error_model, model

ns = Namespace("me", path="/", description="The logged-in user's session, password and deletion")
# Schemas are built once: building one per request costs more than using it.
_user_deletion = UserDeletion()
_password_change = PasswordChange()
error = error_model(ns)
REFUSED_401 = "Wrong password, or a missing, invalid, expired or revoked token"
LOCKED = "Too many wrong passwords for this username (logins included); see Retry-After"
RETRY_AFTER = {"Retry-After": {"type": "integer", "description": "Seconds until the username is unlocked."}}


@ns.route("/logout")
@authenticated(ns)
class Logout(UserResource):
    @ns.response(204, "Logged out: this token is refused from now on, by every worker and replica")
    def post(self):
        """Revoke the token this request carries; the user's other tokens stay valid."""
        tokens.log_out(db.connection(), g.token_claims)
        return None, 204


@ns.route("/password")
@authenticated(ns)
class Password(UserResource):
    @ns.expect(model(ns, PasswordChange, for_input=True))
    @ns.response(200, "Changed; every earlier token of the user is revoked: use this new one", model(ns, TokenPublic))
    @ns.response(400, "A field missing, unknown or invalid; a new password as at registration, not the current", error)
    @ns.response(401, REFUSED_401, error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    @ns.response(429, LOCKED, error, headers=RETRY_AFTER)
    def post(self):
        """Change the password (the current one confirms it) and revoke every earlier token."""
        data = load_body(_password_change)
        issued = users.change_password(
            db, settings(), user_id=g.user_id, token_version=g.token_claims["ver"],
            current=data["current_password"], new=data["new_password"],
        )
        return token_body(issued)


@ns.route("/me")
@authenticated(ns)
class Me(UserResource):
    @ns.expect(model(ns, UserDeletion, for_input=True))
    @ns.response(204, "Deleted, with every transaction and total of the user; their tokens are refused")
    @ns.response(400, "The password missing or invalid, or an unknown field", error)
    @ns.response(401, REFUSED_401, error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    @ns.response(429, LOCKED, error, headers=RETRY_AFTER)
    def delete(self):
        """Delete the user and all of their data, for good; the password confirms it."""
        data = load_body(_user_deletion)
        users.delete(db, settings(), user_id=g.user_id, token_version=g.token_claims["ver"], password=data["password"])
        return None, 204
