"""The categories the logged-in user has used."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import analytics
from ..schemas import CategoryList, CategoryListQuery, encode_cursor
from .common import UserResource, accepts_query, responds, user_route

ns = Namespace("categories", path="/", description="Categories in use")


@user_route(ns, "/categories")
class Categories(UserResource):
    @accepts_query(ns, CategoryListQuery, invalid="Invalid limit or cursor")
    @responds(ns, 200, "Categories with their transaction counts, one page", CategoryList)
    def get(self, query: dict):
        """List the user's categories, by name, with how many transactions each has."""
        items, last = analytics.categories(
            db.connection(), user_id=g.user_id, after=query.get("cursor"), limit=query["limit"]
        )
        return {"items": items, "next_cursor": encode_cursor({"after": last}) if last else None}
