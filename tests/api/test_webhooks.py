"""Webhooks over HTTP (issue 15): create with a secret shown once, read, list, change and delete them;
other users' webhooks; refused input that changes nothing; the URL's SSRF check at save time; the
cap; the test event to one webhook alone; and the deliveries the service queues after real changes,
listed newest first a page at a time. (Sending them is the dispatcher's, tested with it.)"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from service.core.events import TYPES
from tests.utils import assert_error, create, user_with_headers
from tests.utils.accounts import MISSING_ID, open_account, validation_error
from tests.utils.webhooks import (
    CREATED_FIELDS,
    DELIVERY_FIELDS,
    RECEIVER,
    WEBHOOK_FIELDS,
    add_webhook,
    all_deliveries,
    deliveries_of,
)

# Deliveries stay as these tests leave them: the run's dispatchers wait meanwhile
# (tests/api/test_webhook_delivery.py tests sending them).
pytestmark = pytest.mark.usefixtures("paused")


def _stored(db, user_id: int) -> list[dict]:
    return db.execute("SELECT * FROM webhooks WHERE user_id = %s ORDER BY id", (user_id,)).fetchall()


def _public(created: dict) -> dict:
    return {name: value for name, value in created.items() if name != "secret"}


def _delivery_rows(db, webhook_id: int) -> list[dict]:
    return db.execute(
        "SELECT d.*, e.type AS event_type FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.webhook_id = %s ORDER BY d.id",
        (webhook_id,),
    ).fetchall()


def _types(deliveries: list[dict]) -> list[str]:
    """Event types oldest first (a list answers newest first)."""
    return [item["event_type"] for item in reversed(deliveries)]


# --- create ------------------------------------------------------------------------------------


def test_create_is_201_with_every_field_the_secret_once_and_a_location(client, db):
    user_id, headers = user_with_headers(client)
    before = datetime.now(UTC)
    body = {"url": "http://localhost:8001/hooks?x=1", "events": ["transaction.created", "budget.exceeded"],
            "description": "ledger sync"}
    response = client.post("/webhooks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == CREATED_FIELDS
    assert isinstance(created["id"], int)
    assert {name: created[name] for name in ("url", "events", "description", "active")} == {**body, "active": True}
    stamp = datetime.fromisoformat(created["created_at"])
    assert stamp.tzinfo is not None and abs((stamp - before).total_seconds()) < 30
    # Standard Webhooks: whsec_ and the base64 of 32 random bytes.
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert response.headers["Location"].endswith(f"/webhooks/{created['id']}")
    read = client.get(response.headers["Location"], headers=headers)
    assert read.status_code == 200, read.text
    assert read.json() == _public(created)
    (row,) = _stored(db, user_id)
    assert (row["id"], row["url"], row["events"], row["secret"], row["active"]) == (
        created["id"], body["url"], body["events"], secret, True
    )
    # Without a description, and for every type.
    every = add_webhook(client, headers, events=["*"])
    assert (every["description"], every["events"], every["url"]) == (None, ["*"], RECEIVER)
    assert every["secret"] != secret


def test_every_subscribable_type_is_accepted_together(client):
    _, headers = user_with_headers(client)
    assert add_webhook(client, headers, events=list(TYPES))["events"] == list(TYPES)


def test_list_get_and_patch_never_show_the_secret(client):
    _, headers = user_with_headers(client)
    first = add_webhook(client, headers, description="one")
    second = add_webhook(client, headers, events=["account.created"])
    listed = client.get("/webhooks", headers=headers)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [_public(first), _public(second)]}
    assert all(set(item) == WEBHOOK_FIELDS for item in listed.json()["items"])
    answers = [
        listed,
        client.get(f"/webhooks/{first['id']}", headers=headers),
        client.patch(f"/webhooks/{first['id']}", json={"description": "changed"}, headers=headers),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        for secret in (first["secret"], second["secret"]):
            assert secret not in answer.text
            assert secret.removeprefix("whsec_") not in answer.text
        assert "secret" not in answer.text


# --- refused input -----------------------------------------------------------------------------


REFUSED_CREATES = [
    ("unknown type", {"events": ["transaction.exploded"]}, "events"),
    ("test type", {"events": ["webhook.test"]}, "events"),
    ("empty events", {"events": []}, "events"),
    ("duplicate type", {"events": ["account.created", "account.created"]}, "events"),
    ("star and a type", {"events": ["*", "account.created"]}, "events"),
    ("events not a list", {"events": "*"}, "events"),
    ("events null", {"events": None}, "events"),
    ("no events", {"events": ...}, "events"),
    ("no url", {"url": ...}, "url"),
    ("url null", {"url": None}, "url"),
    ("url not text", {"url": 7}, "url"),
    ("empty url", {"url": ""}, "url"),
    ("ftp", {"url": "ftp://127.0.0.1/hooks"}, "url"),
    ("no scheme", {"url": "127.0.0.1/hooks"}, "url"),
    ("credentials", {"url": "http://user:pass@127.0.0.1/hooks"}, "url"),
    ("user only", {"url": "http://user@127.0.0.1/hooks"}, "url"),
    ("fragment", {"url": "http://127.0.0.1/hooks#part"}, "url"),
    ("bad port", {"url": "http://127.0.0.1:70000/hooks"}, "url"),
    ("too long", {"url": "http://127.0.0.1/" + "a" * 2032}, "url"),
    ("NUL", {"url": "http://127.0.0.1/\u0000"}, "url"),
    ("private address", {"url": "https://10.0.0.1/hooks"}, "url"),
    ("metadata service", {"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
    ("mapped private", {"url": "https://[::ffff:192.168.1.1]/hooks"}, "url"),
    ("does not resolve", {"url": "https://no-such-host.invalid/hooks"}, "url"),
    ("description too long", {"description": "d" * 501}, "description"),
    ("description not text", {"description": 5}, "description"),
    ("active on create", {"active": False}, "active"),
    ("secret chosen", {"secret": "whsec_AAAA"}, "secret"),
]


@pytest.mark.parametrize(("changes", "field"), [case[1:] for case in REFUSED_CREATES],
                         ids=[case[0] for case in REFUSED_CREATES])
def test_invalid_create_is_400_naming_the_field_and_stores_nothing(client, db, changes, field):
    user_id, headers = user_with_headers(client)
    body = {"url": RECEIVER, "events": ["*"], "description": "x"} | changes
    body = {name: value for name, value in body.items() if value is not ...}
    validation_error(client.post("/webhooks", json=body, headers=headers), field)
    assert _stored(db, user_id) == []


def test_a_url_of_2048_characters_is_accepted(client):
    _, headers = user_with_headers(client)
    url = "http://127.0.0.1/" + "a" * 2031
    assert len(url) == 2048
    assert add_webhook(client, headers, url=url)["url"] == url


def test_a_refused_url_says_why(client):
    _, headers = user_with_headers(client)
    cases = {
        "ftp://127.0.0.1/": "https://host/path",
        "http://u:p@127.0.0.1/": "user name or password",
        "https://10.0.0.1/": "not public",
        "http://a/" + "a" * 2048: "2048",
    }
    for url, says in cases.items():
        error = validation_error(client.post("/webhooks", json={"url": url, "events": ["*"]}, headers=headers), "url")
        assert any(says in message for message in error["fields"]["url"]), error


# --- change ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"url": "http://[::1]:8080/other"},
        {"events": ["account.created", "transfer.deleted"]},
        {"events": ["*"]},
        {"description": "renamed"},
        {"description": None},
        {"active": False},
        {"url": "http://127.0.0.2/x", "events": ["budget.exceeded"], "description": "all", "active": False},
    ],
    ids=["url", "events", "every-type", "description", "no-description", "inactive", "everything"],
)
def test_patch_changes_each_field(client, db, change):
    user_id, headers = user_with_headers(client)
    webhook = add_webhook(client, headers, events=["transaction.created"], description="first")
    response = client.patch(f"/webhooks/{webhook['id']}", json=change, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {**_public(webhook), **change}
    assert client.get(f"/webhooks/{webhook['id']}", headers=headers).json() == response.json()
    (row,) = _stored(db, user_id)
    assert row["secret"] == webhook["secret"]
    assert row["updated_at"] > row["created_at"]


def test_active_true_takes_up_a_webhook_turned_off(client, db):
    user_id, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    # As the dispatcher turns one off after a 410 Gone.
    db.execute("UPDATE webhooks SET active = false WHERE id = %s", (webhook["id"],))
    assert client.get(f"/webhooks/{webhook['id']}", headers=headers).json()["active"] is False
    response = client.patch(f"/webhooks/{webhook['id']}", json={"active": True}, headers=headers)
    assert response.status_code == 200 and response.json()["active"] is True
    create(client, headers)
    assert _types(all_deliveries(client, headers, webhook["id"])) == ["transaction.created"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({}, "_schema"),
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"url": "https://192.168.0.10/"}, "url"),
        ({"url": None}, "url"),
        ({"events": []}, "events"),
        ({"events": ["nope"]}, "events"),
        ({"events": ["*", "*"]}, "events"),
        ({"active": "maybe"}, "active"),
        ({"description": "ok", "secret": "whsec_AAAA"}, "secret"),
        ({"description": "ok", "id": 5}, "id"),
        ({"description": "ok", "user_id": 1}, "user_id"),
    ],
)
def test_invalid_patch_is_400_and_changes_nothing(client, db, change, field):
    user_id, headers = user_with_headers(client)
    webhook = add_webhook(client, headers, description="kept")
    before = _stored(db, user_id)
    validation_error(client.patch(f"/webhooks/{webhook['id']}", json=change, headers=headers), field)
    assert _stored(db, user_id) == before


# --- delete ------------------------------------------------------------------------------------


def test_delete_is_204_then_404_everywhere_and_takes_its_deliveries(client, db):
    user_id, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    kept = add_webhook(client, headers)
    create(client, headers)
    assert len(_delivery_rows(db, webhook["id"])) == 1
    response = client.delete(f"/webhooks/{webhook['id']}", headers=headers)
    assert response.status_code == 204 and response.content == b""
    _assert_not_found_everywhere(client, headers, webhook["id"])
    assert _delivery_rows(db, webhook["id"]) == []
    assert [row["id"] for row in _stored(db, user_id)] == [kept["id"]]
    assert len(_delivery_rows(db, kept["id"])) == 1


def _assert_not_found_everywhere(client, headers, webhook_id: int) -> None:
    path = f"/webhooks/{webhook_id}"
    for response in (
        client.get(path, headers=headers),
        client.patch(path, json={"description": "mine"}, headers=headers),
        client.delete(path, headers=headers),
        client.post(f"{path}/test", headers=headers),
        client.get(f"{path}/deliveries", headers=headers),
    ):
        assert_error(response, 404, "not_found")


def test_another_users_webhook_is_404_on_every_path_and_untouched(client, db):
    owner_id, owner = user_with_headers(client)
    webhook = add_webhook(client, owner)
    create(client, owner)
    before, deliveries = _stored(db, owner_id), _delivery_rows(db, webhook["id"])
    _, stranger = user_with_headers(client)
    _assert_not_found_everywhere(client, stranger, webhook["id"])
    _assert_not_found_everywhere(client, owner, MISSING_ID)
    assert client.get("/webhooks", headers=stranger).json() == {"items": []}
    assert _stored(db, owner_id) == before
    assert _delivery_rows(db, webhook["id"]) == deliveries


def test_an_id_beyond_bigint_is_404(client):
    _, headers = user_with_headers(client)
    assert_error(client.get(f"/webhooks/{2**63}", headers=headers), 404)


# --- the cap -----------------------------------------------------------------------------------


def test_a_user_has_at_most_10_webhooks(client, db):
    user_id, headers = user_with_headers(client)
    made = [add_webhook(client, headers, description=str(n)) for n in range(10)]
    assert_error(client.post("/webhooks", json={"url": RECEIVER, "events": ["*"]}, headers=headers),
                 409, "too_many_webhooks")
    assert len(_stored(db, user_id)) == 10
    assert client.get("/webhooks", headers=headers).json()["items"] == [_public(item) for item in made]
    # Another user is not held to this one's count; deleting one makes room.
    _, other = user_with_headers(client)
    add_webhook(client, other)
    assert client.delete(f"/webhooks/{made[0]['id']}", headers=headers).status_code == 204
    add_webhook(client, headers)


# --- the test event ----------------------------------------------------------------------------


def test_the_test_event_is_one_pending_delivery_to_that_webhook_only(client, db):
    user_id, headers = user_with_headers(client)
    tested = add_webhook(client, headers, events=["account.created"])
    other = add_webhook(client, headers, events=["*"])
    before = datetime.now(UTC)
    response = client.post(f"/webhooks/{tested['id']}/test", headers=headers)
    assert response.status_code == 202, response.text
    delivery = response.json()
    assert set(delivery) == DELIVERY_FIELDS
    assert {name: delivery[name] for name in ("event_type", "status", "attempts", "last_status_code", "last_error")} \
        == {"event_type": "webhook.test", "status": "pending", "attempts": 0, "last_status_code": None,
            "last_error": None}
    for name in ("next_attempt_at", "created_at"):
        assert abs((datetime.fromisoformat(delivery[name]) - before).total_seconds()) < 30
    # As the deliveries list shows it; the other webhook, though it takes every type, has none.
    assert deliveries_of(client, headers, tested["id"]) == {"items": [delivery], "next_cursor": None}
    assert deliveries_of(client, headers, other["id"]) == {"items": [], "next_cursor": None}
    (event,) = db.execute("SELECT * FROM events WHERE user_id = %s AND type = 'webhook.test'", (user_id,)).fetchall()
    assert event["data"] == {"webhook_id": tested["id"]}
    assert [row["event_id"] for row in _delivery_rows(db, tested["id"])] == [event["id"]]
    # Never in the feed.
    feed = client.get("/events", headers=headers).json()["items"]
    assert "webhook.test" not in {item["type"] for item in feed}
    # A second test is a second delivery.
    again = client.post(f"/webhooks/{tested['id']}/test", headers=headers)
    assert again.status_code == 202 and again.json()["id"] > delivery["id"]
    assert len(_delivery_rows(db, tested["id"])) == 2
    assert _delivery_rows(db, other["id"]) == []


def test_testing_an_inactive_webhook_is_409_and_queues_nothing(client, db):
    user_id, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    client.patch(f"/webhooks/{webhook['id']}", json={"active": False}, headers=headers)
    assert_error(client.post(f"/webhooks/{webhook['id']}/test", headers=headers), 409, "webhook_inactive")
    assert _delivery_rows(db, webhook["id"]) == []
    assert db.execute("SELECT count(*) AS n FROM events WHERE type = 'webhook.test'").fetchone()["n"] == 0


def test_the_test_endpoint_takes_no_body_and_no_other_method(client):
    _, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    assert client.get(f"/webhooks/{webhook['id']}/test", headers=headers).status_code == 405
    assert client.post(f"/webhooks/{webhook['id']}/deliveries", headers=headers).status_code == 405


# --- deliveries after real changes -------------------------------------------------------------


def test_each_webhook_gets_the_deliveries_of_the_types_it_takes(client, db):
    user_id, headers = user_with_headers(client)
    transactions = add_webhook(client, headers, events=["transaction.created"])
    every = add_webhook(client, headers, events=["*"])
    accounts = add_webhook(client, headers, events=["account.created"])
    off = add_webhook(client, headers, events=["*"])
    assert client.patch(f"/webhooks/{off['id']}", json={"active": False}, headers=headers).status_code == 200
    _, stranger = user_with_headers(client)

    created = create(client, headers, amount="12.50")
    client.patch(f"/transactions/{created['id']}", json={"amount": "13.00"}, headers=headers)
    savings = open_account(client, headers, "Savings")
    create(client, stranger)  # another user's change reaches none of these
    # A refused change and a rolled-back one write no event, so no delivery.
    client.patch(f"/accounts/{savings['id']}", json={"archived": True}, headers=headers)
    refused = client.post("/transactions", json={"type": "expense", "amount": "1.00", "account_id": savings["id"]},
                          headers=headers)
    assert_error(refused, 409)
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO transactions (user_id, type, amount) VALUES (%s, 'expense', 5)", (user_id,))
        raise RuntimeError("roll back")

    assert _types(all_deliveries(client, headers, transactions["id"])) == ["transaction.created"]
    assert _types(all_deliveries(client, headers, every["id"])) == [
        "transaction.created", "transaction.updated", "account.created", "account.updated"
    ]
    assert _types(all_deliveries(client, headers, accounts["id"])) == ["account.created"]
    assert all_deliveries(client, headers, off["id"]) == []
    for webhook in (transactions, every, accounts):
        for item in all_deliveries(client, headers, webhook["id"]):
            assert set(item) == DELIVERY_FIELDS
            assert (item["status"], item["attempts"], item["last_status_code"], item["last_error"]) == (
                "pending", 0, None, None
            )
            assert item["next_attempt_at"] is not None
    # Each is the delivery of the event the feed shows, once.
    feed = {item["id"]: item["type"] for item in client.get("/events", headers=headers).json()["items"]}
    rows = _delivery_rows(db, every["id"])
    assert [feed[row["event_id"]] for row in rows] == _types(all_deliveries(client, headers, every["id"]))


def test_a_delivery_shows_what_the_dispatcher_recorded(client, db):
    _, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    create(client, headers)
    create(client, headers)
    older, newer = (row["id"] for row in _delivery_rows(db, webhook["id"]))
    db.execute("UPDATE webhook_deliveries SET status = 'delivered', attempts = 1, last_status_code = 204,"
               " next_attempt_at = NULL WHERE id = %s", (older,))
    db.execute("UPDATE webhook_deliveries SET attempts = 2, last_status_code = 503, last_error = 'HTTP 503',"
               " next_attempt_at = '2030-01-01T00:00:00Z' WHERE id = %s", (newer,))
    first, second = deliveries_of(client, headers, webhook["id"])["items"]
    assert (first["id"], first["status"], first["attempts"], first["last_status_code"], first["last_error"]) == (
        newer, "pending", 2, 503, "HTTP 503"
    )
    assert datetime.fromisoformat(first["next_attempt_at"]) == datetime(2030, 1, 1, tzinfo=UTC)
    assert (second["id"], second["status"], second["last_status_code"], second["next_attempt_at"]) == (
        older, "delivered", 204, None
    )


# --- the deliveries' pages ---------------------------------------------------------------------


def test_deliveries_page_newest_first_with_the_cursor(client, db):
    _, headers = user_with_headers(client)
    webhook = add_webhook(client, headers, events=["transaction.created"])
    for n in range(5):
        create(client, headers, amount=f"{n + 1}.00")
    ids = [row["id"] for row in reversed(_delivery_rows(db, webhook["id"]))]
    assert len(ids) == 5
    pages, params = [], {"limit": 2}
    while True:
        page = deliveries_of(client, headers, webhook["id"], **params)
        pages.append([item["id"] for item in page["items"]])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == [ids[:2], ids[2:4], ids[4:]]
    # The default limit holds them all. A delivery made after a page was read shows on a new first
    # page, and a cursor handed out before reads on where it was.
    assert [item["id"] for item in deliveries_of(client, headers, webhook["id"])["items"]] == ids
    second_page_cursor = _cursor({"id": ids[1]})
    create(client, headers)
    assert deliveries_of(client, headers, webhook["id"], limit=1)["items"][0]["id"] > ids[0]
    after = deliveries_of(client, headers, webhook["id"], limit=2, cursor=second_page_cursor)
    assert [item["id"] for item in after["items"]] == ids[2:4]


def test_the_default_page_is_50_and_the_largest_200(client, db):
    _, headers = user_with_headers(client)
    webhook = add_webhook(client, headers, events=["*"])
    db.execute(
        "WITH e AS (INSERT INTO events (user_id, type, data) SELECT w.user_id, 'webhook.test', '{}'"
        "  FROM webhooks w, generate_series(1, 210) WHERE w.id = %(id)s RETURNING id)"
        " INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT %(id)s, id FROM e",
        {"id": webhook["id"]},
    )
    default = deliveries_of(client, headers, webhook["id"])
    assert len(default["items"]) == 50 and default["next_cursor"]
    largest = deliveries_of(client, headers, webhook["id"], limit=200)
    assert len(largest["items"]) == 200
    rest = deliveries_of(client, headers, webhook["id"], limit=200, cursor=largest["next_cursor"])
    assert len(rest["items"]) == 10 and rest["next_cursor"] is None


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": _cursor({"id": 0})}, "cursor"),
        ({"cursor": _cursor({"id": -1})}, "cursor"),
        ({"cursor": _cursor({"id": "5"})}, "cursor"),
        ({"cursor": _cursor({"id": 5.0})}, "cursor"),
        ({"cursor": _cursor({"id": True})}, "cursor"),
        ({"cursor": _cursor({"id": 2**63})}, "cursor"),
        ({"cursor": _cursor({"t": 1})}, "cursor"),
        ({"cursor": _cursor([5])}, "cursor"),
        ({"user_id": 1}, "user_id"),
    ],
)
def test_a_bad_limit_or_forged_cursor_is_400(client, params, field):
    _, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    response = client.get(f"/webhooks/{webhook['id']}/deliveries", params=params, headers=headers)
    error = validation_error(response, field)
    assert set(error["fields"]) == {field}


def test_a_cursor_at_the_edge_of_the_column_is_accepted(client):
    _, headers = user_with_headers(client)
    webhook = add_webhook(client, headers)
    client.post(f"/webhooks/{webhook['id']}/test", headers=headers)
    page = deliveries_of(client, headers, webhook["id"], cursor=_cursor({"id": 2**63 - 1}))
    assert len(page["items"]) == 1
