"""Accounts and transfers at the SQL level (migration 0010): every account's balance, kept by
triggers, equals opening balance + income - expense + transfers in - transfers out after any mix of
writes; every user has exactly one default account; the composite foreign keys keep records within
their user's accounts and accounts in use undeletable; concurrent opposite transfers neither
deadlock nor drift."""

from __future__ import annotations

import random
import threading
import uuid
from decimal import Decimal

import localstack
import psycopg
import pytest
from psycopg import errors, sql

from tests.utils import check_totals, insert_user

# Every account whose kept balance differs from a recomputation from its records.
WRONG_BALANCES = """
    SELECT a.id, a.balance, a.opening_balance + coalesce(s.amount, 0) AS expected
    FROM accounts a
    LEFT JOIN (
        SELECT account_id, sum(amount) AS amount
        FROM (SELECT account_id, CASE type WHEN 'income' THEN amount ELSE -amount END FROM transactions
              UNION ALL SELECT to_account_id, amount FROM transfers
              UNION ALL SELECT from_account_id, -amount FROM transfers) AS m (account_id, amount)
        GROUP BY account_id
    ) s ON s.account_id = a.id
    WHERE a.balance <> a.opening_balance + coalesce(s.amount, 0)
"""
ADD_ACCOUNT = "INSERT INTO accounts (user_id, name, kind, opening_balance) VALUES (%s, %s, %s, %s) RETURNING id"
ADD_TRANSACTION = (
    "INSERT INTO transactions (user_id, account_id, type, amount, category, occurred_at)"
    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
)
ADD_TRANSFER = (
    "INSERT INTO transfers (user_id, from_account_id, to_account_id, amount) VALUES (%s, %s, %s, %s) RETURNING id"
)


def _rows(cur) -> list:
    return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in cur.fetchall()]


def assert_balances_exact(conn) -> None:
    assert _rows(conn.execute(WRONG_BALANCES)) == []


def default_account(conn, user_id: int) -> int:
    row = conn.execute("SELECT id FROM accounts WHERE user_id = %s AND is_default", (user_id,)).fetchone()
    return row["id"] if isinstance(row, dict) else row[0]


def test_balances_and_totals_equal_a_recomputation_after_any_mix_of_writes(db):
    rng = random.Random(13)
    users = [insert_user(db) for _ in range(2)]
    accounts = {
        user: [default_account(db, user)]
        + [db.execute(ADD_ACCOUNT, (user, name, kind, opening)).fetchone()["id"]
           for name, kind, opening in (("Savings", "savings", "100.50"), ("Card", "credit_card", "-250.00"))]
        for user in users
    }
    assert db.execute("SELECT balance FROM accounts WHERE id = %s", (accounts[users[0]][2],)).fetchone() == {
        "balance": Decimal("-250.00")
    }
    moments = ["2026-01-31T23:30:00-05:00", "2026-02-01T04:59:59Z", "2026-02-01T05:00:00Z", "2026-06-15T12:00:00Z"]

    def fields(user):
        return (user, rng.choice(accounts[user]), rng.choice(["income", "expense"]),
                f"{rng.randint(1, 99999) / 100:.2f}", rng.choice([None, "food", "rent"]), rng.choice(moments))

    # Single inserts, one without an account (the default one), a multi-row insert, a COPY.
    ids = [db.execute(ADD_TRANSACTION, fields(rng.choice(users))).fetchone()["id"] for _ in range(20)]
    unplaced = db.execute(
        "INSERT INTO transactions (user_id, type, amount) VALUES (%s, 'expense', 7.77) RETURNING account_id",
        (users[1],),
    ).fetchone()
    assert unplaced["account_id"] == default_account(db, users[1])
    many = [fields(rng.choice(users)) for _ in range(6)]
    db.execute(
        sql.SQL("INSERT INTO transactions (user_id, account_id, type, amount, category, occurred_at) VALUES {}").format(
            sql.SQL(", ").join([sql.SQL("(%s, %s, %s, %s, %s, %s)")] * len(many))
        ),
        [value for row in many for value in row],
    )
    copy_sql = "COPY transactions (user_id, account_id, type, amount, category, occurred_at) FROM STDIN"
    with db.cursor().copy(copy_sql) as copy:
        for _ in range(300):
            copy.write_row(fields(rng.choice(users)))
    assert_balances_exact(db)

    # Updates of every kind: amount, type, a move to another account, the three at once, and
    # columns the balances do not depend on; a multi-row update; deletes.
    owner = {row["id"]: row["user_id"] for row in db.execute("SELECT id, user_id FROM transactions")}
    for transaction in ids[:12]:
        user = owner[transaction]
        change, params = rng.choice([
            ("amount = %s", (f"{rng.randint(1, 9999) / 100:.2f}",)),
            ("type = CASE type WHEN 'income' THEN 'expense' ELSE 'income' END", ()),
            ("account_id = %s", (rng.choice(accounts[user]),)),
            ("account_id = %s, type = 'income', amount = amount + 1", (rng.choice(accounts[user]),)),
            ("description = 'only the text', category = 'moved'", ()),
            ("occurred_at = occurred_at + interval '40 days'", ()),
        ])
        db.execute(sql.SQL("UPDATE transactions SET {} WHERE id = %s").format(sql.SQL(change)), (*params, transaction))
    db.execute("UPDATE transactions SET account_id = %s WHERE user_id = %s AND category = 'food'",
               (accounts[users[0]][1], users[0]))
    db.execute("UPDATE transactions SET amount = amount * 2 WHERE user_id = %s AND category = 'rent'", (users[1],))
    db.execute("DELETE FROM transactions WHERE id = ANY(%s)", (ids[12:16],))
    db.execute("DELETE FROM transactions WHERE id IN (SELECT id FROM transactions WHERE category IS NULL LIMIT 40)")
    assert_balances_exact(db)

    # Transfers: single and multi-row inserts, updates of amount and of either side, deletes.
    transfers = []
    for _ in range(10):
        user = rng.choice(users)
        source, target = rng.sample(accounts[user], 2)
        transfers.append(db.execute(ADD_TRANSFER, (user, source, target, f"{rng.randint(1, 99999) / 100:.2f}"))
                         .fetchone()["id"])
    a, b, c = accounts[users[0]]
    db.execute(
        "INSERT INTO transfers (user_id, from_account_id, to_account_id, amount)"
        " VALUES (%(u)s, %(a)s, %(b)s, 1.01), (%(u)s, %(b)s, %(a)s, 2.02), (%(u)s, %(b)s, %(c)s, 3.03)",
        {"u": users[0], "a": a, "b": b, "c": c},
    )
    assert_balances_exact(db)
    t_owner = {row["id"]: row for row in db.execute("SELECT * FROM transfers")}
    for transfer in transfers[:6]:
        row = t_owner[transfer]
        others = [x for x in accounts[row["user_id"]] if x not in (row["from_account_id"], row["to_account_id"])]
        change, params = rng.choice([
            ("amount = %s", ("0.01",)),
            ("from_account_id = %s", (others[0],)),
            ("to_account_id = %s, amount = amount + 5", (others[0],)),
            ("from_account_id = to_account_id, to_account_id = from_account_id", ()),
            ("description = 'rent share', occurred_at = now() - interval '1 day'", ()),
        ])
        db.execute(sql.SQL("UPDATE transfers SET {} WHERE id = %s").format(sql.SQL(change)), (*params, transfer))
    db.execute("DELETE FROM transfers WHERE id = ANY(%s)", (transfers[6:8],))
    db.execute("DELETE FROM transfers WHERE id = %s", (transfers[8],))
    assert_balances_exact(db)

    # A changed opening balance moves the balance by the difference.
    db.execute("UPDATE accounts SET opening_balance = opening_balance + 10 WHERE id = %s", (b,))
    assert_balances_exact(db)

    before = _rows(db.execute("SELECT id, balance FROM accounts ORDER BY id"))
    db.execute("SELECT refresh_balances()")
    assert _rows(db.execute("SELECT id, balance FROM accounts ORDER BY id")) == before
    # The daily and monthly totals (by account) too; the drill's checks also recompute the balances.
    check_totals(db)


def test_refresh_balances_repairs_balances_written_around_the_triggers(db):
    user = insert_user(db)
    account = default_account(db, user)
    db.execute(ADD_TRANSACTION, (user, account, "income", "12.34", None, "2026-01-01T00:00:00Z"))
    db.execute("UPDATE accounts SET balance = 999 WHERE id = %s", (account,))
    assert _rows(db.execute(WRONG_BALANCES)) != []
    db.execute("SELECT refresh_balances()")
    assert db.execute("SELECT balance FROM accounts WHERE id = %s", (account,)).fetchone()["balance"] == Decimal(
        "12.34"
    )


def test_every_new_user_gets_exactly_one_default_main_account(db):
    one = insert_user(db)
    db.execute("INSERT INTO users (username, password_hash) SELECT 'bulk-' || n || '@example.com', 'x'"
               " FROM generate_series(1, 50) AS n")
    rows = db.execute(
        "SELECT u.id, count(a.id) AS accounts, bool_and(a.is_default) AS is_default, min(a.name) AS name,"
        " min(a.kind) AS kind, sum(a.balance) AS balance, bool_or(a.archived) AS archived"
        " FROM users u LEFT JOIN accounts a ON a.user_id = u.id GROUP BY u.id"
    ).fetchall()
    assert len(rows) == 51 and one in {row["id"] for row in rows}
    assert {(r["accounts"], r["is_default"], r["name"], r["kind"], r["balance"], r["archived"]) for r in rows} == {
        (1, True, "Main", "checking", Decimal("0.00"), False)
    }
    # A second default, a default archived, a name taken in another case, a bad kind or name: refused.
    with pytest.raises(errors.UniqueViolation):
        db.execute("INSERT INTO accounts (user_id, name, kind, is_default) VALUES (%s, 'Other', 'cash', true)", (one,))
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE accounts SET archived = true WHERE user_id = %s AND is_default", (one,))
    with pytest.raises(errors.UniqueViolation):
        db.execute("INSERT INTO accounts (user_id, name, kind) VALUES (%s, 'mAIN', 'cash')", (one,))
    for name, kind, opening in (("", "cash", "0"), ("x" * 65, "cash", "0"), ("Bad", "loan", "0"),
                                ("NaN", "cash", "NaN")):
        with pytest.raises(errors.CheckViolation):
            db.execute(ADD_ACCOUNT, (one, name, kind, opening))
    # Another user may use the same name.
    other = insert_user(db)
    db.execute(ADD_ACCOUNT, (other, "Savings", "savings", "0"))
    db.execute(ADD_ACCOUNT, (one, "savings", "savings", "0"))


def test_an_account_in_use_cannot_be_deleted_and_records_stay_within_their_users_accounts(db):
    user, other = insert_user(db), insert_user(db)
    main = default_account(db, user)
    spare, used_by_transaction, source, target = (
        db.execute(ADD_ACCOUNT, (user, name, "cash", "0")).fetchone()["id"] for name in ("s", "t", "from", "to")
    )
    theirs = default_account(db, other)
    db.execute(ADD_TRANSACTION, (user, used_by_transaction, "expense", "1.00", None, "2026-01-01T00:00:00Z"))
    db.execute(ADD_TRANSFER, (user, source, target, "2.00"))
    for account in (used_by_transaction, source, target, main):
        with pytest.raises(errors.ForeignKeyViolation), db.transaction():
            db.execute(ADD_TRANSACTION, (user, main, "expense", "1.00", None, "2026-01-01T00:00:00Z"))
            db.execute("DELETE FROM accounts WHERE id = %s", (account,))
    db.execute("DELETE FROM accounts WHERE id = %s", (spare,))

    # Another user's account, on either side of a transfer or under a transaction: refused.
    for sides in ((main, theirs), (theirs, main)):
        with pytest.raises(errors.ForeignKeyViolation):
            db.execute(ADD_TRANSFER, (user, *sides, "3.00"))
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute(ADD_TRANSACTION, (user, theirs, "income", "1.00", None, "2026-01-01T00:00:00Z"))
    transaction = db.execute("SELECT id FROM transactions WHERE user_id = %s LIMIT 1", (user,)).fetchone()["id"]
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("UPDATE transactions SET account_id = %s WHERE id = %s", (theirs, transaction))
    # The same account on both sides, an amount that is not positive: refused.
    for sides, amount in (((main, main), "1.00"), ((main, source), "0.00"), ((main, source), "-1.00"),
                          ((main, source), "NaN")):
        with pytest.raises(errors.CheckViolation):
            db.execute(ADD_TRANSFER, (user, *sides, amount))
    assert_balances_exact(db)


def test_a_users_deletion_removes_their_accounts_and_transfers(db):
    user, other = insert_user(db), insert_user(db)
    for who in (user, other):
        main = default_account(db, who)
        savings = db.execute(ADD_ACCOUNT, (who, "Savings", "savings", "5.00")).fetchone()["id"]
        db.execute(ADD_TRANSACTION, (who, main, "income", "100.00", "pay", "2026-01-01T00:00:00Z"))
        db.execute(ADD_TRANSACTION, (who, savings, "expense", "3.00", None, "2026-01-02T00:00:00Z"))
        db.execute(ADD_TRANSFER, (who, main, savings, "40.00"))
        db.execute(ADD_TRANSFER, (who, savings, main, "1.50"))
    db.execute("DELETE FROM users WHERE id = %s", (user,))
    for table in ("accounts", "transactions", "transfers", "daily_totals", "monthly_totals"):
        counts = db.execute(
            sql.SQL("SELECT count(*) FILTER (WHERE user_id = %s) AS gone, count(*) AS kept FROM {}").format(
                sql.Identifier(table)
            ),
            (user,),
        ).fetchone()
        assert counts["gone"] == 0 and counts["kept"] > 0, table
    balances = db.execute(
        "SELECT name, balance FROM accounts WHERE user_id = %s ORDER BY name", (other,)
    ).fetchall()
    assert balances == [{"name": "Main", "balance": Decimal("61.50")}, {"name": "Savings", "balance": Decimal("40.50")}]
    assert_balances_exact(db)
    check_totals(db)


def test_concurrent_opposite_transfers_neither_deadlock_nor_drift(stack, db):
    """Two sessions move money A->B and B->A, each also writing a transaction into the accounts in
    the same transaction; every account row is locked in id order, so none waits in a cycle."""
    user = insert_user(db)
    first = default_account(db, user)
    second = db.execute(ADD_ACCOUNT, (user, "Savings", "savings", "1000.00")).fetchone()["id"]
    rounds = 150
    start = threading.Barrier(2)
    failures: list[str] = []

    def move(source: int, target: int, amount: str) -> None:
        try:
            with stack.cluster.connect("tenant1") as conn:
                conn.execute("SET lock_timeout = '20s'")
                start.wait(10)
                for n in range(rounds):
                    with conn.transaction():
                        transfer = conn.execute(ADD_TRANSFER, (user, source, target, amount)).fetchone()[0]
                        conn.execute(ADD_TRANSACTION, (user, target, "expense", "0.01", None, "2026-01-01T00:00:00Z"))
                        conn.execute(ADD_TRANSACTION, (user, source, "income", "0.02", None, "2026-01-01T00:00:00Z"))
                        if n % 3 == 0:
                            conn.execute("UPDATE transfers SET amount = amount + 1 WHERE id = %s", (transfer,))
                        if n % 5 == 0:
                            conn.execute("DELETE FROM transfers WHERE id = %s", (transfer,))
        except psycopg.Error as error:  # a deadlock or a lock timeout
            failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=move, args=(first, second, "3.00")),
               threading.Thread(target=move, args=(second, first, "5.00"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert db.execute("SELECT count(*) AS n FROM transfers").fetchone()["n"] == 2 * (rounds - rounds // 5)
    assert_balances_exact(db)
    # Each round moves 0.01 of expense and 0.02 of income into each account; the transfers net out
    # as 3 and 5 per kept transfer, plus 1 for each one updated and kept.
    kept = [n for n in range(rounds) if n % 5 != 0]
    moved = {first: Decimal(0), second: Decimal(0)}
    for source, target, amount in ((first, second, Decimal(3)), (second, first, Decimal(5))):
        for n in kept:
            value = amount + (1 if n % 3 == 0 else 0)
            moved[source] -= value
            moved[target] += value
    balances = dict(_rows(db.execute("SELECT id, balance FROM accounts WHERE user_id = %s", (user,))))
    assert balances == {
        first: Decimal("0.00") + moved[first] + rounds * Decimal("0.01"),
        second: Decimal("1000.00") + moved[second] + rounds * Decimal("0.01"),
    }


def _apply_migrations(conn, *, through: str) -> None:
    """Apply the migration files in name order up to and including `through`, as migrate does."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for path in sorted((localstack.ROOT / "service" / "migrations").glob("*.sql")):
        version = path.stem
        if version > through:
            break
        if version in done:
            continue
        with conn.transaction():
            conn.execute(path.read_bytes())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


def test_accounts_migration_puts_a_populated_databases_transactions_in_each_users_main_account(stack):
    """0010 on a database that 0001-0009 built and filled: every user has one default Main account
    holding all their transactions, balances are income - expense, and the totals (now by account)
    equal a recomputation in the time zone they are keyed by."""
    name = f"accounts_{uuid.uuid4().hex[:8]}"
    database_url = stack.cluster.ensure_database(name, "probe-password-123")
    with psycopg.connect(database_url, autocommit=True) as conn:
        _apply_migrations(conn, through="0009_idempotency_operation")
        conn.execute("UPDATE rollup_settings SET timezone = 'America/New_York'")
        conn.execute("SELECT refresh_totals()")
        users = [row[0] for row in conn.execute(
            "INSERT INTO users (username, password_hash) SELECT 'migrated-' || n, 'x'"
            " FROM generate_series(1, 3) AS n RETURNING id"
        )]
        copy_sql = "COPY transactions (user_id, type, amount, category, occurred_at) FROM STDIN"
        with conn.cursor().copy(copy_sql) as copy:
            for n in range(500):
                copy.write_row((users[n % 2], ["income", "expense"][n % 3 % 2], f"{n + 1}.25", [None, "food"][n % 2],
                                f"2026-0{1 + n % 4}-0{1 + n % 9}T0{n % 10}:30:00Z"))
        gone = conn.execute(
            "INSERT INTO transactions (user_id, type, amount, occurred_at) VALUES (%s, 'income', 9, '2026-05-01')"
            " RETURNING id", (users[0],)
        ).fetchone()[0]
        conn.execute("DELETE FROM transactions WHERE id = %s", (gone,))

        _apply_migrations(conn, through="9999")

        accounts = conn.execute(
            "SELECT user_id, id, name, kind, is_default, archived FROM accounts ORDER BY user_id"
        ).fetchall()
        assert [(user_id, name, kind, is_default, archived) for user_id, _, name, kind, is_default, archived
                in accounts] == [(user, "Main", "checking", True, False) for user in users]
        misplaced = conn.execute(
            "SELECT count(*) FROM transactions t JOIN accounts a ON a.id = t.account_id"
            " WHERE a.user_id <> t.user_id OR NOT a.is_default"
        )
        assert misplaced.fetchone()[0] == 0
        assert _rows(conn.execute(WRONG_BALANCES)) == []
        balances = dict(conn.execute("SELECT user_id, balance::text FROM accounts"))
        expected = dict(conn.execute(
            "SELECT u.id, coalesce(sum(CASE type WHEN 'income' THEN amount ELSE -amount END), 0)::numeric(20, 2)::text"
            " FROM users u LEFT JOIN transactions t ON t.user_id = u.id GROUP BY u.id"
        ))
        assert balances == expected and balances[users[2]] == "0.00"
        # A user made after the migration gets their Main account, and writes keep the balances.
        newcomer = conn.execute("INSERT INTO users (username, password_hash) VALUES ('newcomer', 'x') RETURNING id")
        newcomer = newcomer.fetchone()[0]
        conn.execute("INSERT INTO transactions (user_id, type, amount) VALUES (%s, 'income', 4.00)", (newcomer,))
        assert conn.execute("SELECT balance::text FROM accounts WHERE user_id = %s", (newcomer,)).fetchone() == (
            "4.00",
        )
        check_totals(conn)


def test_the_drill_check_finds_a_wrong_balance_an_account_total_in_the_wrong_account_and_a_user_without_default(db):
    user = insert_user(db)
    main = default_account(db, user)
    savings = db.execute(ADD_ACCOUNT, (user, "Savings", "savings", "0")).fetchone()["id"]
    db.execute(ADD_TRANSACTION, (user, main, "expense", "2.00", None, "2026-01-01T00:00:00Z"))
    bystander = insert_user(db)
    corruptions = {
        "account balances differ": ("UPDATE accounts SET balance = balance + 0.01 WHERE id = %s", (savings,)),
        "daily_totals rows differ": ("UPDATE daily_totals SET account_id = %s", (savings,)),
        "monthly_totals rows differ": ("UPDATE monthly_totals SET account_id = %s", (savings,)),
        "not exactly one default account": ("DELETE FROM accounts WHERE user_id = %s", (bystander,)),
    }
    for message, (statement, params) in corruptions.items():
        with pytest.raises(errors.RaiseException, match=message), db.transaction():
            db.execute(statement, params)
            check_totals(db)
    check_totals(db)


def test_category_and_date_changes_beside_imports_of_the_same_days_neither_deadlock_nor_drift(stack, db):
    """The review found a change of only a transaction's category or date locking the totals of its
    old and new keys without the account: two such changes swapping categories, or one beside an
    import (which locks every daily row in key order, then every monthly one), waited in a cycle.
    Every writer of the totals now locks its accounts first (in id order), so they queue instead."""
    # The balance triggers (which lock the accounts) fire before the totals ones: same timing and
    # level, so in name order (C collation); the row one fires on every column the totals one does.
    triggers = {row["tgname"]: row["columns"] for row in db.execute(
        "SELECT tgname, array(SELECT attname FROM pg_attribute WHERE attrelid = tgrelid AND attnum = ANY(tgattr)"
        " ORDER BY attname) AS columns FROM pg_trigger WHERE tgrelid = 'transactions'::regclass AND NOT tgisinternal"
        " ORDER BY tgname COLLATE \"C\""
    )}
    names = list(triggers)
    assert names.index("transactions_balances") < names.index("transactions_totals")
    assert names.index("transactions_inserted_balances") < names.index("transactions_inserted_totals")
    assert triggers["transactions_balances"] == triggers["transactions_totals"] == sorted(
        ["user_id", "account_id", "type", "amount", "category", "occurred_at"]
    )
    user = insert_user(db)
    account = default_account(db, user)
    days = ["2026-03-10T12:00:00Z", "2026-03-11T12:00:00Z"]
    first = db.execute(ADD_TRANSACTION, (user, account, "expense", "1.00", "a", days[0])).fetchone()["id"]
    second = db.execute(ADD_TRANSACTION, (user, account, "income", "2.00", "b", days[0])).fetchone()["id"]
    rounds, imports = 400, 40
    batch = [(user, account, ["income", "expense"][n % 2], f"{n % 7 + 1}.25", "abc"[n % 3], days[n % 2])
             for n in range(60)]
    insert_batch = sql.SQL(
        "INSERT INTO transactions (user_id, account_id, type, amount, category, occurred_at) VALUES {}"
    ).format(sql.SQL(", ").join([sql.SQL("(%s, %s, %s, %s, %s, %s)")] * len(batch)))
    start = threading.Barrier(3)
    failures: list[str] = []

    def connect() -> psycopg.Connection:
        conn = stack.cluster.connect("tenant1")
        conn.autocommit = True
        conn.execute("SET lock_timeout = '5s'")
        conn.execute("SET deadlock_timeout = '10ms'")
        return conn

    def swap(transaction: int) -> None:
        """PATCH-like: one UPDATE per transaction, flipping the category (a <-> b), and every fourth
        time the day too."""
        try:
            with connect() as conn:
                start.wait(10)
                for n in range(rounds):
                    conn.execute(
                        "UPDATE transactions SET category = CASE category WHEN 'a' THEN 'b' ELSE 'a' END,"
                        " occurred_at = CASE WHEN %s THEN occurred_at + CASE WHEN occurred_at = %s"
                        " THEN interval '1 day' ELSE interval '-1 day' END ELSE occurred_at END"
                        " WHERE id = %s",
                        (n % 4 == 3, days[0], transaction),
                    )
        except psycopg.Error as error:  # a deadlock or a lock timeout
            failures.append(f"{type(error).__name__}: {error}")

    def import_batches() -> None:
        """Import-like: multi-row INSERTs of the same days and categories, each its own transaction."""
        try:
            with connect() as conn:
                start.wait(10)
                for _ in range(imports):
                    conn.execute(insert_batch, [value for row in batch for value in row])
        except psycopg.Error as error:
            failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=swap, args=(first,)), threading.Thread(target=swap, args=(second,)),
               threading.Thread(target=import_batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    categories = dict(_rows(db.execute("SELECT id, category FROM transactions WHERE id = ANY(%s)", ([first, second],))))
    assert categories == {first: "a", second: "b"}  # an even number of flips each
    assert db.execute("SELECT count(*) AS n FROM transactions").fetchone()["n"] == 2 + imports * len(batch)
    assert_balances_exact(db)
    check_totals(db)
