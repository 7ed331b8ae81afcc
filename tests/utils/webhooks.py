"""Webhooks over HTTP: made, read and their deliveries listed as a client does."""

from __future__ import annotations

import httpx

WEBHOOK_FIELDS = {"id", "url", "events", "description", "active", "created_at"}
CREATED_FIELDS = WEBHOOK_FIELDS | {"secret"}
DELIVERY_FIELDS = {
    "id", "event_type", "status", "attempts", "last_status_code", "last_error", "next_attempt_at", "created_at"
}
# A receiver on this machine: the test servers allow loopback (WEBHOOKS_ALLOW_LOOPBACK). Nothing
# listens there; nothing is sent by the API.
RECEIVER = "http://127.0.0.1:9/hooks"


def add_webhook(client: httpx.Client, headers: dict, url: str = RECEIVER, events: list[str] | None = None,
                **fields) -> dict:
    body = {"url": url, "events": events or ["*"], **fields}
    response = client.post("/webhooks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def deliveries_of(client: httpx.Client, headers: dict, webhook_id: int, **params) -> dict:
    response = client.get(f"/webhooks/{webhook_id}/deliveries", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body


def all_deliveries(client: httpx.Client, headers: dict, webhook_id: int) -> list[dict]:
    """Every delivery of the webhook, newest first, following next_cursor."""
    items: list[dict] = []
    params: dict = {"limit": 200}
    while True:
        page = deliveries_of(client, headers, webhook_id, **params)
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]
