"""The categories the logged-in user has used."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import analytics
from ..schemas import CategoryList, CategoryListQuery, encode_cursor
from .common import UserResource, load_query
from .docs import authenticated, error_model, model, query_params

ns = Namespace("categories", path="/", description="Categories in use")
# Schemas are built once: building one per request costs more than using it.
_category_list = CategoryList()
_category_list_query = CategoryListQuery()


@ns.route("/categories")
@authenticated(ns)
class Categories(UserResource):
    @ns.doc(params=query_params(CategoryListQuery))
    @ns.response(200, "Categories with their transaction counts, one page", model(ns, CategoryList))
    @ns.response(400, "Invalid limit or cursor", error_model(ns))
    def get(self):
        """List the user's categories, by name, with how many transactions each has."""
        query = load_query(_category_list_query)
        items, last = analytics.categories(
            db.connection(), user_id=g.user_id, after=query.get("cursor"), limit=query["limit"]
        )
        return _category_list.dump({"items": items, "next_cursor": encode_cursor({"after": last}) if last else None})
