"""Recurring transactions in the domain layer against the real database, with the clock given: each
occurrence becomes exactly one transaction at the start of its day in the tenant's time zone, runs
catch up after downtime, concurrent runs make each occurrence once, changes apply to what is not yet
made, and deleted rules and transactions stay as they are."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from service.core import recurring
from service.core.errors import Conflict, Invalid
from service.store import recurring as recurring_store
from tests.utils import insert_user

# tenant1's time zone, in which its daily and monthly totals are kept.
NEW_YORK = ZoneInfo("America/New_York")
# Noon in New York on 15 June 2026.
NOW = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
RENT = {"type": "expense", "amount": Decimal("1200.00"), "category": "rent", "frequency": "monthly"}


def _create(db, user_id: int, now: datetime = NOW, **fields) -> dict:
    rule, replayed = recurring.create(db, user_id=user_id, data={**RENT, **fields}, timezone=NEW_YORK, now=now)
    assert not replayed
    return rule


def _made(db, rule_id: int) -> list[datetime]:
    rows = db.execute(
        "SELECT occurred_at FROM transactions WHERE recurring_id = %s ORDER BY occurred_at", (rule_id,)
    ).fetchall()
    return [row["occurred_at"] for row in rows]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)


def test_a_new_rule_makes_its_past_occurrences_at_once_dated_the_start_of_their_days(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, start_date=date(2026, 3, 15))
    days = [date(2026, 3, 15), date(2026, 4, 15), date(2026, 5, 15), date(2026, 6, 15)]
    assert _made(db, rule["id"]) == [_midnight(day) for day in days]
    assert (rule["last_occurrence"], rule["next_occurrence"]) == (date(2026, 6, 15), date(2026, 7, 15))
    stored = db.execute("SELECT * FROM transactions WHERE recurring_id = %s", (rule["id"],)).fetchall()
    assert {(row["user_id"], row["type"], row["amount"], row["category"]) for row in stored} == {
        (user_id, "expense", Decimal("1200.00"), "rent")
    }
    # The balance and the monthly totals moved with them, as for any transaction.
    balance = db.execute("SELECT balance FROM accounts WHERE user_id = %s", (user_id,)).fetchone()["balance"]
    assert balance == Decimal("-4800.00")
    months = db.execute(
        "SELECT month, total FROM monthly_totals WHERE user_id = %s ORDER BY month", (user_id,)
    ).fetchall()
    expected = [(day.replace(day=1), Decimal("1200.00")) for day in days]
    assert [(row["month"], row["total"]) for row in months] == expected


def test_month_ends_and_leap_days_fall_on_the_last_day_of_shorter_months(db):
    user_id = insert_user(db)
    monthly = _create(db, user_id, start_date=date(2026, 1, 31), end_date=date(2026, 5, 31))
    assert [m.astimezone(NEW_YORK).date() for m in _made(db, monthly["id"])] == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)
    ]
    assert monthly["next_occurrence"] is None
    leap = _create(db, user_id, now=datetime(2028, 3, 1, 12, tzinfo=UTC), frequency="yearly",
                   start_date=date(2027, 3, 1))
    assert leap["next_occurrence"] == date(2029, 3, 1)
    yearly = _create(db, user_id, now=datetime(2025, 3, 1, 12, tzinfo=UTC), frequency="yearly",
                     start_date=date(2024, 2, 29))
    assert [m.astimezone(NEW_YORK).date() for m in _made(db, yearly["id"])] == [date(2024, 2, 29), date(2025, 2, 28)]
    assert yearly["next_occurrence"] == date(2026, 2, 28)


def test_today_is_the_tenants_calendar_day(db):
    """At 03:00 UTC on 1 March it is still 28 February in New York: a rule from 1 March waits."""
    user_id = insert_user(db)
    rule = _create(db, user_id, now=datetime(2026, 3, 1, 3, 0, tzinfo=UTC), start_date=date(2026, 3, 1))
    assert _made(db, rule["id"]) == [] and rule["next_occurrence"] == date(2026, 3, 1)
    assert recurring.run_due(db, timezone=NEW_YORK, now=datetime(2026, 3, 1, 4, 59, tzinfo=UTC)) == 0
    assert recurring.run_due(db, timezone=NEW_YORK, now=datetime(2026, 3, 1, 5, 0, tzinfo=UTC)) == 1
    # Midnight of 1 March in New York (EST, UTC-5).
    assert _made(db, rule["id"]) == [datetime(2026, 3, 1, 5, 0, tzinfo=UTC)]


def test_a_daily_rule_across_the_change_to_summer_time_starts_each_local_day(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, now=datetime(2026, 3, 9, 12, tzinfo=UTC), frequency="daily",
                   start_date=date(2026, 3, 7))
    assert _made(db, rule["id"]) == [
        datetime(2026, 3, 7, 5, tzinfo=UTC), datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 3, 9, 4, tzinfo=UTC)
    ]


def test_runs_catch_up_after_days_of_downtime_and_make_nothing_twice(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, frequency="daily", start_date=NOW.date() - timedelta(days=2))
    assert len(_made(db, rule["id"])) == 3
    assert recurring.run_due(db, timezone=NEW_YORK, now=NOW) == 0
    # Down for ten days: the next run makes each missed day once.
    later = NOW + timedelta(days=10)
    assert recurring.run_due(db, timezone=NEW_YORK, now=later) == 10
    assert recurring.run_due(db, timezone=NEW_YORK, now=later) == 0
    made = _made(db, rule["id"])
    assert len(made) == len(set(made)) == 13
    assert made[-1] == _midnight(later.date())


def test_a_rule_far_behind_is_caught_up_in_steps_by_one_run(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, frequency="daily", start_date=NOW.date())
    two_years = NOW + timedelta(days=730)
    assert recurring.run_due(db, timezone=NEW_YORK, now=two_years) == 730
    assert len(_made(db, rule["id"])) == 731


def test_concurrent_runs_make_each_occurrence_once(db, stack):
    users = [insert_user(db) for _ in range(3)]
    rules = [_create(db, users[n % 3], frequency="daily", start_date=NOW.date()) for n in range(30)]
    later = NOW + timedelta(days=20)
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def run() -> None:
        with stack.cluster.connect("tenant1") as conn:
            conn.row_factory = dict_row
            barrier.wait()
            counts.append(recurring.run_due(conn, timezone=NEW_YORK, now=later))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 30 * 20
    for rule in rules:
        made = _made(db, rule["id"])
        assert len(made) == len(set(made)) == 21


def test_a_change_applies_to_occurrences_not_yet_made(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, start_date=date(2026, 4, 1))
    assert len(_made(db, rule["id"])) == 3  # April, May, June
    changed = recurring.update(
        db, user_id=user_id, rule_id=rule["id"], changes={"amount": Decimal("1300.00")}, timezone=NEW_YORK, now=NOW
    )
    assert changed["amount"] == Decimal("1300.00") and changed["next_occurrence"] == date(2026, 7, 1)
    # A new schedule counts from its own start, after the last occurrence made: none made again.
    changed = recurring.update(
        db, user_id=user_id, rule_id=rule["id"], changes={"frequency": "weekly", "start_date": date(2026, 5, 20)},
        timezone=NEW_YORK, now=NOW,
    )
    assert changed["last_occurrence"] == date(2026, 6, 10) and changed["next_occurrence"] == date(2026, 6, 17)
    amounts = db.execute(
        "SELECT occurred_at, amount FROM transactions WHERE recurring_id = %s ORDER BY occurred_at", (rule["id"],)
    ).fetchall()
    assert [(row["occurred_at"].astimezone(NEW_YORK).date(), row["amount"]) for row in amounts] == [
        (date(2026, 4, 1), Decimal("1200.00")), (date(2026, 5, 1), Decimal("1200.00")),
        (date(2026, 6, 1), Decimal("1200.00")), (date(2026, 6, 3), Decimal("1300.00")),
        (date(2026, 6, 10), Decimal("1300.00")),
    ]


def test_deleted_transactions_are_not_remade_and_a_deleted_rule_leaves_its_own(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, frequency="daily", start_date=NOW.date() - timedelta(days=4))
    db.execute(
        "DELETE FROM transactions WHERE recurring_id = %s AND occurred_at < %s", (rule["id"], _midnight(NOW.date()))
    )
    assert recurring.run_due(db, timezone=NEW_YORK, now=NOW + timedelta(days=1)) == 1
    assert len(_made(db, rule["id"])) == 2
    recurring.delete(db, user_id=user_id, rule_id=rule["id"])
    assert recurring.run_due(db, timezone=NEW_YORK, now=NOW + timedelta(days=5)) == 0
    assert len(_made(db, rule["id"])) == 2


def test_occurrences_while_the_account_is_archived_are_skipped(db):
    user_id = insert_user(db)
    account_id = db.execute(
        "INSERT INTO accounts (user_id, name, kind) VALUES (%s, 'Cash', 'cash') RETURNING id", (user_id,)
    ).fetchone()["id"]
    rule = _create(db, user_id, frequency="daily", start_date=NOW.date(), account_id=account_id)
    db.execute("UPDATE accounts SET archived = true WHERE id = %s", (account_id,))
    assert recurring.run_due(db, timezone=NEW_YORK, now=NOW + timedelta(days=3)) == 0
    db.execute("UPDATE accounts SET archived = false WHERE id = %s", (account_id,))
    assert recurring.run_due(db, timezone=NEW_YORK, now=NOW + timedelta(days=4)) == 1
    assert [m.astimezone(NEW_YORK).date() for m in _made(db, rule["id"])] == [
        NOW.date(), NOW.date() + timedelta(days=4)
    ]


def test_a_start_more_than_366_days_back_is_refused_and_writes_nothing(db):
    user_id = insert_user(db)
    _create(db, user_id, frequency="daily", start_date=NOW.date() - timedelta(days=366))
    with pytest.raises(Invalid) as refused:
        _create(db, user_id, frequency="daily", start_date=NOW.date() - timedelta(days=367))
    assert "start_date" in refused.value.fields
    assert db.execute("SELECT count(*) AS n FROM recurring_transactions").fetchone()["n"] == 1


def test_an_archived_account_is_refused(db):
    user_id = insert_user(db)
    account_id = db.execute(
        "INSERT INTO accounts (user_id, name, kind, archived) VALUES (%s, 'Old', 'cash', true) RETURNING id",
        (user_id,),
    ).fetchone()["id"]
    with pytest.raises(Conflict):
        _create(db, user_id, start_date=NOW.date(), account_id=account_id)
    assert db.execute("SELECT count(*) AS n FROM transactions").fetchone()["n"] == 0


def test_a_rule_that_cannot_be_made_is_left_for_the_next_run_and_the_others_go_on(db):
    user_id = insert_user(db)
    broken = _create(db, user_id, frequency="daily", start_date=NOW.date())
    fine = _create(db, user_id, frequency="daily", start_date=NOW.date())
    # An amount the transactions table refuses (its checks are stricter than the rule's).
    db.execute("ALTER TABLE recurring_transactions DROP CONSTRAINT recurring_transactions_amount_check")
    try:
        db.execute("UPDATE recurring_transactions SET amount = 0 WHERE id = %s", (broken["id"],))
        assert recurring.run_due(db, timezone=NEW_YORK, now=NOW + timedelta(days=2)) == 2
    finally:
        db.execute("UPDATE recurring_transactions SET amount = 1 WHERE id = %s", (broken["id"],))
        db.execute("ALTER TABLE recurring_transactions ADD CHECK (amount > 0 AND amount <> 'NaN')")
    assert len(_made(db, fine["id"])) == 3 and len(_made(db, broken["id"])) == 1
    assert recurring.get(db, user_id=user_id, rule_id=broken["id"])["last_occurrence"] == NOW.date()


def test_psycopg_connection_of_the_scheduler_is_autocommit(stack):
    """run_due commits each rule on its own: on an autocommit connection nothing is left open."""
    with stack.cluster.connect("tenant1") as conn:
        conn.row_factory = dict_row
        recurring.run_due(conn, timezone=NEW_YORK, now=NOW)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_run_and_the_users_deletion_at_once_never_deadlock(db, stack):
    """The run takes the user's row before the rule, as the deletion's cascade does: whichever comes
    first, the other waits or passes over it, and neither fails."""
    user_id = insert_user(db)
    _create(db, user_id, frequency="daily", start_date=NOW.date())
    later = NOW + timedelta(days=3)
    with stack.cluster.connect("tenant1") as scheduler, stack.cluster.connect("tenant1") as deleter:
        scheduler.row_factory = dict_row
        deleter.execute("SET lock_timeout = '10s'")
        with scheduler.transaction():
            rule = recurring_store.lock_next_due(scheduler, today=later.date(), skip=[])
            assert rule is not None
            deletion = threading.Thread(target=deleter.execute, args=("DELETE FROM users WHERE id = %s", (user_id,)))
            deletion.start()
            deletion.join(0.5)
            assert deletion.is_alive()  # the deletion waits for the run's hold on the user
            recurring_store.insert_occurrences(scheduler, rule=rule, user_id=user_id, instants=[later])
        deletion.join(10)
        assert not deletion.is_alive()
    assert db.execute("SELECT count(*) AS n FROM recurring_transactions").fetchone()["n"] == 0


def test_a_run_passes_over_the_rules_of_a_user_being_deleted(db, stack):
    user_id = insert_user(db)
    _create(db, user_id, frequency="daily", start_date=NOW.date())
    with stack.cluster.connect("tenant1") as deleter, deleter.transaction():
        deleter.execute("DELETE FROM users WHERE id = %s", (user_id,))
        assert recurring.run_due(db, timezone=NEW_YORK, now=NOW + timedelta(days=3)) == 0
    assert db.execute("SELECT count(*) AS n FROM transactions").fetchone()["n"] == 0


def test_a_rule_whose_account_is_held_too_long_is_left_for_the_next_run(db, stack):
    user_id = insert_user(db)
    rule = _create(db, user_id, frequency="daily", start_date=NOW.date())
    later = NOW + timedelta(days=2)
    with stack.cluster.connect("tenant1") as scheduler, stack.cluster.connect("tenant1") as holder:
        scheduler.row_factory = dict_row
        scheduler.execute("SET lock_timeout = '200ms'")
        with holder.transaction():
            holder.execute("SELECT 1 FROM accounts WHERE user_id = %s FOR UPDATE", (user_id,))
            assert recurring.run_due(scheduler, timezone=NEW_YORK, now=later) == 0
        assert recurring.run_due(scheduler, timezone=NEW_YORK, now=later) == 2
    assert len(_made(db, rule["id"])) == 3


def test_a_retry_with_its_key_on_a_later_day_replays_even_past_the_oldest_start(db):
    user_id = insert_user(db)
    data = {**RENT, "frequency": "daily", "start_date": NOW.date() - timedelta(days=366)}
    first, _ = recurring.create(db, user_id=user_id, data=data, timezone=NEW_YORK, now=NOW, idempotency_key="k1")
    again, replayed = recurring.create(
        db, user_id=user_id, data=data, timezone=NEW_YORK, now=NOW + timedelta(days=1), idempotency_key="k1"
    )
    assert replayed and again == first


def test_a_change_that_resends_an_old_start_date_unchanged_is_accepted(db):
    user_id = insert_user(db)
    rule = _create(db, user_id, start_date=NOW.date() - timedelta(days=300))
    later = NOW + timedelta(days=100)
    changes = {"start_date": rule["start_date"], "amount": Decimal("1250.00")}
    changed = recurring.update(db, user_id=user_id, rule_id=rule["id"], changes=changes, timezone=NEW_YORK, now=later)
    assert changed["amount"] == Decimal("1250.00")
    with pytest.raises(Invalid):
        recurring.update(db, user_id=user_id, rule_id=rule["id"], timezone=NEW_YORK, now=later,
                         changes={"start_date": rule["start_date"] + timedelta(days=1)})
