"""The event feed: every change of the logged-in user's records, oldest first."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import events
from ..schemas import EventFeed, EventQuery, event_cursor
from .common import UserResource, accepts_query, responds, settings, user_route

ns = Namespace("events", path="/", description="What changed in the logged-in user's records")


@user_route(ns, "/events")
class EventCollection(UserResource):
    @accepts_query(ns, EventQuery, invalid="Invalid cursor or limit")
    @responds(ns, 200, "The next events, oldest first", EventFeed)
    def get(self, query: dict):
        """Read the events after a cursor: each change once, in order; poll with next_cursor."""
        rows, position = events.page(db.connection(), user_id=g.user_id, after=query.get("after"), limit=query["limit"])
        currency = settings().currency
        return {
            "items": [events.present(row, currency) for row in rows],
            "next_cursor": event_cursor(position) if position else None,
        }
