"""The webhook dispatcher: sends the pending deliveries that are due (`python -m service
deliver-webhooks`), and records what came of each attempt.

A delivery is made by a trigger in the transaction of the change it tells of (migration 0014), so
every committed change has exactly one per webhook that takes its type. The dispatcher claims a few
due ones in one short statement (store.dispatch.claim: row locks with SKIP LOCKED, and a lease
longer than a send may take), sends each on a worker thread of its own (a slow receiver holds up
only its own worker), and records each outcome in one short statement: no transaction is open while
a request is out. Several dispatchers may run at once; none sends a delivery another holds. One that
dies mid-send leaves its lease to run out, and the delivery goes again with the same webhook-id (at
least once).

Outcomes: any 2xx is delivered; 410 Gone turns the webhook off and fails its pending deliveries;
anything else (an error status, a redirect, a timeout, a refused connection, a URL the SSRF rules
refuse now) is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (each ±20%, Standard
Webhooks' suggestion), then every 10 h until the delivery is a day old, then failed. A delivery of
a webhook turned off meanwhile is failed when claimed, never sent.

Events are kept 35 days (30 are promised): the dispatcher purges older ones now and then.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from .. import delivery, outbound, schemas
from ..db import Connection
from ..store import dispatch
from ..store import events as events_store
from . import events

log = logging.getLogger("service.dispatcher")

# Deliveries sent at once by one dispatcher; each claim takes at most as many as workers are free,
# so a claimed delivery is sent at once and its lease only has to outlast one send.
WORKERS = 8
# A claimed delivery is left to other dispatchers after this long: well past a send's 15 s limit.
LEASE = timedelta(seconds=60)
# The wait after the n-th failed attempt (Standard Webhooks' suggested schedule), each ±JITTER.
RETRY_DELAYS = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10),
)
JITTER = 0.2
# A delivery is retried for at least this long (and at least once per delay above), then failed.
RETRY_FOR = timedelta(hours=24)
# Events older than this are purged (with their deliveries), PURGE_BATCH at a time, every
# PURGE_EVERY seconds, at most PURGE_ROUNDS batches in a row (the rest waits for the next time).
EVENT_RETENTION = timedelta(days=35)
PURGE_BATCH = 1000
PURGE_ROUNDS = 100
PURGE_EVERY = 600.0
PURGE_SECONDS = 3.0
TURNED_OFF = "webhook turned off"
GONE = "webhook turned off: 410"


def retry_delay(attempts: int, *, random_fraction: float) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt; random_fraction in [0, 1) spreads it
    by ±JITTER."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    return base * (1 + JITTER * (2 * random_fraction - 1))


def gives_up(attempts: int, queued_at: datetime, now: datetime) -> bool:
    """Whether a delivery whose `attempts`-th attempt just failed is failed for good: once every delay
    of the schedule has been waited and the delivery is RETRY_FOR old (the jitter may make the
    schedule itself a little shorter)."""
    return attempts > len(RETRY_DELAYS) and now - queued_at >= RETRY_FOR


@dataclass
class Dispatcher:
    """Sends the due deliveries of one tenant's database. `connect` opens an autocommit connection
    with dict rows; `resolve`, `send` and `limits` are the network's (tests give their own)."""

    connect: Callable[[], Connection]
    currency: str
    allow_loopback: bool
    workers: int = WORKERS
    resolve: outbound.Resolver = socket.getaddrinfo
    send: Callable[..., delivery.Outcome] = delivery.send
    limits: delivery.Limits = delivery.LIMITS
    random_fraction: Callable[[], float] = random.random
    # Called at every turn of the loop (at least every `every` seconds): a liveness probe's heartbeat.
    heartbeat: Callable[[], None] | None = None
    # Set when a connection could not be opened (`--once` then exits with status 1).
    unreachable: bool = field(default=False, init=False)
    _conn: Connection | None = field(default=None, init=False, repr=False)
    _next_purge: float = field(default=0.0, init=False, repr=False)
    _shown: schemas.EventPublic = field(default_factory=schemas.EventPublic, init=False, repr=False)

    def run(self, *, stopping: threading.Event, every: float | None) -> int:
        """Send what is due; with `every`, keep at it (polling every `every` seconds when nothing is
        due) until `stopping` is set; without, return once nothing more is due. Returns how many
        attempts were made. In-flight sends are finished and recorded before it returns."""
        attempts = 0
        in_flight: dict[Future[delivery.Outcome], dict] = {}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="webhook") as pool:
            while True:
                if self.heartbeat is not None:
                    self.heartbeat()
                self._record_finished(in_flight)
                if stopping.is_set():
                    break
                self._purge_when_due()
                free = self.workers - len(in_flight)
                claimed = self._claim(free) if free else []
                for row in claimed:
                    in_flight[pool.submit(self._attempt, row)] = row
                attempts += len(claimed)
                if every is None and not claimed and not in_flight:
                    break
                if free and len(claimed) == free:
                    continue  # more may be due
                if in_flight:
                    wait(in_flight, timeout=every or 1.0, return_when=FIRST_COMPLETED)
                elif every is not None:
                    stopping.wait(every)
            for future in list(in_flight):
                future.exception()  # waits: a send ends within its limits
            self._record_finished(in_flight)
        self.close()
        return attempts

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- the database: one short statement at a time ---------------------------------------------

    @contextmanager
    def _database(self, doing: str) -> Iterator[Connection | None]:
        """The connection (opened again after a failure), or None when the database cannot be reached;
        a failed statement is logged and the connection dropped, never raised: what it would have
        recorded is left to the lease."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self.connect()
        except psycopg.Error as exc:
            self.unreachable = True
            log.warning("webhook dispatcher: %s failed: the database is unreachable (%s)", doing, type(exc).__name__)
            yield None
            return
        try:
            yield self._conn
        except psycopg.Error as exc:
            log.warning("webhook dispatcher: %s failed (%s)", doing, type(exc).__name__)
            self.close()

    def _claim(self, limit: int) -> list[dict]:
        with self._database("claiming deliveries") as conn:
            if conn is not None:
                return dispatch.claim(conn, limit=limit, lease=LEASE)
        return []

    def _purge_when_due(self) -> None:
        if time.monotonic() < self._next_purge:
            return
        # A few seconds at most per turn of the loop, which meanwhile neither records finished sends
        # nor beats the heartbeat; what is left is taken up again soon after.
        deadline = time.monotonic() + PURGE_SECONDS
        self._next_purge = time.monotonic() + PURGE_EVERY
        purged = 0
        with self._database("purging old events") as conn:
            while conn is not None and purged < PURGE_ROUNDS * PURGE_BATCH:
                removed = events_store.purge(conn, older_than=EVENT_RETENTION, batch=PURGE_BATCH)
                purged += removed
                if removed < PURGE_BATCH:
                    break
                if time.monotonic() > deadline:
                    self._next_purge = time.monotonic() + PURGE_SECONDS
                    break
        if purged:
            log.info("purged events older than %s days", EVENT_RETENTION.days, extra={"events_purged": purged})

    def _record_finished(self, in_flight: dict[Future[delivery.Outcome], dict]) -> None:
        for future in [future for future in in_flight if future.done()]:
            row = in_flight.pop(future)
            try:
                outcome = future.result()
            except Exception:  # a bug, not the network's doing: logged, and retried as a failure
                log.exception("webhook delivery %s: the attempt failed unexpectedly", row["id"])
                outcome = delivery.failure("internal error")
            self._record(row, outcome)

    def _record(self, row: dict, outcome: delivery.Outcome) -> None:
        what = {"delivery_id": row["id"], "webhook_id": row["webhook_id"], "attempts": row["attempts"]}
        with self._database("recording a delivery") as conn:
            if conn is None:
                return  # the lease runs out, and the delivery goes again
            if outcome.delivered:
                assert outcome.status_code is not None
                dispatch.delivered(conn, delivery_id=row["id"], status_code=outcome.status_code)
                log.info("webhook delivered", extra={**what, "status_code": outcome.status_code})
                return
            error = outcome.error or ""
            if outcome.gone:
                failed = dispatch.turn_off(
                    conn, webhook_id=row["webhook_id"], delivery_id=row["id"], status_code=410, error=GONE
                )
                log.warning("webhook turned off: its receiver answered 410", extra={**what, "failed": failed})
            elif not row["active"] or gives_up(row["attempts"], row["queued_at"], datetime.now(UTC)):
                dispatch.failed(
                    conn, delivery_id=row["id"], attempts=row["attempts"], status_code=outcome.status_code, error=error
                )
                log.warning("webhook delivery failed for good", extra={**what, "error": error})
            else:
                after = retry_delay(row["attempts"], random_fraction=self.random_fraction())
                dispatch.retry(
                    conn, delivery_id=row["id"], attempts=row["attempts"], after=after,
                    status_code=outcome.status_code, error=error,
                )
                log.info(
                    "webhook delivery will be retried",
                    extra={**what, "error": error, "retry_in_seconds": round(after.total_seconds(), 1)},
                )

    # --- one attempt, on a worker thread -------------------------------------------------------------

    def _attempt(self, row: dict) -> delivery.Outcome:
        if not row["active"]:
            return delivery.failure(TURNED_OFF)
        try:
            # Checked again at each delivery; the request goes to the address checked here.
            target = outbound.check(row["url"], allow_loopback=self.allow_loopback, resolve=self.resolve)
        except outbound.Refused as exc:
            return delivery.failure(f"refused: {exc}")
        event = {"id": row["event_id"], "type": row["type"], "created_at": row["created_at"], "data": row["data"]}
        presented = self._shown.dump(events.present(event, self.currency))
        return self.send(
            target, secret=row["secret"], message_id=str(row["event_id"]), payload=delivery.body(presented),
            limits=self.limits,
        )
