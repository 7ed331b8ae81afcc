"""Totals and breakdowns of the logged-in user's income and expense."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import analytics
from ..schemas import MAX_GROUPS, AnalyticsQuery, AnalyticsSummary
from .common import UserResource, load_query, settings
from .docs import authenticated, error_model, model, query_params

ns = Namespace("analytics", path="/", description="Totals over a period, by category, month or day")
# Schemas are built once: building one per request costs more than using it.
_analytics_query = AnalyticsQuery()
_analytics_summary = AnalyticsSummary()


@ns.route("/analytics")
@authenticated(ns)
class Analytics(UserResource):
    @ns.doc(params=query_params(AnalyticsQuery))
    @ns.response(200, "Totals for the period", model(ns, AnalyticsSummary))
    @ns.response(400, f"Unknown period, bad dates or group_by, or more than {MAX_GROUPS} groups", error_model(ns))
    def get(self):
        """Sum income and expense over a calendar period of the tenant's time zone, or from/to."""
        query = load_query(_analytics_query)
        config = settings()
        summary = analytics.summary(
            db.connection(),
            user_id=g.user_id,
            timezone=config.timezone,
            period=query.get("period"),
            first=query.get("from_"),
            last=query.get("to"),
            group_by=query.get("group_by"),
        )
        return _analytics_summary.dump({**summary, "currency": config.currency})
