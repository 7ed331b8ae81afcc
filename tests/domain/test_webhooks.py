"""Webhooks' domain rules without HTTP, as production runs them (WEBHOOKS_ALLOW_LOOPBACK unset):
a URL to this machine, a private or link-local address, or over http is refused when the webhook is
saved or changed, and nothing is written; the schemas agree with the record."""

from __future__ import annotations

import pytest
from marshmallow import Schema

from service import schemas
from service.core import webhooks
from service.core.errors import Invalid
from service.records import DELIVERY, WEBHOOK
from tests.utils import insert_user

PUBLIC = "https://93.184.216.34/hooks"  # an address literal: no DNS needed

REFUSED = [
    "http://127.0.0.1:8001/hooks",  # loopback, as the local servers allow
    "https://127.0.0.1/hooks",
    "https://[::1]/hooks",
    "https://localhost/hooks",  # a name resolving to loopback
    "https://10.1.2.3/hooks",  # private
    "https://192.168.0.1/hooks",
    "https://169.254.169.254/latest/meta-data/",  # link-local: the cloud's metadata service
    "http://169.254.169.254/latest/meta-data/",
    "https://[::ffff:10.0.0.1]/hooks",  # IPv4-mapped IPv6 of a private address
    "http://93.184.216.34/hooks",  # public, but not https
]


def _count(db, user_id: int) -> int:
    return db.execute("SELECT count(*) AS n FROM webhooks WHERE user_id = %s", (user_id,)).fetchone()["n"]


@pytest.mark.parametrize("url", REFUSED)
def test_production_refuses_a_url_that_is_not_public_https_on_create(db, url):
    user_id = insert_user(db)
    with pytest.raises(Invalid) as refused:
        webhooks.create(db, user_id=user_id, data={"url": url, "events": ["*"]}, allow_loopback=False)
    assert refused.value.code == "validation_error" and list(refused.value.fields) == ["url"]
    assert _count(db, user_id) == 0


@pytest.mark.parametrize("url", REFUSED)
def test_production_refuses_such_a_url_on_change_and_keeps_the_old_one(db, url):
    user_id = insert_user(db)
    webhook = webhooks.create(db, user_id=user_id, data={"url": PUBLIC, "events": ["*"]}, allow_loopback=False)
    with pytest.raises(Invalid):
        webhooks.update(db, user_id=user_id, webhook_id=webhook["id"], changes={"url": url}, allow_loopback=False)
    assert webhooks.get(db, user_id=user_id, webhook_id=webhook["id"])["url"] == PUBLIC


def test_production_accepts_a_public_https_url_and_the_local_run_loopback(db):
    user_id = insert_user(db)
    made = webhooks.create(db, user_id=user_id, data={"url": PUBLIC, "events": ["*"]}, allow_loopback=False)
    assert made["url"] == PUBLIC and made["secret"].startswith("whsec_")
    local = webhooks.create(db, user_id=user_id, data={"url": REFUSED[0], "events": ["*"]}, allow_loopback=True)
    assert local["url"] == REFUSED[0]


def _fields(schema: type[Schema]) -> set[str]:
    return set(schema().fields)


def test_the_schemas_agree_with_the_records():
    assert _fields(schemas.WebhookPublic) == set(WEBHOOK.columns)
    assert _fields(schemas.WebhookCreated) == set(WEBHOOK.columns) | {"secret"}
    assert "secret" not in WEBHOOK.columns
    assert set(WEBHOOK.writable) == _fields(schemas.WebhookUpdate)
    assert _fields(schemas.DeliveryPublic) == set(DELIVERY.columns) | {"event_type"}


def test_the_table_has_the_records_columns(db):
    for record in (WEBHOOK, DELIVERY):
        table = {row["column_name"] for row in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (record.table,))}
        assert set(record.columns) <= table
