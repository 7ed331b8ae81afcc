"""The flask-restx Api: every namespace assembled, every error in the JSON envelope."""

from __future__ import annotations

from flask import Flask
from flask_restx import Api

from ..errors import response_for
from . import (
    access_tokens,
    accounts,
    analytics,
    auth,
    budgets,
    categories,
    events,
    health,
    me,
    openapi,
    recurring,
    transactions,
    transfers,
    webhooks,
)
from .docs import AUTHORIZATIONS

NAMESPACES = (
    auth.ns, me.ns, accounts.ns, transactions.ns, transfers.ns, recurring.ns, budgets.ns, analytics.ns, categories.ns,
    events.ns, webhooks.ns, access_tokens.ns, health.ns,
)


class JsonApi(Api):
    """An Api whose errors, raised or routing ones, all use the service's envelope."""

    def handle_error(self, e):
        return response_for(e)


def init_app(app: Flask) -> None:
    api = JsonApi(
        app,
        title="Personal finance API",
        version="1.0",
        description="Income, expenses and analytics for the people of one tenant.",
        doc="/docs",
        authorizations=AUTHORIZATIONS,
        catch_all_404s=True,
    )
    for namespace in NAMESPACES:
        api.add_namespace(namespace)
    openapi.init_app(app, api)
