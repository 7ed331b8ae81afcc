"""The logged-in user: log out, change the password, delete the user and all their data."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import tokens, users
from ..schemas import AccountDeletion, PasswordChange, TokenPublic
from .auth import token_body
from .common import UserResource, accepts_json, login_token_only, responds, settings, user_route
from .docs import refusal

# Tagged "account" in the published Swagger document, as it always was (generated clients name
# their classes after tags); in the code, "account" is kept for the money accounts to come.
ns = Namespace("account", path="/", description="The logged-in user's session, password and account")
REFUSED_401 = "Wrong password, or a missing, invalid, expired or revoked token"
LOCKED = "Too many wrong passwords for this username (logins included); see Retry-After"
UNLOCKS_AFTER = {"Retry-After": {"type": "integer", "description": "Seconds until the username is unlocked."}}


@user_route(ns, "/logout")
class Logout(UserResource):
    # A personal access token is revoked by DELETE /tokens/{token_id}, with a login token.
    @login_token_only(ns)
    @ns.response(204, "Logged out: this token is refused from now on, by every worker and replica")
    def post(self):
        """Revoke the token this request carries; the user's other tokens stay valid."""
        tokens.log_out(db.connection(), g.token_claims)
        return None, 204


@user_route(ns, "/password")
class Password(UserResource):
    @login_token_only(ns)
    @accepts_json(
        ns, PasswordChange,
        invalid="A field missing, unknown or invalid; a new password as at registration, not the current",
    )
    @responds(ns, 200, "Changed; every earlier login token of the user is revoked: use this new one", TokenPublic)
    @refusal(ns, 401, REFUSED_401, "invalid_credentials", "authentication_required", "invalid_token")
    @refusal(ns, 429, LOCKED, "too_many_attempts", headers=UNLOCKS_AFTER)
    def post(self, data: dict):
        """Change the password (the current one confirms it) and revoke every earlier login token
        (personal access tokens stay valid: delete them with DELETE /tokens/{token_id})."""
        issued = users.change_password(
            db, settings(), user_id=g.user_id, token_version=g.token_claims["ver"],
            current=data["current_password"], new=data["new_password"],
        )
        return token_body(issued)


@user_route(ns, "/me")
class Me(UserResource):
    @login_token_only(ns)
    @accepts_json(ns, AccountDeletion, invalid="The password missing or invalid, or an unknown field")
    @ns.response(204, "Deleted, with every record and total of the user; their tokens, personal ones too, are refused")
    @refusal(ns, 401, REFUSED_401, "invalid_credentials", "authentication_required", "invalid_token")
    @refusal(ns, 429, LOCKED, "too_many_attempts", headers=UNLOCKS_AFTER)
    def delete(self, data: dict):
        """Delete the account and all of its data, for good; the password confirms it."""
        users.delete(db, settings(), user_id=g.user_id, token_version=g.token_claims["ver"], password=data["password"])
        return None, 204
