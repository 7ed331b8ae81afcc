"""The targets of issues 5, 13, 14 and 15, checked against a run's figures."""

from __future__ import annotations

SEED_LIMIT_SECONDS = 120


def evaluate(results: dict) -> list[dict]:
    """Each target with what was measured and whether it is met."""
    scenarios = results["scenarios"]

    def figure(key: str, name: str) -> float:
        entry = scenarios[key]
        return entry["ratio_to_health"] if name == "ratio" else entry["latency_ms"][name]

    def errors(key: str) -> int:
        return scenarios[key]["non_2xx"] + sum(scenarios[key]["socket_errors"].values())

    targets = []

    def add(target: str, measured: float | None, passed: bool | None, shown: str) -> None:
        targets.append({"target": target, "measured": measured, "shown": shown, "passed": passed})

    for key, label in (("create", "POST /transactions"), ("analytics_month", "analytics, current month")):
        ratio = figure(key, "ratio")
        add(f"{label}: >= 50% of the /health rate", ratio, ratio >= 0.5, f"{ratio:.0%}")
        p99 = figure(key, "p99")
        add(f"{label}: p99 <= 25 ms", p99, p99 <= 25, f"{p99:.1f} ms")
    add("POST /transactions: 0 errors", errors("create"), errors("create") == 0, str(errors("create")))
    # Issue 15's: a subscriber costs the API a delivery row, never a wait for its receiver.
    p99 = figure("create_webhook", "p99")
    with_hook, without = figure("create_webhook", "ratio"), figure("create", "ratio")
    add("POST /transactions, one active webhook: p99 <= 25 ms", p99, p99 <= 25, f"{p99:.1f} ms")
    relative = with_hook / without if without else None
    add(
        "POST /transactions, one active webhook: rate within 10% of without", relative,
        relative is not None and relative >= 0.9,
        f"{with_hook:.2f} / {without:.2f} = {relative:.2f}x" if relative is not None else "n/a",
    )
    p99 = figure("analytics_year", "p99")
    add("analytics, last year by month: p99 <= 25 ms", p99, p99 <= 25, f"{p99:.1f} ms")
    # Issue 13's, and issue 14's GET /budgets (its 0 errors: so that its latencies are those of answers).
    for key, label in (("accounts", "GET /accounts"), ("transfer", "POST /transfers"), ("budgets", "GET /budgets")):
        p99, failed = figure(key, "p99"), errors(key)
        add(f"{label}: p99 <= 25 ms", p99, p99 <= 25, f"{p99:.1f} ms")
        add(f"{label}: 0 errors", failed, failed == 0, str(failed))
    deep, first = figure("list_deep", "p99"), figure("list_first", "p99")
    ratio = deep / first if first else None
    add(
        "list: deep page p99 <= 1.5 x first page p99", ratio, ratio is not None and ratio <= 1.5,
        f"{deep:.1f} / {first:.1f} ms = {ratio:.2f}x" if ratio is not None else "n/a",
    )
    for key, label in (("analytics_month", "analytics"), ("accounts", "GET /accounts"), ("budgets", "GET /budgets")):
        scale = results["scale"][key]
        add(
            f"{label} p50 at 1,000,000 vs 10,000 tenant rows (1 connection) <= 1.5", scale["p50_ratio"],
            scale["p50_ratio"] <= 1.5,
            f"{scale['p50_ms_1m']:.2f} / {scale['p50_ms_10k']:.2f} ms = {scale['p50_ratio']:.2f}x",
        )
    idle = results["memory"]["idle"]["total_mib"]
    add("one tenant's app processes idle: <= 150 MiB PSS", idle, idle <= 150, f"{idle:.0f} MiB")
    seconds = results["seed"]["seconds_total"]
    add("seeding 1,000,000 rows: < 2 minutes", seconds, seconds < SEED_LIMIT_SECONDS, f"{seconds:.0f} s")
    return targets
