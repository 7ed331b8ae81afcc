"""Money accounts: create, list with balances, read, change, delete."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import accounts
from ..schemas import AccountCreate, AccountList, AccountListQuery, AccountPublic, AccountUpdate
from .common import UserResource, accepts_json, accepts_query, responds, user_item_route, user_route, with_currency
from .docs import refusal

ns = Namespace("accounts", path="/", description="The logged-in user's money accounts and their balances")


@user_route(ns, "/accounts")
class AccountCollection(UserResource):
    @accepts_query(ns, AccountListQuery, invalid="Invalid include_archived")
    @responds(ns, 200, "The accounts, the default first, then by name", AccountList)
    def get(self, query: dict):
        """List the accounts that are not archived (all with include_archived=true), with their balances."""
        items, total = accounts.list_all(db.connection(), user_id=g.user_id, include_archived=query["include_archived"])
        return {"items": [with_currency(item) for item in items], "total_balance": total}

    @accepts_json(ns, AccountCreate, invalid="Invalid account")
    @responds(ns, 201, "Created; Location names it", AccountPublic)
    @refusal(
        ns, 409, "An account of this name exists (account_exists), or 1,000 do (too_many_accounts)",
        "account_exists", "too_many_accounts",
    )
    def post(self, data: dict):
        """Open an account."""
        account = accounts.create(db.connection(), user_id=g.user_id, data=data)
        return with_currency(account), {"Location": f"/accounts/{account['id']}"}


@user_item_route(ns, "/accounts", "account")
class AccountItem(UserResource):
    @responds(ns, 200, "The account", AccountPublic)
    def get(self, account_id: int):
        """Read one account with its balance."""
        return with_currency(accounts.get(db.connection(), user_id=g.user_id, account_id=account_id))

    @accepts_json(ns, AccountUpdate, invalid="Invalid change")
    @responds(ns, 200, "The changed account", AccountPublic)
    @refusal(
        ns, 409, "The name is taken (account_exists), or the default would be archived (account_is_default)",
        "account_exists", "account_is_default",
    )
    def patch(self, changes: dict, account_id: int):
        """Rename, change the kind, archive or unarchive, or make it the default account."""
        changed = accounts.update(db.connection(), user_id=g.user_id, account_id=account_id, changes=changes)
        return with_currency(changed)

    @ns.response(204, "Deleted")
    @refusal(
        ns, 409, "The default account, or one that records or recurring rules use (account_in_use)", "account_in_use"
    )
    def delete(self, account_id: int):
        """Delete an account that nothing refers to (archive it otherwise)."""
        accounts.delete(db.connection(), user_id=g.user_id, account_id=account_id)
        return None, 204
