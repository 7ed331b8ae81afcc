"""The categories the logged-in user has used."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..schemas import CategoryList
from ..store import transactions
from .common import UserResource
from .docs import authenticated, model

ns = Namespace("categories", path="/", description="Categories in use")
# Schemas are built once: building one per request costs more than using it.
_category_list = CategoryList()


@ns.route("/categories")
@authenticated(ns)
class Categories(UserResource):
    @ns.response(200, "Categories with their transaction counts", model(ns, CategoryList))
    def get(self):
        """List the user's categories, by name, with how many transactions each has."""
        items = transactions.list_categories(db.connection(), user_id=g.user_id)
        return _category_list.dump({"items": items})
