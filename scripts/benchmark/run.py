"""One run: a fresh cluster and tenant, seeded in two phases, gunicorn, every scenario measured.

Phase A (10,000 rows) and phase B (the rest, up to 1,000,000) measure the current month's
analytics, the list of accounts and the budgets at both sizes; every scenario then runs on the whole data.
`run` returns the results (the JSON the command writes); `stop` stops what it started, whatever
happened.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain, islice
from typing import NamedTuple

import localstack
from psycopg import sql

from benchmark import STATE, procfs, scenarios, seed
from benchmark.api import http, login
from benchmark.archive import ArchiveSampler, full_backup, timed_restore
from benchmark.load import run_wrk, wrk_script
from benchmark.machine import code_state, machine_info, server_settings
from benchmark.profiling import finish_profiler, start_profiler
from benchmark.report import spread_text
from benchmark.scenarios import Scenario
from benchmark.seed import TENANT
from benchmark.targets import evaluate

AFTER_RUN_SETTLE_SECONDS = 5


@dataclass(frozen=True)
class PhaseA:
    """The first phase of the seed, and what the second one and the results need of it."""

    now: datetime
    plan: seed.SeedPlan
    users: seed.SeededUsers
    budgets: int  # every user's, in the tenant
    rules: int  # every user's recurring rules, in the tenant
    rows: int
    seconds_users: float
    seconds: float
    rollup: bool


class SizeRuns(NamedTuple):
    """One scenario of the data-size comparison at one size: its runs and its answer."""

    one: dict  # with 1 connection
    eight: dict  # with --connections
    answer: object


def size_comparison(small: SizeRuns, large: SizeRuns) -> dict:
    """One scenario's p50 with 10,000 and 1,000,000 tenant rows, on 1 connection and on 8.

    One connection: the request's own cost, whichever worker serves it. With 8, which worker holds
    how many keep-alive connections moves p50 as much as the data does.
    """
    (small_1, small_8, answer_small), (large_1, large_8, answer_large) = small, large

    def p50s(before: dict, after: dict) -> dict:
        p50_small, p50_large = before["latency_ms"]["p50"], after["latency_ms"]["p50"]
        return {"p50_ms_10k": p50_small, "p50_ms_1m": p50_large, "p50_ratio": round(p50_large / p50_small, 3)}

    return {
        **p50s(small_1, large_1),
        "connections_8": {
            **p50s(small_8, large_8),
            "connections_per_worker": [small_8["connections_per_worker"], large_8["connections_per_worker"]],
        },
        "same_answer": answer_small == answer_large,
        "runs": {"small": small_1, "large": large_1, "small_8": small_8, "large_8": large_8},
    }


def apply_postgres_settings(cluster: localstack.Cluster, settings: list[tuple[str, str]]) -> None:
    """Set each parameter with ALTER SYSTEM and restart the cluster (some take effect only then);
    refused when the server's command line sets it (localstack's own options win)."""
    with cluster.connect() as conn:
        for name, value in settings:
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    cluster.stop()
    cluster.start()
    with cluster.connect() as conn:
        rows = conn.execute(
            "SELECT name, source FROM pg_settings WHERE name = ANY(%s)", ([name for name, _ in settings],)
        ).fetchall()
    overridden = [name for name, source in rows if source != "configuration file"]
    if overridden:
        raise RuntimeError(f"the bench's cluster sets {', '.join(overridden)} on its command line; not changed")


class Bench:
    def __init__(self, args: argparse.Namespace, wrk: str) -> None:
        self.args = args
        self.wrk = wrk
        self.stack = localstack.Stack(STATE, localstack.free_port(), archived=args.archive)
        self.server: localstack.Server | None = None
        self.scripts = STATE / "lua"
        self.profiles = STATE / "profiles" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def run(self) -> dict:
        args, started = self.args, time.monotonic()
        started_at = datetime.now(UTC)
        results: dict = {
            "started_at": started_at.isoformat(timespec="seconds"),
            "options": {
                "duration_s": args.duration, "warmup_s": args.warmup, "scale_duration_s": args.scale_duration,
                "connections": args.connections, "threads": args.threads, "profile": args.profile,
                "archive": args.archive, "postgres_settings": dict(args.postgres_setting),
            },
        }
        env = self.start_database()
        results["server"] = server_settings(env)
        phase_a = self.seed_phase_a(results)
        idle = self.start_server(results, env)

        token = login(self.server.url)
        small = self.measure_size(phase_a.rows, token)
        deep_cursor, total_rows = self.seed_phase_b(results, phase_a, token)
        large = self.measure_size(total_rows, token)
        results["scale"] = {
            "tenant_rows_small": phase_a.rows, "tenant_rows_large": total_rows,
            "heavy_current_month_rows": len(phase_a.plan.heavy_current_month),
            **{key: size_comparison(small[key], large[key]) for key in small},
        }
        # The current month is the same rows in both phases, so its analytics and budgets are the same;
        # the accounts are the same three (their balances grow with phase B's rows).
        for key, what in (("analytics_month", "analytics"), ("budgets", "budgets")):
            if not results["scale"][key]["same_answer"]:
                print(f"  warning: the current month's {what} differ between the two phases", file=sys.stderr)
        counted = [len(size["budgets"].answer["items"]) for size in (small, large)]
        if counted != [len(seed.BUDGETS)] * 2:
            raise RuntimeError(f"GET /budgets lists {counted[0]} and {counted[1]} budgets, not {len(seed.BUDGETS)}")
        listed = [sorted(item["id"] for item in size["accounts"].answer["items"]) for size in (small, large)]
        if not listed[0] == listed[1] == sorted(phase_a.users.heavy_accounts):
            raise RuntimeError(f"GET /accounts lists {listed[0]} and {listed[1]}, not {phase_a.users.heavy_accounts}")

        deep_path = scenarios.deep_page_path(deep_cursor)
        results["scenarios"] = self.measure_scenarios(
            results, token, deep_path, phase_a.users.heavy_accounts[:2], phase_a.users.heavy_id
        )
        results["deep_page"] = {"after_rows": scenarios.DEEP_PAGE_AFTER, "cursor": deep_cursor}

        time.sleep(AFTER_RUN_SETTLE_SECONDS)  # requests still in flight when wrk stopped finish first
        after = procfs.tree_pss(self.server.process.pid)
        after["workers"] = len(after["processes_kib"]) - 1
        results["memory"] = {"idle": idle, "after": after}
        if self.stack.cluster.archive:
            self.server.stop()
            results["archive"]["restore"] = timed_restore(self.stack.cluster)
        results["targets"] = evaluate(results)
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["seconds_total"] = round(time.monotonic() - started, 1)
        return results

    def start_database(self) -> dict[str, str]:
        """A fresh cluster (and archive) with the tenant's database, migrated; the app's environment."""
        cluster = self.stack.cluster
        if cluster.is_running():  # left by an interrupted run
            cluster.stop("immediate")
        shutil.rmtree(cluster.directory, ignore_errors=True)
        shutil.rmtree(STATE / "logs", ignore_errors=True)
        shutil.rmtree(self.scripts, ignore_errors=True)
        self.scripts.mkdir(parents=True)

        load = os.getloadavg()[0]
        if load > 0.5 * len(os.sched_getaffinity(0)):
            print(f"bench: warning: load average {load:.1f} before the run; other work on this machine"
                  " lowers every figure", file=sys.stderr)
        print(f"bench: PostgreSQL cluster in {cluster.directory}", flush=True)
        if cluster.archive:
            shutil.rmtree(cluster.archive.directory, ignore_errors=True)
        cluster.start()
        if self.args.postgres_setting:
            apply_postgres_settings(cluster, self.args.postgres_setting)
        if cluster.archive:
            cluster.archive.run("stanza-create")
        return self.stack.prepare(TENANT)

    def seed_phase_a(self, results: dict) -> PhaseA:
        """The users, and the transactions of phase A (the heavy user's whole current month among them)."""
        now = datetime.now(UTC)
        rng = random.Random(seed.SEED)  # noqa: S311 - test data, not secrets
        with self.stack.cluster.connect(TENANT.name) as conn:
            results["machine"] = machine_info(conn)
            clock = time.monotonic()
            users = seed.seed_users(conn)
            budgets, rules = seed.seed_budgets_and_rules(conn, now.date())
            seconds_users = time.monotonic() - clock
            plan = seed.plan_seed(now, users, rng)
            clock = time.monotonic()
            phase_a_rows = chain(plan.heavy_current_month, islice(plan.others, plan.others_in_phase_a))
            rows = seed.copy_transactions(conn, phase_a_rows)
            seconds = time.monotonic() - clock
            rollup = seed.rollup_present(conn)
        print(f"bench: seeded {seed.USERS:,} users ({budgets:,} budgets, {rules:,} recurring rules) and {rows:,}"
              f" transactions (phase A) in {seconds_users + seconds:.1f} s", flush=True)
        return PhaseA(now, plan, users, budgets, rules, rows, seconds_users, seconds, rollup)

    def start_server(self, results: dict, env: dict[str, str]) -> dict:
        """gunicorn with every worker started; its PSS while idle."""
        self.server = self.stack.start_server(TENANT.name, env, localstack.free_port())
        results["machine"].update(code_state())
        workers = results["server"]["workers"]
        deadline = time.monotonic() + 30
        while len(procfs.child_pids(self.server.process.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # let the last worker finish importing the app
        idle = procfs.tree_pss(self.server.process.pid)
        idle["workers"] = len(idle["processes_kib"]) - 1
        print(f"bench: gunicorn at {self.server.url}, idle PSS {idle['total_mib']:.1f} MiB", flush=True)
        return idle

    def measure_size(self, rows: int, token: str) -> dict[str, SizeRuns]:
        """Each scenario of the data-size comparison with 1 and with 8 connections, and its answer."""
        print(f"bench: {', '.join(s.label for s in scenarios.AT_BOTH_SIZES)} at {rows:,} tenant rows", flush=True)
        measured = {}
        for scenario in scenarios.AT_BOTH_SIZES:
            one = self.measure(scenario, token, self.args.scale_duration, connections=1)
            eight = self.measure(scenario, token, self.args.scale_duration)
            answer = json.loads(http("GET", self.server.url + scenario.path, token=token)[1])
            measured[scenario.key] = SizeRuns(one, eight, answer)
        return measured

    def seed_phase_b(self, results: dict, phase_a: PhaseA, token: str) -> tuple[str, int]:
        """The rest of the transactions, then the checks that phase A's month is unchanged, that the
        heavy user's balances and budgets' spending are its rows', that it lists its recurring rules and
        that the deep page starts where it should; the deep page's cursor and the tenant's rows."""
        cluster, plan, heavy_id = self.stack.cluster, phase_a.plan, phase_a.users.heavy_id
        clock = time.monotonic()
        with cluster.connect(TENANT.name) as conn:
            phase_b = seed.copy_transactions(conn, chain(plan.heavy_older, plan.others))
            seconds_b = time.monotonic() - clock
            deep_cursor = scenarios.deep_page_cursor(conn, heavy_id)
            deep_first_id = scenarios.row_id_at(conn, heavy_id, scenarios.DEEP_PAGE_AFTER + 1)
            month_rows = seed.heavy_month_rows(conn, heavy_id, phase_a.now)
            balances = seed.account_balances(conn, heavy_id)
            month = phase_a.now.date().replace(day=1)
            spending = seed.budget_spending(conn, heavy_id, month)
            events = seed.seed_events(conn, heavy_id)
        total_rows = phase_a.rows + phase_b
        seconds_total = phase_a.seconds_users + phase_a.seconds + seconds_b
        results["seed"] = {
            "users": seed.USERS, "transactions": total_rows, "heavy_user_transactions": seed.HEAVY_ROWS,
            "budgets": phase_a.budgets, "recurring_rules": phase_a.rules,
            "heavy_current_month_rows": len(plan.heavy_current_month), "rollup_trigger": phase_a.rollup,
            "heavy_user_events": events,
            "seconds_users": round(phase_a.seconds_users, 1), "seconds_phase_a": round(phase_a.seconds, 1),
            "seconds_phase_b": round(seconds_b, 1), "seconds_total": round(seconds_total, 1),
        }
        print(f"bench: seeded {phase_b:,} more transactions (phase B) in {seconds_b:.1f} s", flush=True)
        if cluster.archive:
            results["archive"] = {"backup": full_backup(cluster)}
        if month_rows != len(plan.heavy_current_month):
            raise RuntimeError(f"the heavy user's current month changed between phases: {month_rows} rows")
        status, body = http("GET", self.server.url + scenarios.ACCOUNTS.path, token=token)
        listed = {item["id"]: Decimal(item["balance"]) for item in json.loads(body)["items"]} if status == 200 else {}
        if listed != balances:
            raise RuntimeError(f"GET /accounts does not give the rows' balances {balances}: {status} {body[:300]!r}")
        results["budgets_and_rules"] = self.check_budgets(token, month, spending)

        status, body = http("GET", self.server.url + scenarios.RECURRING.path, token=token)
        rules = len(json.loads(body)["items"]) if status == 200 else None
        if rules != len(seed.RULES):
            expected = f"the heavy user's {len(seed.RULES)} rules"
            raise RuntimeError(f"GET /recurring-transactions does not list {expected}: {status} {body[:300]!r}")
        results["budgets_and_rules"]["heavy_recurring_rules"] = rules

        status, body = http("GET", self.server.url + scenarios.deep_page_path(deep_cursor), token=token)
        if status != 200 or json.loads(body)["items"][0]["id"] != deep_first_id:
            first = scenarios.DEEP_PAGE_AFTER + 1
            raise RuntimeError(f"the deep page does not start at row {first:,}: {status} {body[:200]!r}")
        return deep_cursor, total_rows

    def check_budgets(self, token: str, month: date, spending: dict[str, Decimal]) -> dict:
        """GET /budgets gives each of the heavy user's budgets of the month its rows' expenses in its category."""
        status, body = http("GET", self.server.url + scenarios.BUDGETS.path, token=token)
        answer = json.loads(body) if status == 200 else {}
        if answer.get("month") != month.strftime("%Y-%m"):
            raise RuntimeError(f"GET /budgets does not answer for {month:%Y-%m}: {status} {body[:300]!r}")
        given = {item["category"]: Decimal(item["spent"]) for item in answer["items"]}
        expected = {category: spending.get(category, Decimal("0.00")) for category, _ in seed.BUDGETS}
        if given != expected:
            raise RuntimeError(f"GET /budgets does not give the rows' spending {expected}: {body[:300]!r}")
        return {
            "month": answer["month"], "heavy_budgets": len(given),
            "heavy_budgets_with_spending": sum(1 for spent in given.values() if spent),
        }

    def measure_scenarios(
        self, results: dict, token: str, deep_path: str, transfer_accounts: tuple[int, int], heavy_id: int
    ) -> dict:
        """Every scenario in run order, each with its rate relative to /health's."""
        args, cluster = self.args, self.stack.cluster
        run_order = scenarios.in_run_order(deep_path, transfer_accounts)
        print(f"bench: {len(run_order)} scenarios, {args.warmup} s warm-up + {args.duration} s each,"
              f" {args.connections} connections, {args.threads} wrk threads", flush=True)
        measured = {}
        for scenario in run_order:
            if scenario.setup:
                with cluster.connect(TENANT.name) as conn:
                    conn.execute(scenario.setup, {"user_id": heavy_id})
            sampler = ArchiveSampler(cluster) if cluster.archive and scenario.key == "create" else None
            measured[scenario.key] = self.measure(scenario, token, args.duration)
            if sampler:
                results["archive"]["writes"] = sampler.finish(measured[scenario.key])
        health = measured["health"]["requests_per_s"]
        for entry in measured.values():
            entry["ratio_to_health"] = round(entry["requests_per_s"] / health, 4) if health else 0.0
        return measured

    def measure(self, scenario: Scenario, token: str | None, seconds: int, connections: int | None = None) -> dict:
        """A probe request, a warm-up, then the measured wrk run of one scenario."""
        base = self.server.url
        probe_token = token if scenario.authenticated else None
        status, _ = http(scenario.method, base + scenario.path, next(iter(scenario.bodies), None), probe_token)
        script = self.scripts / f"{scenario.key}.lua"
        script.write_text(wrk_script(scenario, token))
        connections = connections or self.args.connections
        options = {"connections": connections, "threads": min(self.args.threads, connections)}
        if self.args.warmup > 0:
            run_wrk(self.wrk, base + scenario.path, script, seconds=self.args.warmup, **options)
        profiler = (
            start_profiler(self.profiles, self.server.process.pid, scenario.key, seconds) if self.args.profile else None
        )
        servers_before = self.servers_cpu_ticks()
        before = procfs.cpu_snapshot(sum(servers_before.values()))
        # Keep-alive connections stay with the worker that accepted them: how they were spread
        # over the workers is part of the result (all 8 on one worker leaves a core to the others).
        workers = procfs.child_pids(self.server.process.pid)
        port = int(base.rpartition(":")[2])
        figures, output, spread = run_wrk(
            self.wrk, base + scenario.path, script, seconds=seconds, **options,
            midway=lambda: procfs.established_connections(workers, port),
        )
        figures["connections_per_worker"] = spread
        # py-spy's CPU counts as this run's once it is reaped (before that it would look like other work).
        profile = finish_profiler(self.profiles, profiler, scenario.key) if profiler else None
        servers_after = self.servers_cpu_ticks()
        figures["other_cpu"] = procfs.other_cpu(before, procfs.cpu_snapshot(sum(servers_after.values())))
        figures["cpu_ms_per_request"] = procfs.per_request_ms(servers_before, servers_after, figures["requests"])
        print(
            f"  {scenario.label}{'' if connections == self.args.connections else f' ({connections} connection)'}:"
            f" {figures['requests_per_s']:,.0f} req/s, p50 {figures['latency_ms']['p50']:.2f} ms,"
            f" p99 {figures['latency_ms']['p99']:.2f} ms, non-2xx {figures['non_2xx']},"
            f" connections per worker {spread_text(figures['connections_per_worker'])},"
            f" CPU per request: gunicorn {figures['cpu_ms_per_request']['gunicorn']:.2f} ms,"
            f" PostgreSQL {figures['cpu_ms_per_request']['postgres']:.2f} ms",
            flush=True,
        )
        if not 200 <= status < 300:
            print(f"  warning: the probe request of {scenario.label} answered {status}", file=sys.stderr)
        shares = {name: figures["other_cpu"][name] for name in procfs.DISTURBANCES}
        if max(shares.values()) > procfs.BUSY_SHARE:
            print(f"  warning: during {scenario.label}, CPU time was "
                  + ", ".join(f"{share:.0%} {name}" for name, share in shares.items()), file=sys.stderr)
        if figures["requests"] == 0:
            print(f"  warning: no request of {scenario.label} completed; its latencies mean nothing", file=sys.stderr)
        return {
            "label": scenario.label, "method": scenario.method, "path": scenario.path,
            "probe_status": status, **figures, "wrk_output": output,
            **({"profile": profile} if profile else {}),
        }

    def servers_cpu_ticks(self) -> dict[str, int]:
        """CPU used so far by gunicorn (master and workers) and by PostgreSQL (every process of the
        cluster: backends, checkpointer, WAL writer, autovacuum); with wrk and this process, all the
        run's own CPU."""
        postmaster = self.stack.cluster.data_dir / "postmaster.pid"
        postgres = int(postmaster.read_text().split()[0]) if postmaster.exists() else None
        return {
            "gunicorn": procfs.tree_cpu_ticks(self.server.process.pid),
            "postgres": procfs.tree_cpu_ticks(postgres) if postgres else 0,
        }

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.stack.cluster.stop("fast")
        if not self.args.keep:
            shutil.rmtree(self.stack.cluster.directory, ignore_errors=True)
            if self.stack.cluster.archive:
                shutil.rmtree(self.stack.cluster.archive.directory, ignore_errors=True)
