"""Totals and breakdowns of the logged-in user's income and expense."""

from __future__ import annotations

from datetime import datetime

from flask import g
from flask_restx import Namespace

from .. import db
from ..errors import ApiError
from ..periods import resolve_period
from ..schemas import MAX_GROUPS, AnalyticsQuery, AnalyticsSummary
from ..store import analytics
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
        tz = settings().timezone
        if "from_" in query:
            period, first, last = "custom", query["from_"], query["to"]
        else:
            period = query.get("period", "current_month")
            first, last = resolve_period(period, datetime.now(tz).date())
        group_by = query.get("group_by")
        summary = analytics.summarize(
            db.connection(), user_id=g.user_id, first=first, last=last, group_by=group_by, max_groups=MAX_GROUPS
        )
        if len(summary.get("groups", ())) > MAX_GROUPS:
            raise ApiError(
                400, "too_many_groups",
                f"The answer would hold more than {MAX_GROUPS} groups by {group_by};"
                " ask for a shorter span (from/to) or a coarser group_by.",
            )
        return _analytics_summary.dump(
            {
                **summary,
                "period": period,
                "from_": first,
                "to": last,
                "currency": settings().currency,
                "group_by": group_by,
            }
        )
