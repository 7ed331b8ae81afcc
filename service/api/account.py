"""The logged-in user's own account: log out, change the password, delete the account."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..schemas import AccountDeletion, PasswordChange, TokenPublic
from ..security import LEEWAY_SECONDS, hash_password, issue_token
from ..store import tokens, users
from .auth import check_password_attempt, token_body
from .common import UserResource, load_body, settings, token_revoked, user_gone
from .docs import authenticated, error_model, model

ns = Namespace("account", path="/", description="The logged-in user's session, password and account")
# Schemas are built once: building one per request costs more than using it.
_account_deletion = AccountDeletion()
_password_change = PasswordChange()
error = error_model(ns)
REFUSED_401 = "Wrong password, or a missing, invalid, expired or revoked token"
LOCKED = "Too many wrong passwords for this username (logins included); see Retry-After"
RETRY_AFTER = {"Retry-After": {"type": "integer", "description": "Seconds until the username is unlocked."}}


def _check_password(password: str) -> dict:
    """Check the logged-in user's password like a login (it counts toward the same lockout).
    Returns the user's row, password hash included: never to be shown."""
    user = users.get_credentials(db.connection(), g.user_id)
    if user is None:  # deleted since the token was checked
        raise user_gone()
    check_password_attempt(
        user["username"], user, password,
        wrong="The password is wrong.",
        locked="Too many wrong passwords for this username; try again later.",
    )
    return user


@ns.route("/logout")
@authenticated(ns)
class Logout(UserResource):
    @ns.response(204, "Logged out: this token is refused from now on, by every worker and replica")
    def post(self):
        """Revoke the token this request carries; the user's other tokens stay valid."""
        claims = g.token_claims
        tokens.revoke(db.connection(), jti=claims["jti"], valid_until=float(claims["exp"]) + LEEWAY_SECONDS)
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
        user = _check_password(data["current_password"])
        db.release()  # hashing is slow on purpose: no connection is held meanwhile
        new_hash = hash_password(data["new_password"])
        version = users.change_password(
            db.connection(),
            user_id=g.user_id,
            token_version=g.token_claims["ver"],
            old_hash=user["password_hash"],
            new_hash=new_hash,
        )
        if version is None:  # another password change (or this token's revocation) came first
            raise token_revoked()
        return token_body(issue_token(settings(), g.user_id, version))


@ns.route("/me")
@authenticated(ns)
class Me(UserResource):
    @ns.expect(model(ns, AccountDeletion, for_input=True))
    @ns.response(204, "Deleted, with every transaction and total of the user; their tokens are refused")
    @ns.response(400, "The password missing or invalid, or an unknown field", error)
    @ns.response(401, REFUSED_401, error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    @ns.response(429, LOCKED, error, headers=RETRY_AFTER)
    def delete(self):
        """Delete the account and all of its data, for good; the password confirms it."""
        data = load_body(_account_deletion)
        _check_password(data["password"])
        if not users.delete_user(db.connection(), user_id=g.user_id, token_version=g.token_claims["ver"]):
            raise token_revoked()
        return None, 204
