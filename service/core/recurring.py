"""Recurring transactions of one user: rules whose occurrences become ordinary transactions.

Each occurrence dated today or earlier (in the tenant's time zone, not past the rule's end_date)
becomes exactly one transaction, dated the start of its day, carrying the rule's id: at once when
a rule is created or changed, and for later days by `run_due` (`python -m service run-scheduled`).
A rule is locked while its occurrences are made and its last_occurrence moved past them, in one
transaction, so concurrent runs never make one twice, and a run after days of downtime catches up.
A change applies to the occurrences after the last one made; a deleted rule leaves its
transactions as they are. Occurrences falling while the rule's account is archived are skipped.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg import errors

from .. import recurrence
from ..db import CONTENTION, Connection
from ..periods import start_of_day, today
from ..records import RECURRING
from ..store import accounts as accounts_store
from ..store import owned, recurring
from . import accounts, idempotency, quotas
from .errors import Invalid, found

log = logging.getLogger(__name__)

# The most rules one user may have: GET /recurring-transactions lists them all, at most about 1.2 MB
# (every text at its longest in four-byte characters), as a page of transactions.
MAX_RULES = 200
# start_date at most this many days before today: a new rule makes at most 367 occurrences at once.
MAX_DAYS_BACK = 366
# The most occurrences of one rule made in one transaction; a rule with more due (after a long
# downtime) is taken up again by the same run.
MAX_OCCURRENCES_PER_STEP = MAX_DAYS_BACK + 1
# The schedule's fields: changing any of them starts counting occurrences afresh after the last one made.
SCHEDULE = ("frequency", "interval", "start_date", "end_date")


def _check_dates(rule: dict, *, new_start: bool, today: date) -> None:
    """Refuse a rule (as it would be saved) whose new start_date is more than MAX_DAYS_BACK days
    before today, or whose end_date is before its start_date."""
    problems = {}
    if new_start and rule["start_date"] < today - timedelta(days=MAX_DAYS_BACK):
        problems["start_date"] = [f"Must be at most {MAX_DAYS_BACK} days before today ({today.isoformat()})."]
    if rule["end_date"] is not None and rule["end_date"] < rule["start_date"]:
        problems["end_date"] = ["Must not be before start_date."]
    if problems:
        raise Invalid("validation_error", "The request is not valid.", fields=problems)


def _catch_up(conn: Connection, rule: dict, *, user_id: int, today: date, timezone: ZoneInfo) -> tuple[dict, int]:
    """Make the rule's due occurrences (at most MAX_OCCURRENCES_PER_STEP) into transactions and move
    it past them; the rule must be locked by the caller's transaction. Returns the rule as it is now
    and how many transactions were made."""
    due = recurrence.dates_after(rule, rule["last_occurrence"], until=today, limit=MAX_OCCURRENCES_PER_STEP)
    if not due:
        return rule, 0
    # The start of each day in the tenant's time zone (where midnight is skipped, the first instant after).
    instants = [start_of_day(day, timezone) for day in due]
    made = recurring.insert_occurrences(conn, rule=rule, user_id=user_id, instants=instants)
    rule = recurring.advance(
        conn, user_id=user_id, rule_id=rule["id"], last_occurrence=due[-1],
        next_occurrence=recurrence.next_after(rule, due[-1]),
    )
    return rule, made


def create(
    conn: Connection,
    *,
    user_id: int,
    data: dict,
    timezone: ZoneInfo,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[dict, bool]:
    """Save a rule and make its occurrences due by today; returns the rule and whether it replays an
    earlier create with the same idempotency key (a replay on a later day too)."""
    day = today(timezone, now)
    rule = {"interval": 1, "end_date": None, **data}

    def perform() -> dict:
        _check_dates(rule, new_start=True, today=day)
        with conn.transaction():
            # The user's row first (as the user's deletion takes it), then the rule, then its account.
            quotas.make_room(
                conn, RECURRING, user_id=user_id, cap=MAX_RULES, code="too_many_recurring",
                what="recurring transactions",
            )
            if rule.get("account_id") is None:
                rule["account_id"] = accounts_store.default_account(conn, user_id=user_id)["id"]
            else:
                accounts.check_usable(conn, user_id=user_id, account_id=rule["account_id"], field="account_id")
            saved = owned.insert(
                conn, RECURRING, user_id=user_id, data={**rule, "next_occurrence": recurrence.next_after(rule, None)}
            )
            return _catch_up(conn, saved, user_id=user_id, today=day, timezone=timezone)[0]

    return idempotency.once(
        conn, user_id=user_id, key=idempotency_key, operation="create_recurring", request=data, record=RECURRING,
        perform=perform,
    )


def get(conn: Connection, *, user_id: int, rule_id: int) -> dict:
    return found(owned.get(conn, RECURRING, user_id=user_id, id=rule_id), "recurring transaction")


def list_all(conn: Connection, *, user_id: int) -> list[dict]:
    return owned.list_all(conn, RECURRING, user_id=user_id)


def update(
    conn: Connection, *, user_id: int, rule_id: int, changes: dict, timezone: ZoneInfo, now: datetime | None = None
) -> dict:
    """Change a rule: the change applies to the occurrences after the last one made, which are made
    at once when due."""
    day = today(timezone, now)
    with conn.transaction():
        # The user's row first, as the user's deletion takes it, then the rule: no deadlock with it.
        owned.lock_user(conn, user_id=user_id, share=True)
        current = found(owned.get(conn, RECURRING, user_id=user_id, id=rule_id, lock=True), "recurring transaction")
        rule = {**current, **changes}
        _check_dates(rule, new_start=rule["start_date"] != current["start_date"], today=day)
        if "account_id" in changes:
            accounts.check_usable(conn, user_id=user_id, account_id=changes["account_id"], field="account_id")
        if any(name in changes for name in SCHEDULE):
            changes = {**changes, "next_occurrence": recurrence.next_after(rule, current["last_occurrence"])}
        try:
            changed = owned.update(conn, RECURRING, user_id=user_id, id=rule_id, changes=changes)
        except errors.ForeignKeyViolation as exc:  # the account was deleted since it was checked
            raise accounts.unknown_account("account_id") from exc
        changed = found(changed, "recurring transaction")  # it was locked above: always there
        return _catch_up(conn, changed, user_id=user_id, today=day, timezone=timezone)[0]


def delete(conn: Connection, *, user_id: int, rule_id: int) -> None:
    """Stop a rule; the transactions it made stay as they are."""
    found(owned.delete(conn, RECURRING, user_id=user_id, id=rule_id), "recurring transaction")


def run_due(conn: Connection, *, timezone: ZoneInfo, now: datetime | None = None) -> int:
    """Make every due occurrence of every user's rules into transactions, one rule per transaction;
    returns how many were made. Safe to run concurrently: a rule another run holds is left to it."""
    day = today(timezone, now)
    made, failed = 0, list[int]()
    while True:
        with conn.transaction():
            rule = recurring.lock_next_due(conn, today=day, skip=failed)
            if rule is None:
                return made
            try:
                with conn.transaction():  # a savepoint: a rule that cannot be made is left as it was
                    made += _catch_up(conn, rule, user_id=rule.pop("user_id"), today=day, timezone=timezone)[1]
            # A row the rule's writes refuse, a lock held too long or a deadlock, a statement past its
            # timeout: the rule is left as it was, for the next run.
            except (errors.DataError, errors.IntegrityError, errors.QueryCanceled, *CONTENTION) as exc:
                reason = type(exc).__name__
                log.warning("recurring transaction %s was not made (%s); the next run retries it", rule["id"], reason)
                failed.append(rule["id"])
