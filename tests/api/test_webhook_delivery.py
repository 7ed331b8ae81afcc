"""Webhook deliveries (issue 15), against real receivers on 127.0.0.1: the test run's dispatchers
(`python -m service deliver-webhooks`, one per demo tenant, from the `servers` fixture), dispatchers
started here as processes, and the dispatcher in this process where the network must be faked (a
resolver that lies, time limits short enough for a test).

Every request is verified with Standard Webhooks' own library; every change on every path is
delivered exactly once; failures are retried on the schedule, 410 turns a webhook off, redirects are
not followed, a slow receiver holds up no other, the SSRF rules hold at each delivery (no DNS
rebinding), and concurrent dispatchers never send one delivery twice.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row
from standardwebhooks.webhooks import Webhook

from service import delivery
from service.core import dispatcher
from service.outbound import Target
from tests.utils import create, user_with_headers
from tests.utils.accounts import open_account
from tests.utils.budgets import new_rule, today
from tests.utils.receiver import Answer, Received, receiving

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
# Longer than a few of the test run's dispatchers' polls (0.2 s): time for a second, wrong request.
SETTLE = 1.5


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def add_webhook(db, user_id: int, url: str, events: tuple[str, ...] = ("*",), *, active: bool = True) -> dict:
    """A webhook row, as the webhooks API would make it; its id and secret."""
    secret = new_secret()
    row = db.execute(
        "INSERT INTO webhooks (user_id, url, events, secret, active) VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (user_id, url, list(events), secret, active),
    ).fetchone()
    return {"id": row["id"], "secret": secret}


def deliveries(db, webhook_id: int) -> list[dict]:
    return db.execute(
        "SELECT id, event_id, status, attempts, next_attempt_at, last_status_code, last_error, created_at"
        " FROM webhook_deliveries WHERE webhook_id = %s ORDER BY id",
        (webhook_id,),
    ).fetchall()


def last_event_id(db) -> int:
    return db.execute("SELECT coalesce(max(id), 0) AS id FROM events").fetchone()["id"]


def events_after(db, user_id: int, after: int) -> list[dict]:
    return db.execute(
        "SELECT id, type FROM events WHERE user_id = %s AND id > %s ORDER BY id", (user_id, after)
    ).fetchall()


def verified(request: Received, secret: str) -> dict:
    """The body of a request that Standard Webhooks' library verifies (it raises otherwise)."""
    return Webhook(secret).verify(request.body, request.headers)


def wait_until(check, timeout: float = 20, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)
    return result


def in_process(env: dict, **options) -> dispatcher.Dispatcher:
    """The dispatcher in this process, on tenant1's database, loopback allowed unless told."""
    def connect():
        return psycopg.Connection.connect(env["DATABASE_URL"], autocommit=True, row_factory=dict_row)

    return dispatcher.Dispatcher(connect, **{"currency": "USD", "allow_loopback": True, **options})


def run_once(sender: dispatcher.Dispatcher) -> int:
    return sender.run(stopping=threading.Event(), every=None)


# --- delivered: signed, once per change, on every path -------------------------------------------


def test_a_change_is_delivered_once_as_standard_webhooks_verify_it(client, db):
    user_id, headers = user_with_headers(client)
    with receiving() as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        before = time.time()
        created = create(client, headers, type="expense", amount="12.50", category="Food", description="café")
        (request,) = receiver.wait_for(1)
        time.sleep(SETTLE)
        assert len(receiver.requests) == 1
    (event,) = events_after(db, user_id, 0)[-1:]
    body = verified(request, hook["secret"])
    assert body == {"type": "transaction.created", "timestamp": body["timestamp"], "data": created}
    assert abs(datetime.fromisoformat(body["timestamp"]).timestamp() - before) < 30
    assert request.headers["webhook-id"] == str(event["id"])
    assert before - 1 <= int(request.headers["webhook-timestamp"]) <= time.time() + 1
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("finance-service-webhooks/")
    assert request.path == "/hook" and request.headers["host"] == f"127.0.0.1:{receiver.port}"
    # Compact JSON, the event as GET /events shows it without its id.
    assert request.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    feed = client.get("/events", headers=headers).json()["items"]
    assert {"id": event["id"], **body} in feed
    (row,) = deliveries(db, hook["id"])
    assert (row["status"], row["attempts"], row["last_status_code"], row["last_error"], row["next_attempt_at"]) == (
        "delivered", 1, 200, None, None)


def test_every_path_delivers_one_request_per_event(client, db):
    """The API, a CSV import, recurring occurrences, an account's deletion: one request per event."""
    user_id, headers = user_with_headers(client)
    with receiving() as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        start = last_event_id(db)
        create(client, headers, type="income", amount="100.00")
        rows = "".join(f"2026-0{month}-01T00:00:00Z,expense,{month}.00,USD,Rent,\n" for month in range(1, 10))
        imported = client.post(
            "/transactions/import", content=("occurred_at,type,amount,currency,category,description\n" + rows).encode(),
            headers={**headers, "Content-Type": "text/csv"},
        )
        assert imported.status_code == 201, imported.text
        new_rule(client, headers, start_date=(today() - timedelta(days=2)).isoformat())
        spare = open_account(client, headers, "Spare")
        assert client.delete(f"/accounts/{spare['id']}", headers=headers).status_code == 204

        written = events_after(db, user_id, start)
        assert [event["type"] for event in written] == (
            ["transaction.created"] * (1 + 9 + 3) + ["account.created", "account.deleted"])
        receiver.wait_for(len(written))
        time.sleep(SETTLE)
        requests = list(receiver.requests)
    assert sorted(int(request.headers["webhook-id"]) for request in requests) == [event["id"] for event in written]
    for request in requests:
        event_id = int(request.headers["webhook-id"])
        assert verified(request, hook["secret"])["type"] == next(e["type"] for e in written if e["id"] == event_id)
    assert {(row["status"], row["attempts"]) for row in deliveries(db, hook["id"])} == {("delivered", 1)}


def test_only_the_users_webhooks_that_take_the_type_get_it(client, db):
    user_id, headers = user_with_headers(client)
    other_id, other_headers = user_with_headers(client)
    with receiving() as mine, receiving() as accounts_only, receiving() as others:
        add_webhook(db, user_id, mine.url, ("transaction.created",))
        add_webhook(db, user_id, accounts_only.url, ("account.created",))
        add_webhook(db, other_id, others.url)
        create(client, headers)
        mine.wait_for(1)
        time.sleep(SETTLE)
        assert (len(mine.requests), len(accounts_only.requests), len(others.requests)) == (1, 0, 0)


# --- failures and retries ------------------------------------------------------------------------


def test_a_receiver_that_fails_then_recovers_gets_the_same_delivery_again(client, db):
    user_id, headers = user_with_headers(client)
    with receiving(lambda n: Answer(500 if n == 0 else 204)) as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        create(client, headers)
        receiver.wait_for(1)
        (row,) = wait_until(lambda: [r for r in deliveries(db, hook["id"]) if r["last_status_code"] == 500],
                            what="the failure recorded")
        assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "HTTP 500")
        # The first retry within 30 s (5 s ± 20%).
        now = db.execute("SELECT now() AS now").fetchone()["now"]
        assert timedelta(seconds=3) <= row["next_attempt_at"] - now <= timedelta(seconds=30)
        first, second = receiver.wait_for(2, timeout=30)
        time.sleep(SETTLE)
        assert len(receiver.requests) == 2
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(row["event_id"])
    assert verified(first, hook["secret"]) == verified(second, hook["secret"])
    (row,) = deliveries(db, hook["id"])
    assert (row["status"], row["attempts"], row["last_status_code"], row["last_error"]) == ("delivered", 2, 204, None)


def test_410_turns_the_webhook_off(client, db):
    user_id, headers = user_with_headers(client)
    with receiving(lambda _: Answer(410)) as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        create(client, headers)
        receiver.wait_for(1)
        wait_until(lambda: deliveries(db, hook["id"])[0]["status"] == "failed", what="the delivery failed")
        create(client, headers)
        time.sleep(SETTLE)
        assert len(receiver.requests) == 1
    (row,) = deliveries(db, hook["id"])  # none for the change after
    assert (row["attempts"], row["last_status_code"], row["last_error"]) == (1, 410, "webhook turned off: 410")
    assert db.execute("SELECT active FROM webhooks WHERE id = %s", (hook["id"],)).fetchone()["active"] is False


def test_a_redirect_is_a_failure_and_is_not_followed(client, db):
    user_id, headers = user_with_headers(client)
    with receiving() as elsewhere, receiving(lambda _: Answer(302, location=elsewhere.url)) as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        create(client, headers)
        receiver.wait_for(1)
        (row,) = wait_until(lambda: [r for r in deliveries(db, hook["id"]) if r["last_status_code"]],
                            what="the failure recorded")
        time.sleep(SETTLE)
        assert elsewhere.requests == []
    assert (row["status"], row["attempts"], row["last_status_code"], row["last_error"]) == (
        "pending", 1, 302, "redirect not followed (302)")


def test_the_api_answers_at_once_while_the_receiver_is_dead(client, db):
    user_id, headers = user_with_headers(client)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    hook = add_webhook(db, user_id, f"http://127.0.0.1:{port}/hook")
    for _ in range(5):
        started = time.monotonic()
        create(client, headers)
        assert time.monotonic() - started < 1.0
    rows = wait_until(lambda: [r for r in deliveries(db, hook["id"]) if r["last_error"]] if len(
        [r for r in deliveries(db, hook["id"]) if r["last_error"]]) == 5 else None, what="five failures recorded")
    assert {(row["status"], row["attempts"], row["last_error"]) for row in rows} == {
        ("pending", 1, "connection refused")}


# --- in this process: time limits, inactive webhooks, giving up, the SSRF rules --------------------


def test_a_slow_receiver_times_out_and_holds_up_no_other_delivery(client, db, tenant_envs, paused):
    """The limits are the dispatcher's keyword (5 s to connect, 15 s in all in production; 1 s and
    1.5 s here), never a setting."""
    assert (delivery.LIMITS.connect, delivery.LIMITS.total) == (5.0, 15.0)
    user_id, headers = user_with_headers(client)
    with receiving(lambda _: Answer(200, sleep=4)) as slow, receiving() as fast:
        slow_hook = add_webhook(db, user_id, slow.url)
        fast_hook = add_webhook(db, user_id, fast.url)
        create(client, headers)  # one event, two deliveries: one batch
        started = time.monotonic()
        sender = in_process(tenant_envs["tenant1"], limits=delivery.Limits(connect=1.0, total=1.5))
        assert run_once(sender) == 2
        took = time.monotonic() - started
    assert took < 3.5
    (slow_row,) = deliveries(db, slow_hook["id"])
    (fast_row,) = deliveries(db, fast_hook["id"])
    assert (fast_row["status"], fast_row["last_status_code"]) == ("delivered", 200)
    assert (slow_row["status"], slow_row["attempts"], slow_row["last_error"]) == ("pending", 1, "timeout")


def test_one_users_slow_receivers_and_backlog_hold_up_no_other_user(client, db, tenant_envs, paused):
    """At most one delivery of a webhook, and two of a user, are out at once: with three workers, a
    user with two slow webhooks and a backlog of 40 deliveries takes two, and another user's
    delivery, due after all of them, goes out at once."""
    busy_id, busy_headers = user_with_headers(client)
    other_id, other_headers = user_with_headers(client)
    with receiving(lambda _: Answer(200, sleep=4)) as slow, receiving() as fast:
        slow_hooks = [add_webhook(db, busy_id, slow.url) for _ in range(2)]
        for _ in range(20):
            create(client, busy_headers)
        add_webhook(db, other_id, fast.url)
        create(client, other_headers)
        sender = in_process(tenant_envs["tenant1"], workers=3, limits=delivery.Limits(connect=1.0, total=1.5))
        stopping = threading.Event()
        runner = threading.Thread(target=sender.run, kwargs={"stopping": stopping, "every": 0.1})
        started = time.monotonic()
        runner.start()
        wait_until(fast.ids, timeout=5, what="the other user's delivery")
        took = time.monotonic() - started
        stopping.set()
        runner.join(timeout=10)  # once the two slow sends out have timed out
        assert not runner.is_alive()
    assert took < 1.0, took
    out = [row for hook in slow_hooks for row in deliveries(db, hook["id"]) if row["attempts"] > 0]
    assert [(row["attempts"], row["last_error"]) for row in out] == [(1, "timeout")] * 2


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                if stop.wait(0.2):
                    return
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    target = Target("http", "127.0.0.1", listener.getsockname()[1], "/", "127.0.0.1")
    started = time.monotonic()
    outcome = delivery.send(target, secret=new_secret(), message_id="1", payload=b"{}",
                            limits=delivery.Limits(connect=1.0, total=1.5))
    stop.set()
    listener.close()
    assert outcome == delivery.Outcome(None, "timeout")
    assert time.monotonic() - started < 2.5


def test_410_fails_every_pending_delivery_of_the_webhook(client, db, tenant_envs, paused):
    user_id, headers = user_with_headers(client)
    with receiving(lambda _: Answer(410)) as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        for _ in range(3):
            create(client, headers)
        first, *later = deliveries(db, hook["id"])
        db.execute("UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY(%s)",
                   ([row["id"] for row in later],))
        assert run_once(in_process(tenant_envs["tenant1"])) == 1
        assert len(receiver.requests) == 1
    rows = deliveries(db, hook["id"])
    assert [(r["status"], r["next_attempt_at"], r["last_error"]) for r in rows] == [
        ("failed", None, "webhook turned off: 410")] * 3
    assert [r["last_status_code"] for r in rows] == [410, None, None]


def test_a_delivery_of_a_webhook_turned_off_is_failed_unsent(client, db, tenant_envs, paused):
    user_id, headers = user_with_headers(client)
    with receiving() as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        create(client, headers)
        db.execute("UPDATE webhooks SET active = false WHERE id = %s", (hook["id"],))
        run_once(in_process(tenant_envs["tenant1"]))
        assert receiver.requests == []
    (row,) = deliveries(db, hook["id"])
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "webhook turned off")


def test_a_delivery_is_failed_after_the_schedule_and_a_day(client, db, tenant_envs, paused):
    user_id, headers = user_with_headers(client)
    with receiving(lambda _: Answer(503)) as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        create(client, headers)
        create(client, headers)
        old, young = deliveries(db, hook["id"])
        # Both past every delay of the schedule; only the older one is a day old.
        db.execute("UPDATE webhook_deliveries SET attempts = 7, created_at = now() - interval '25 hours'"
                   " WHERE id = %s", (old["id"],))
        db.execute("UPDATE webhook_deliveries SET attempts = 7, created_at = now() - interval '20 hours'"
                   " WHERE id = %s", (young["id"],))
        assert run_once(in_process(tenant_envs["tenant1"])) == 2
    old, young = deliveries(db, hook["id"])
    assert (old["status"], old["attempts"], old["last_error"], old["next_attempt_at"]) == (
        "failed", 8, "HTTP 503", None)
    now = db.execute("SELECT now() AS now").fetchone()["now"]
    assert young["status"] == "pending" and young["next_attempt_at"] - now > timedelta(hours=7)


def test_the_retry_schedule_is_standard_webhooks_with_jitter_for_over_a_day():
    assert [dispatcher.retry_delay(n, random_fraction=0.5) for n in range(1, 10)] == [
        timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
        timedelta(hours=5), timedelta(hours=10), timedelta(hours=10), timedelta(hours=10), timedelta(hours=10),
    ]
    assert dispatcher.retry_delay(1, random_fraction=0.0) == timedelta(seconds=4)
    assert dispatcher.retry_delay(1, random_fraction=0.999999) < timedelta(seconds=6)
    # The shortest schedule (every delay 20% short) still retries past a day.
    shortest = sum((dispatcher.retry_delay(n, random_fraction=0.0) for n in range(1, 8)), timedelta())
    assert shortest < timedelta(hours=24)
    queued = datetime(2026, 1, 1, tzinfo=UTC)
    assert not dispatcher.gives_up(8, queued, queued + shortest)
    assert dispatcher.gives_up(8, queued, queued + timedelta(hours=24))
    assert not dispatcher.gives_up(7, queued, queued + timedelta(hours=30))


def fake_resolver(answers: dict[str, list[str]]):
    """A getaddrinfo that answers each name with its next address; records the calls."""
    calls: list[str] = []

    def resolve(host, port, type=0, **_):
        calls.append(host)
        address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    resolve.calls = calls
    return resolve


def test_private_link_local_and_shared_addresses_are_refused_at_delivery(client, db, tenant_envs, paused):
    user_id, headers = user_with_headers(client)
    addresses = ["10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",  # noqa: S104 - an answer, not a bind
                 "fd00::1", "fe80::1", "::ffff:10.0.0.1"]
    hooks = {add_webhook(db, user_id, f"https://host{n}.example/hook")["id"]: address
             for n, address in enumerate(addresses)}
    create(client, headers)
    resolve = fake_resolver({f"host{n}.example": [address] for n, address in enumerate(addresses)})

    def never(*args, **kwargs):
        raise AssertionError("connected to a refused address")

    run_once(in_process(tenant_envs["tenant1"], resolve=resolve, send=never, workers=len(addresses)))
    for webhook_id in hooks:
        (row,) = deliveries(db, webhook_id)
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, None)
        assert row["last_error"] == "refused: The URL's host resolves to an address that is not public."
    assert sorted(resolve.calls) == sorted(f"host{n}.example" for n in range(len(addresses)))


def test_the_connection_goes_to_the_address_checked_never_to_a_second_answer(client, db, tenant_envs, paused):
    """DNS rebinding: the name resolves to loopback (allowed here), then to a private address. Each
    delivery resolves once, and connects to what that check found."""
    user_id, headers = user_with_headers(client)
    with receiving() as receiver:
        hook = add_webhook(db, user_id, f"http://hooks.example:{receiver.port}/hook")
        resolve = fake_resolver({"hooks.example": ["127.0.0.1", "10.0.0.7"]})
        sender = in_process(tenant_envs["tenant1"], resolve=resolve)
        create(client, headers)
        run_once(sender)
        (request,) = receiver.requests
        assert request.headers["host"] == f"hooks.example:{receiver.port}"
        assert verified(request, hook["secret"])["type"] == "transaction.created"
        assert resolve.calls == ["hooks.example"]
        create(client, headers)
        run_once(sender)
        assert len(receiver.requests) == 1 and resolve.calls == ["hooks.example"] * 2
    first, second = deliveries(db, hook["id"])
    assert first["status"] == "delivered"
    assert (second["status"], second["last_error"]) == (
        "pending", "refused: The URL's host resolves to an address that is not public.")


# --- dispatchers as processes ------------------------------------------------------------------------


def dispatch_once(env: dict, log_path, **overrides) -> subprocess.Popen:
    env = {**{k: v for k, v in env.items() if k != "JWT_SECRET"}, **overrides}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [PYTHON, "-m", "service", "deliver-webhooks", "--once"], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )


def test_in_production_a_loopback_url_is_refused_without_connecting(client, db, tenant_envs, paused, tmp_path):
    user_id, headers = user_with_headers(client)
    with receiving() as receiver:
        hook = add_webhook(db, user_id, receiver.url)
        create(client, headers)
        process = dispatch_once(tenant_envs["tenant1"], tmp_path / "log", WEBHOOKS_ALLOW_LOOPBACK="false")
        assert process.wait(30) == 0, (tmp_path / "log").read_text()
        assert receiver.requests == []
    (row,) = deliveries(db, hook["id"])
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, None)
    assert row["last_error"] == "refused: The URL's host resolves to an address that is not public."


def test_concurrent_dispatchers_send_each_delivery_once(client, db, tenant_envs, paused, tmp_path):
    user_id, headers = user_with_headers(client)
    rows = "".join(f"2026-01-{day:02d}T00:00:00Z,expense,{day}.00,USD,Rent,\n" for day in range(1, 31))
    with receiving(lambda _: Answer(200, sleep=0.05)) as first, receiving(lambda _: Answer(200, sleep=0.05)) as second:
        hooks = [add_webhook(db, user_id, first.url), add_webhook(db, user_id, second.url)]
        imported = client.post(
            "/transactions/import", content=("occurred_at,type,amount,currency,category,description\n" + rows).encode(),
            headers={**headers, "Content-Type": "text/csv"},
        )
        assert imported.status_code == 201, imported.text
        assert sum(len(deliveries(db, hook["id"])) for hook in hooks) == 60
        processes = [dispatch_once(tenant_envs["tenant1"], tmp_path / f"log{n}") for n in range(3)]
        for n, process in enumerate(processes):
            assert process.wait(60) == 0, (tmp_path / f"log{n}").read_text()
        sent = first.ids() + second.ids()
    assert len(first.ids()) == len(set(first.ids())) == 30 and len(second.ids()) == len(set(second.ids())) == 30
    assert len(sent) == 60
    for hook in hooks:
        assert {(row["status"], row["attempts"]) for row in deliveries(db, hook["id"])} == {("delivered", 1)}
    # Each process counted its attempts: 60 in all, none twice.
    attempts = [
        json.loads(line)["attempts"]
        for n in range(3) for line in (tmp_path / f"log{n}").read_text().splitlines()
        if '"webhook dispatcher stopped"' in line
    ]
    assert len(attempts) == 3 and sum(attempts) == 60


def test_deliver_webhooks_stops_on_sigterm_and_refuses_a_bad_database(tenant_envs, tmp_path):
    env = {**{k: v for k, v in tenant_envs["tenant1"].items() if k != "JWT_SECRET"}}
    with open(tmp_path / "log", "ab") as log:
        process = subprocess.Popen([PYTHON, "-m", "service", "deliver-webhooks", "--every", "0.2"], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert '"webhook dispatcher stopped"' in (tmp_path / "log").read_text()

    bad = dispatch_once(tenant_envs["tenant1"], tmp_path / "bad",
                        DATABASE_URL="postgresql://nobody:wrong@127.0.0.1:1/none")
    assert bad.wait(30) == 1
    assert "unreachable" in (tmp_path / "bad").read_text()
