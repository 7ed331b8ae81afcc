"""Recurring transactions: rules whose occurrences become ordinary transactions, exactly once each."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import recurring
from ..schemas import RecurringCreate, RecurringList, RecurringPublic, RecurringUpdate
from .common import (
    UserResource,
    accepts_json,
    create_idempotently,
    idempotent,
    responds,
    settings,
    user_item_route,
    user_route,
    with_currency,
)
from .docs import refusal

ns = Namespace(
    "recurring-transactions", path="/",
    description="Rules of the logged-in user whose occurrences become transactions (dated the start of their day)",
)


@user_route(ns, "/recurring-transactions")
class RecurringCollection(UserResource):
    @responds(ns, 200, "Every rule, oldest first", RecurringList)
    def get(self):
        """List the recurring transactions."""
        return {"items": [with_currency(rule) for rule in recurring.list_all(db.connection(), user_id=g.user_id)]}

    @accepts_json(ns, RecurringCreate, invalid="Invalid rule, or an account that is not the user's")
    @responds(ns, 201, "Created, with its occurrences due by today made; Location names it", RecurringPublic)
    @idempotent(ns)
    @refusal(
        ns, 409, "An archived account (account_archived), or 200 rules (too_many_recurring)",
        "account_archived", "too_many_recurring",
    )
    def post(self, data: dict):
        """Create a rule; its occurrences from start_date to today become transactions at once."""

        def create(conn, **kwargs):
            return recurring.create(conn, timezone=settings().timezone, **kwargs)

        return create_idempotently(create, "/recurring-transactions", data)


@user_item_route(ns, "/recurring-transactions", "recurring")
class RecurringItem(UserResource):
    @responds(ns, 200, "The rule", RecurringPublic)
    def get(self, recurring_id: int):
        """Read one rule."""
        return with_currency(recurring.get(db.connection(), user_id=g.user_id, rule_id=recurring_id))

    @accepts_json(ns, RecurringUpdate, invalid="Invalid change")
    @responds(ns, 200, "The changed rule, with its occurrences due by today made", RecurringPublic)
    @refusal(ns, 409, "An archived account (account_archived)", "account_archived")
    def patch(self, changes: dict, recurring_id: int):
        """Change a rule: it applies to the occurrences after the last one made."""
        changed = recurring.update(
            db.connection(), user_id=g.user_id, rule_id=recurring_id, changes=changes, timezone=settings().timezone
        )
        return with_currency(changed)

    @ns.response(204, "Deleted")
    def delete(self, recurring_id: int):
        """Stop a rule; the transactions it made stay as they are."""
        recurring.delete(db.connection(), user_id=g.user_id, rule_id=recurring_id)
        return None, 204
