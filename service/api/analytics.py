"""Totals and breakdowns of the logged-in user's income and expense."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import analytics
from ..schemas import MAX_GROUPS, AnalyticsQuery, AnalyticsSummary
from .common import UserResource, accepts_query, responds, settings, user_route

ns = Namespace("analytics", path="/", description="Totals over a period, by category, month or day")


@user_route(ns, "/analytics")
class Analytics(UserResource):
    @accepts_query(
        ns, AnalyticsQuery, invalid=f"Unknown period, bad dates or group_by, or more than {MAX_GROUPS} groups"
    )
    @responds(ns, 200, "Totals for the period", AnalyticsSummary)
    def get(self, query: dict):
        """Sum income and expense over a calendar period of the tenant's time zone, or from/to."""
        config = settings()
        summary = analytics.summary(
            db.connection(),
            user_id=g.user_id,
            timezone=config.timezone,
            period=query.get("period"),
            first=query.get("from_"),
            last=query.get("to"),
            group_by=query.get("group_by"),
            account_id=query.get("account_id"),
        )
        return {**summary, "currency": config.currency}
