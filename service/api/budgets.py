"""Monthly budgets per category, with what was spent against them."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import budgets
from ..schemas import BudgetCreate, BudgetList, BudgetMonthQuery, BudgetPublic, BudgetStatus, BudgetUpdate
from .common import (
    UserResource,
    accepts_json,
    accepts_query,
    responds,
    settings,
    user_item_route,
    user_route,
    with_currency,
)
from .docs import refusal

ns = Namespace("budgets", path="/", description="The logged-in user's monthly budgets per category")


@user_route(ns, "/budgets")
class BudgetCollection(UserResource):
    @accepts_query(ns, BudgetMonthQuery, invalid="Invalid month")
    @responds(ns, 200, "Every budget by category, with the month's spending", BudgetList)
    def get(self, query: dict):
        """List the budgets with what was spent in a month (the current one by default)."""
        status = budgets.month_status(
            db.connection(), user_id=g.user_id, month=query.get("month"), timezone=settings().timezone
        )
        return with_currency({**status, "items": [with_currency(item) for item in status["items"]]})

    @accepts_json(ns, BudgetCreate, invalid="Invalid budget")
    @responds(ns, 201, "Created; Location names it", BudgetPublic)
    @refusal(
        ns, 409, "A budget for this category exists (budget_exists), or 1,000 do (too_many_budgets)",
        "budget_exists", "too_many_budgets",
    )
    def post(self, data: dict):
        """Set a monthly budget for a category."""
        budget = budgets.create(db.connection(), user_id=g.user_id, data=data)
        return with_currency(budget), {"Location": f"/budgets/{budget['id']}"}


@user_item_route(ns, "/budgets", "budget")
class BudgetItem(UserResource):
    @accepts_query(ns, BudgetMonthQuery, invalid="Invalid month")
    @responds(ns, 200, "The budget with the month's spending", BudgetStatus)
    def get(self, query: dict, budget_id: int):
        """Read one budget with what was spent in a month (the current one by default)."""
        budget = budgets.get(
            db.connection(), user_id=g.user_id, budget_id=budget_id, month=query.get("month"),
            timezone=settings().timezone,
        )
        return with_currency(budget)

    @accepts_json(ns, BudgetUpdate, invalid="Invalid change")
    @responds(ns, 200, "The changed budget", BudgetPublic)
    @refusal(ns, 409, "Another budget has this category (budget_exists)", "budget_exists")
    def patch(self, changes: dict, budget_id: int):
        """Change a budget's category or amount."""
        return with_currency(budgets.update(db.connection(), user_id=g.user_id, budget_id=budget_id, changes=changes))

    @ns.response(204, "Deleted")
    def delete(self, budget_id: int):
        """Delete a budget."""
        budgets.delete(db.connection(), user_id=g.user_id, budget_id=budget_id)
        return None, 204
