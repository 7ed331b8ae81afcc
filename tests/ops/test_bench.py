"""The benchmark harness's pure parts: reading wrk, measuring PSS, building the deep-page cursor.

No wrk run and no seeding here: `make bench` does those (docs/performance.md).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from benchmark import load, procfs, profiling, report, scenarios, seed, targets  # scripts/ is on the path

from service.core.recurring import MAX_DAYS_BACK
from service.records import Position
from service.recurrence import dates_after, next_after
from service.schemas import BudgetCreate, Cursor, RecurringCreate, transaction_cursor

# Captured from `wrk -t2 -c8 -d10s --timeout 10s --latency` against this service (POST /login, which
# had hit a lockout: the Non-2xx and Socket errors lines only appear when there are some).
WRK_WITH_ERRORS = """\
Running 10s test @ http://127.0.0.1:47121/login
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   478.12ms  310.45ms   1.75s    71.43%
    Req/Sec     4.12      3.01    10.00     58.33%
  Latency Distribution
     50%  390.80ms
     75%  612.33ms
     90%  901.02ms
     99%    1.75s
  63 requests in 10.02s, 23.41KB read
  Socket errors: connect 0, read 0, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:      6.29
Transfer/sec:      2.34KB
"""

WRK_CLEAN = """\
Running 10s test @ http://127.0.0.1:47121/health
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.61ms    1.02ms  24.13ms   88.12%
    Req/Sec     1.55k   112.40     1.80k    69.50%
  Latency Distribution
     50%  850.00us
     75%    2.90ms
     90%    3.61ms
     99%    6.02ms
  30915 requests in 10.01s, 5.01MB read
Requests/sec:   3088.41
Transfer/sec:    512.77KB
"""


def test_wrk_report_is_read_with_its_errors():
    figures = load.parse_wrk(WRK_WITH_ERRORS)

    assert figures["requests"] == 63
    assert figures["seconds"] == pytest.approx(10.02)
    assert figures["requests_per_s"] == pytest.approx(6.29)
    assert figures["latency_ms"] == {"p50": 390.8, "p75": 612.33, "p90": 901.02, "p99": 1750.0}
    assert figures["non_2xx"] == 7
    assert figures["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 2}


def test_wrk_report_without_error_lines_counts_none_and_converts_microseconds():
    figures = load.parse_wrk(WRK_CLEAN)

    assert figures["requests_per_s"] == pytest.approx(3088.41)
    assert figures["latency_ms"]["p50"] == pytest.approx(0.85)
    assert figures["latency_ms"]["p99"] == pytest.approx(6.02)
    assert figures["non_2xx"] == 0
    assert sum(figures["socket_errors"].values()) == 0


def test_a_report_without_latency_distribution_is_refused():
    without_latency = "\n".join(line for line in WRK_CLEAN.splitlines() if "%" not in line or "Stdev" in line)

    with pytest.raises(ValueError, match="wrk --latency"):
        load.parse_wrk(without_latency)


def test_pss_of_this_process_is_read_from_proc():
    pss = procfs.read_pss_kib(os.getpid())
    rss = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )

    assert 0 < pss <= rss * 1.1


def test_process_tree_includes_children_and_sums_their_pss():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in procfs.process_tree(os.getpid())
        tree = procfs.tree_pss(os.getpid())
        assert {str(os.getpid()), str(child.pid)} <= set(tree["processes_kib"])
        assert tree["total_mib"] == pytest.approx(sum(tree["processes_kib"].values()) / 1024, abs=0.1)
    finally:
        child.kill()
        child.wait()


def test_deep_page_cursor_round_trips_through_the_api_schema():
    occurred_at = datetime(2025, 3, 9, 23, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))

    value = scenarios.cursor_after(occurred_at, 90_001)

    assert Cursor().deserialize(value) == Position("-occurred_at", occurred_at, 90_001)
    # What the API hands out after the same row (the app's sessions run in UTC).
    assert value == transaction_cursor(Position("-occurred_at", occurred_at.astimezone(UTC), 90_001))


def test_seed_rows_are_copy_text_with_exact_two_place_amounts():
    rng = random.Random(1)  # noqa: S311
    lines = [seed.transaction_line(rng, 7, 70, 1_767_225_600.5) for _ in range(200)]

    assert seed.COPY_COLUMNS == ("user_id", "account_id", "type", "amount", "description", "category", "occurred_at")
    for line in lines:
        user_id, account_id, kind, amount, description, category, occurred_at = line.rstrip("\n").split("\t")
        assert user_id == "7" and account_id == "70" and kind in {"income", "expense"}
        assert Decimal(amount) > 0 and Decimal(amount).as_tuple().exponent == -2
        assert datetime.fromisoformat(occurred_at) == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
        assert (description == "\\N") == (category == "\\N")
    assert {line.split("\t")[2] for line in lines} == {"income", "expense"}


def test_heavy_rows_go_to_its_three_accounts_in_turn_and_others_to_their_default(monkeypatch):
    monkeypatch.setattr(seed, "HEAVY_ROWS", 300)
    monkeypatch.setattr(seed, "TOTAL_ROWS", 1_000)
    users = seed.SeededUsers(1, (11, 12, 13), [(2, 21), (3, 31)])

    plan = seed.plan_seed(datetime(2026, 11, 15, tzinfo=UTC), users, random.Random(1))  # noqa: S311

    def accounts(lines) -> dict[str, set[str]]:
        by_user: dict[str, set[str]] = {}
        for line in lines:
            user_id, account_id = line.split("\t")[:2]
            by_user.setdefault(user_id, set()).add(account_id)
        return by_user

    heavy = [*plan.heavy_current_month, *plan.heavy_older]
    assert [line.split("\t")[1] for line in heavy].count("12") == 100
    assert accounts(heavy) == {"1": {"11", "12", "13"}}
    assert accounts(plan.others) == {"2": {"21"}, "3": {"31"}}


def test_transfers_go_both_ways_between_two_accounts_after_the_reads():
    run_order = scenarios.in_run_order("/transactions?cursor=x", (11, 12))
    keys = [scenario.key for scenario in run_order]
    transfer = run_order[keys.index("transfer")]

    assert keys.index("accounts") < keys.index("create") < keys.index("transfer") < keys.index("login")
    assert (transfer.method, transfer.path) == ("POST", "/transfers")
    assert [(body["from_account_id"], body["to_account_id"]) for body in transfer.bodies] == [(11, 12), (12, 11)]
    assert scenarios.ACCOUNTS in scenarios.AT_BOTH_SIZES and scenarios.ACCOUNTS in run_order
    assert set(keys) == set(report.TABLE_ORDER)
    # Taken in turn, and no Idempotency-Key: each request is a new transfer.
    assert "function request()" in load.wrk_script(transfer, "t0k")
    assert "Idempotency-Key" not in load.wrk_script(transfer, "t0k")


def test_budgets_and_recurring_rules_are_read_on_the_seeded_data_and_budgets_at_both_sizes():
    run_order = scenarios.in_run_order("/transactions?cursor=x", (11, 12))
    keys = [scenario.key for scenario in run_order]

    assert keys.index("budgets") < keys.index("create") and keys.index("recurring") < keys.index("create")
    assert (scenarios.BUDGETS.method, scenarios.BUDGETS.path) == ("GET", "/budgets")  # the current month
    assert (scenarios.RECURRING.method, scenarios.RECURRING.path) == ("GET", "/recurring-transactions")
    assert scenarios.BUDGETS in scenarios.AT_BOTH_SIZES and scenarios.RECURRING not in scenarios.AT_BOTH_SIZES
    assert set(report.SIZE_LABELS) == {scenario.key for scenario in scenarios.AT_BOTH_SIZES}


def test_every_user_has_twenty_valid_budgets_first_on_the_expense_categories_its_rows_use():
    expenses = [category.name for category in seed.CATEGORIES if category.type == "expense"]
    categories = [category for category, _ in seed.BUDGETS]

    assert len(seed.BUDGETS) == 20 and len(set(categories)) == 20
    assert categories[: len(expenses)] == expenses
    assert not set(categories[len(expenses):]) & {category.name for category in seed.CATEGORIES}
    for category, amount in seed.BUDGETS:  # as POST /budgets would take them, so as the API matches them
        assert BudgetCreate().load({"category": category, "amount": amount}) == {
            "category": category, "amount": Decimal(amount)
        }


def test_seeded_rules_are_as_the_service_leaves_them_after_making_every_occurrence_up_to_today():
    today = date(2026, 11, 30)
    rows = {rule.description: seed.rule_row(rule, today) for rule in seed.RULES}

    for rule, row in zip(seed.RULES, rows.values(), strict=True):
        assert set(row) == set(seed.RULE_COLUMNS) - {"account_id"}
        assert rule.days_ago <= MAX_DAYS_BACK  # a start the API accepts
        writable = {name: value.isoformat() if isinstance(value, date) else value for name, value in row.items()
                    if name in RecurringCreate().fields and value is not None}
        assert RecurringCreate().load(writable)["amount"] == Decimal(rule.amount)
        made = dates_after(row, None, until=today, limit=1_000)
        assert row["last_occurrence"] == made[-1] <= today
        assert row["next_occurrence"] == next_after(row, made[-1])
        assert row["next_occurrence"] is None or row["next_occurrence"] > today
    assert rows["Monthly salary"]["start_date"] == date(2026, 2, 3)
    assert (rows["Monthly salary"]["last_occurrence"], rows["Monthly salary"]["next_occurrence"]) == (
        date(2026, 11, 3), date(2026, 12, 3)
    )
    assert (rows["Gym membership"]["last_occurrence"], rows["Gym membership"]["next_occurrence"]) == (
        date(2026, 11, 20), date(2026, 12, 4)  # every 14 days from 3 July, 150 days ago
    )
    assert (rows["Car insurance"]["last_occurrence"], rows["Car insurance"]["next_occurrence"]) == (
        date(2026, 8, 2), date(2027, 8, 2)
    )
    # Ended ten days ago: its last occurrence was its end_date, and none is left.
    assert (rows["Coffee"]["end_date"], rows["Coffee"]["last_occurrence"], rows["Coffee"]["next_occurrence"]) == (
        date(2026, 11, 20), date(2026, 11, 20), None
    )


def _results(
    accounts_p99: float, transfer_errors: int, accounts_ratio: float,
    budgets_p99: float = 5.0, budgets_errors: int = 0, budgets_ratio: float = 1.1,
) -> dict:
    """A run's figures, every scenario alike but GET /accounts, POST /transfers and GET /budgets."""
    def entry(key: str, p99: float = 5.0, non_2xx: int = 0) -> dict:
        return {
            "label": key, "requests_per_s": 1000.0, "ratio_to_health": 0.6, "latency_ms": {"p50": 2.0, "p99": p99},
            "non_2xx": non_2xx, "socket_errors": {"connect": 0, "timeout": 0}, "other_cpu": {},
            "connections_per_worker": {"1": 4, "2": 4},
        }

    def size(ratio: float) -> dict:
        p50s = {"p50_ms_10k": 2.0, "p50_ms_1m": 2.0 * ratio, "p50_ratio": ratio}
        return {**p50s, "connections_8": {**p50s, "connections_per_worker": [{"1": 8}, {"1": 5, "2": 3}]}}

    scenarios_ = {key: entry(key) for key in report.TABLE_ORDER}
    scenarios_["accounts"] = entry("accounts", p99=accounts_p99)
    scenarios_["transfer"] = entry("transfer", non_2xx=transfer_errors)
    scenarios_["budgets"] = entry("budgets", p99=budgets_p99, non_2xx=budgets_errors)
    return {
        "scenarios": scenarios_,
        "scale": {
            "tenant_rows_small": 10_000, "tenant_rows_large": 1_000_000, "heavy_current_month_rows": 2_000,
            "analytics_month": size(1.1), "accounts": size(accounts_ratio), "budgets": size(budgets_ratio),
        },
        "budgets_and_rules": {
            "month": "2026-11", "heavy_budgets": 20, "heavy_budgets_with_spending": 9, "heavy_recurring_rules": 7,
        },
        "memory": {"idle": {"total_mib": 100.0, "workers": 2}, "after": {"total_mib": 120.0, "workers": 2}},
        "seed": {"seconds_total": 60.0, "seconds_users": 0.2, "seconds_phase_a": 0.8, "seconds_phase_b": 59.0,
                 "rollup_trigger": True},
        "server": {"worker_class": "gthread", "threads": 4},
    }


def test_accounts_and_transfers_have_their_targets():
    passed = {t["target"]: t["passed"] for t in targets.evaluate(_results(24.0, 0, 1.4))}
    failed = {t["target"]: t["passed"] for t in targets.evaluate(_results(26.0, 3, 1.6))}
    ours = [
        "GET /accounts: p99 <= 25 ms", "GET /accounts: 0 errors", "POST /transfers: p99 <= 25 ms",
        "POST /transfers: 0 errors", "GET /accounts p50 at 1,000,000 vs 10,000 tenant rows (1 connection) <= 1.5",
    ]

    assert all(passed[name] for name in ours)
    assert [name for name in ours if not failed[name]] == [ours[0], ours[3], ours[4]]
    results = _results(24.0, 0, 1.4)
    table = report.format_table({**results, "targets": targets.evaluate(results)})
    assert "| GET /accounts: p99 <= 25 ms | 24.0 ms | PASS |" in table
    assert "- GET /accounts p50 with 1 connection: 2.00 ms at 10,000 tenant rows, 2.80 ms at 1,000,000 (1.40x)" in table


def test_budgets_have_their_targets():
    passed = {t["target"]: t for t in targets.evaluate(_results(5.0, 0, 1.1, 24.0, 0, 1.4))}
    failed = {t["target"]: t["passed"] for t in targets.evaluate(_results(5.0, 0, 1.1, 26.0, 2, 1.6))}
    ours = [
        "GET /budgets: p99 <= 25 ms", "GET /budgets: 0 errors",
        "GET /budgets p50 at 1,000,000 vs 10,000 tenant rows (1 connection) <= 1.5",
    ]

    assert all(passed[name]["passed"] for name in ours) and not any(failed[name] for name in ours)
    assert passed[ours[2]]["shown"] == "2.80 / 2.00 ms = 1.40x"
    # Every other target is met in both runs: GET /recurring-transactions is reported, with no target.
    assert all(verdict for name, verdict in failed.items() if name not in ours)
    assert not [name for name in failed if "recurring" in name]
    results = _results(5.0, 0, 1.1, 24.0, 0, 1.4)
    table = report.format_table({**results, "targets": targets.evaluate(results)})
    assert "| budgets | 1,000 | 0.60 | 2.00 | 24.00 | 0 | 0 |" in table
    assert "| recurring | 1,000 |" in table
    assert "- GET /budgets p50 with 1 connection: 2.00 ms at 10,000 tenant rows, 2.80 ms at 1,000,000 (1.40x)" in table
    assert "- the heavy user's 20 budgets, 9 with spending in 2026-11 (equal to its rows' in every category)," \
        " and its 7 recurring rules" in table


def test_login_script_takes_the_users_in_turn():
    scenario = scenarios.Scenario("login", "POST /login", "POST", "/login", authenticated=False, bodies=(
        {"username": "a@example.com", "password": "x" * 8}, {"username": "b@example.com", "password": "x" * 8},
    ))

    script = load.wrk_script(scenario, token="never-sent")

    assert "function request()" in script and "b@example.com" in script
    assert "Authorization" not in script and "wrk.body =" not in script


def test_single_body_script_sends_the_token():
    scenario = scenarios.Scenario("create", "POST /transactions", "POST", "/transactions", bodies=({"amount": "1.00"},))

    script = load.wrk_script(scenario, token="t0k")

    assert 'wrk.headers["Authorization"] = "Bearer t0k"' in script
    assert 'wrk.body = [[{"amount": "1.00"}]]' in script
    assert "function request()" not in script


def test_profile_summary_charges_each_sample_to_its_innermost_known_area():
    collapsed = "\n".join([
        'process 1:"gunicorn";Flask.__call__ (flask/app.py:1536);require_user.<locals>.wrapper '
        "(service/api/common.py:96);Connection.wait (psycopg/connection.py:420) 6",
        'process 1:"gunicorn";Flask.__call__ (flask/app.py:1536);finish_request (service/logs.py:79);'
        "StreamHandler.emit (logging/__init__.py:1113) 3",
        'process 1:"gunicorn";write (gunicorn/util.py:301) 1',
    ])

    summary = profiling.summarize_profile(collapsed)

    assert summary["samples"] == 10
    assert summary["areas"] == [["database (psycopg)", 0.6], ["logging", 0.3], ["gunicorn", 0.1]]
    assert summary["self"][0] == ["Connection.wait (psycopg/connection.py)", 0.6]
    assert ["require_user.<locals>.wrapper (service/api/common.py)", 0.6] in summary["service"]
    assert ["finish_request (service/logs.py)", 0.3] in summary["service"]


def test_established_connections_are_counted_for_the_process_holding_the_server_side():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"x")
                assert accepted.recv(1) == b"x"

                counts = procfs.established_connections([os.getpid()], port)

    # The accepted socket's local port is the server's; the client's end has an ephemeral one.
    assert counts == {str(os.getpid()): 1}
    assert report.spread_text({"11": 1, "12": 7}) == "7+1"


def test_a_webhook_subscriber_has_its_targets_beside_the_plain_create():
    run_order = scenarios.in_run_order("/transactions?cursor=x", (11, 12))
    keys = [scenario.key for scenario in run_order]
    assert keys.index("events") < keys.index("create") == keys.index("create_webhook") - 1
    hooked = run_order[keys.index("create_webhook")]
    assert hooked.setup == scenarios.ONE_WEBHOOK and hooked.bodies == run_order[keys.index("create")].bodies
    ours = ["POST /transactions, one active webhook: p99 <= 25 ms",
            "POST /transactions, one active webhook: rate within 10% of without"]

    def verdicts(p99: float, ratio: float) -> list:
        results = _results(24.0, 0, 1.4)
        results["scenarios"]["create_webhook"].update(ratio_to_health=ratio, latency_ms={"p50": 2.0, "p99": p99})
        evaluated = {t["target"]: t for t in targets.evaluate(results)}
        return [(evaluated[name]["passed"], evaluated[name]["shown"]) for name in ours]

    assert verdicts(24.0, 0.55) == [(True, "24.0 ms"), (True, "0.55 / 0.60 = 0.92x")]
    assert verdicts(26.0, 0.5) == [(False, "26.0 ms"), (False, "0.50 / 0.60 = 0.83x")]


def test_postgres_settings_are_taken_as_name_value_pairs_and_shown_with_the_machine():
    from benchmark import cli

    args = cli.parse_args(["--postgres-setting", "commit_delay=100", "--postgres-setting", "commit_siblings=2"])
    assert args.postgres_setting == [("commit_delay", "100"), ("commit_siblings", "2")]
    for bad in ("commit_delay", "commit delay=1", "=1", "Commit_Delay=1; DROP"):
        with pytest.raises(SystemExit):
            cli.parse_args(["--postgres-setting", bad])
    machine = {"nproc": 2, "cpu_model": "x", "memory_gib": 1, "kernel": "k", "python": "p", "postgresql": "15",
               "wrk": "wrk", "git_commit": "abc", "git_dirty": False}
    server = {"worker_class": "sync", "workers": 4, "threads": 1}
    shown = report.describe_machine({"machine": machine, "server": server,
                                     "options": {"postgres_settings": dict(args.postgres_setting)}})
    assert shown.endswith("commit abc; commit_delay=100; commit_siblings=2")
    assert report.describe_machine({"machine": machine, "server": server, "options": {}}).endswith("commit abc")


def test_cpu_per_request_is_each_servers_ticks_over_the_requests():
    ticks = procfs.CLOCK_TICKS  # per second
    before, after = {"gunicorn": 0, "postgres": 10}, {"gunicorn": 2 * ticks, "postgres": 10 + ticks}
    assert procfs.per_request_ms(before, after, 1000) == {"gunicorn": 2.0, "postgres": 1.0}
    # No request completed: the whole time is charged to one, not divided by zero.
    assert procfs.per_request_ms({"gunicorn": 0}, {"gunicorn": ticks}, 0) == {"gunicorn": 1000.0}
