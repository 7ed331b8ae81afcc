"""The flask-restx Api: every namespace assembled, every error in the JSON envelope."""

from __future__ import annotations

from flask import Flask, url_for
from flask_restx import Api
from flask_restx.swagger import Swagger

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
from .docs import AUTHORIZATIONS, CODES, error_example

NAMESPACES = (
    auth.ns, me.ns, accounts.ns, transactions.ns, transfers.ns, recurring.ns, budgets.ns, analytics.ns, categories.ns,
    events.ns, webhooks.ns, access_tokens.ns, health.ns,
)


TITLE = "Personal finance API"


class ErrorExamples(Swagger):
    """flask-restx's Swagger 2 writer, which also gives each error response the example of its first
    code (docs.refusal): Swagger 2 says a response's example under `examples`, by media type."""

    def responses_for(self, doc, method):
        responses = super().responses_for(doc, method)
        for level in (doc, doc[method]):  # the class's, then the method's, as flask-restx reads them
            for status, response in level.get("responses", {}).items():
                kwargs = response[2] if isinstance(response, tuple) and len(response) == 3 else {}
                if CODES in kwargs:
                    example = error_example(kwargs[CODES][0], response[0])
                    responses[str(status)]["examples"] = {"application/json": example}
        return responses


class JsonApi(Api):
    """An Api whose errors, raised or routing ones, all use the service's envelope, whose error
    responses show their own codes, and whose Swagger UI (/docs) reads the OpenAPI 3 document."""

    def handle_error(self, e):
        return response_for(e)

    @property
    def __schema__(self):
        """The Swagger 2 document, written once by ErrorExamples. A document that cannot be written
        raises (a logged 500), where flask-restx would answer 200 with {"error": ...} as the document."""
        if not self._schema:
            self._schema = ErrorExamples(self).as_dict()
        return self._schema

    @property
    def specs_url(self):
        """The document /docs shows: OpenAPI 3, where the `bearer` scheme is HTTP bearer, so Swagger
        UI adds "Bearer " to a pasted token itself (Swagger 2 can say it only as an Authorization
        header the user must type "Bearer " into), and `token` takes the token as it comes."""
        return url_for(openapi.ENDPOINT)


def init_app(app: Flask, tenant_id: str) -> None:
    """Mount every namespace, /swagger.json, /openapi.json and Swagger UI at /docs, whose title
    (and the documents') names the tenant: each tenant's page says which one it tries requests on."""
    api = JsonApi(
        app,
        title=f"{TITLE} — {tenant_id}",
        version="1.0",
        description="Income, expenses and analytics for the people of one tenant.",
        doc="/docs",
        authorizations=AUTHORIZATIONS,
        catch_all_404s=True,
    )
    for namespace in NAMESPACES:
        api.add_namespace(namespace)
    openapi.init_app(app, api)
