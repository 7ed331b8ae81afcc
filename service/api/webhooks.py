"""The logged-in user's webhooks: where their events are sent, and what was delivered."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import webhooks
from ..schemas import (
    DeliveryListQuery,
    DeliveryPage,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
    WebhookUpdate,
    delivery_cursor,
)
from .common import (
    UserResource,
    accepts_json,
    accepts_query,
    login_token_only,
    responds,
    settings,
    user_item_route,
    user_route,
)
from .docs import refusal

ns = Namespace("webhooks", path="/", description="Where the logged-in user's events are sent, and what was delivered")


def _allow_loopback() -> bool:
    return settings().webhooks_allow_loopback


@user_route(ns, "/webhooks")
class WebhookCollection(UserResource):
    @responds(ns, 200, "Every webhook, oldest first (at most 10), without their secrets", WebhookList)
    def get(self):
        """List the webhooks."""
        return {"items": webhooks.list_all(db.connection(), user_id=g.user_id)}

    @login_token_only(ns)
    @accepts_json(ns, WebhookCreate, invalid="Invalid webhook, or a URL the service may not send to")
    @responds(ns, 201, "Created, with its signing secret (shown only here); Location names it", WebhookCreated)
    @refusal(ns, 409, "The user has 10 webhooks (too_many_webhooks)", "too_many_webhooks")
    def post(self, data: dict):
        """Add a webhook: its URL (https, public) and the event types it takes."""
        webhook = webhooks.create(db.connection(), user_id=g.user_id, data=data, allow_loopback=_allow_loopback())
        return webhook, {"Location": f"/webhooks/{webhook['id']}"}


@user_item_route(ns, "/webhooks", "webhook")
class WebhookItem(UserResource):
    @responds(ns, 200, "The webhook, without its secret", WebhookPublic)
    def get(self, webhook_id: int):
        """Read one webhook."""
        return webhooks.get(db.connection(), user_id=g.user_id, webhook_id=webhook_id)

    @login_token_only(ns)
    @accepts_json(ns, WebhookUpdate, invalid="Invalid change, or a URL the service may not send to")
    @responds(ns, 200, "The changed webhook, without its secret", WebhookPublic)
    def patch(self, changes: dict, webhook_id: int):
        """Change a webhook's URL, events, description or active."""
        return webhooks.update(
            db.connection(), user_id=g.user_id, webhook_id=webhook_id, changes=changes,
            allow_loopback=_allow_loopback(),
        )

    @login_token_only(ns)
    @ns.response(204, "Deleted, with its deliveries")
    def delete(self, webhook_id: int):
        """Delete a webhook; its pending deliveries are not sent."""
        webhooks.delete(db.connection(), user_id=g.user_id, webhook_id=webhook_id)
        return None, 204


@user_item_route(ns, "/webhooks", "webhook", "/test")
class WebhookTest(UserResource):
    @login_token_only(ns)
    @responds(ns, 202, "Queued: the webhook.test event's delivery, pending", DeliveryPublic)
    @refusal(ns, 409, "The webhook is not active (webhook_inactive)", "webhook_inactive")
    def post(self, webhook_id: int):
        """Send a webhook.test event to this webhook alone."""
        return webhooks.send_test(db.connection(), user_id=g.user_id, webhook_id=webhook_id)


@user_item_route(ns, "/webhooks", "webhook", "/deliveries")
class WebhookDeliveries(UserResource):
    @accepts_query(ns, DeliveryListQuery, invalid="Invalid limit or cursor")
    @responds(ns, 200, "One page of the webhook's deliveries, newest first", DeliveryPage)
    def get(self, query: dict, webhook_id: int):
        """List a webhook's deliveries, newest first, one page at a time."""
        rows, last = webhooks.deliveries(
            db.connection(), user_id=g.user_id, webhook_id=webhook_id, before=query.get("cursor"),
            limit=query["limit"],
        )
        return {"items": rows, "next_cursor": delivery_cursor(last) if last is not None else None}
