"""Personal access tokens: make one (its secret shown once), list them, delete one."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import access_tokens
from ..schemas import PersonalTokenCreate, PersonalTokenIssued, PersonalTokenList
from .common import UserResource, accepts_json, login_token_only, responds, user_item_route, user_route
from .docs import refusal

ns = Namespace("tokens", path="/", description="The logged-in user's personal access tokens, for scripts")


@user_route(ns, "/tokens")
class TokenCollection(UserResource):
    @responds(ns, 200, "Every token of the user, oldest first, expired ones too; never a secret", PersonalTokenList)
    def get(self):
        """List the personal access tokens (any token may, a personal one included)."""
        return {"items": access_tokens.list_all(db.connection(), user_id=g.user_id)}

    @login_token_only(ns)
    @accepts_json(ns, PersonalTokenCreate, invalid="Invalid name, scope or expires_in_days, or an unknown field")
    @responds(ns, 201, "Created; `token` is its secret, shown only here; Location names it", PersonalTokenIssued)
    @refusal(ns, 409, f"The user has {access_tokens.MAX_TOKENS} unexpired tokens (too_many_tokens)", "too_many_tokens")
    def post(self, data: dict):
        """Make a personal access token: it authenticates like a login token, within its scope,
        until it expires or is deleted. A retry makes another token (no Idempotency-Key: the
        secret is never stored, so an answer could not be replayed)."""
        token = access_tokens.create(db.connection(), user_id=g.user_id, **data)
        return token, {"Location": f"/tokens/{token['id']}"}


@user_item_route(ns, "/tokens", "token")
class TokenItem(UserResource):
    @login_token_only(ns)
    @ns.response(204, "Deleted: the token is refused from the next request on, by every worker and replica")
    def delete(self, token_id: int):
        """Delete (revoke) a personal access token."""
        access_tokens.delete(db.connection(), user_id=g.user_id, token_id=token_id)
        return None, 204
