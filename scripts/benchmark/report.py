"""The run's Markdown table, the line describing its machine, and `compare` of two runs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.procfs import BUSY_SHARE, DISTURBANCES

# Table order (the numbering); the run order differs, see scenarios.in_run_order.
TABLE_ORDER = (
    "health", "create", "create_webhook", "analytics_month", "analytics_year", "list_first", "list_deep",
    "categories", "accounts", "transfer", "budgets", "recurring", "events", "login",
)
# The data-size comparison's scenarios, as its lines name them.
SIZE_LABELS = {"analytics_month": "analytics current month", "accounts": "GET /accounts", "budgets": "GET /budgets"}


def spread_text(spread: dict[str, int] | None) -> str:
    """Connections per worker, most first: "5+3"."""
    return "+".join(str(count) for count in sorted(spread.values(), reverse=True)) if spread else "?"


def keeps_connections(server: dict) -> bool:
    """Whether gunicorn keeps connections alive (gthread); sync workers close each after one response."""
    # "sync" or a subclass of gunicorn's SyncWorker (service.workers.DrainingSyncWorker)
    return not server["worker_class"].endswith(("sync", "SyncWorker")) or server["threads"] > 1


def format_table(results: dict) -> str:
    # Where kept-alive connections landed matters only when workers keep them.
    spread = keeps_connections(results["server"])
    lines = [
        "| scenario | req/s | × /health | p50 ms | p99 ms | non-2xx | socket errors |"
        + (" connections per worker |" if spread else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if spread else ""),
    ]
    for key in TABLE_ORDER:
        entry = results["scenarios"][key]
        latency = entry["latency_ms"]
        lines.append(
            f"| {entry['label']} | {entry['requests_per_s']:,.0f} | {entry['ratio_to_health']:.2f} |"
            f" {latency['p50']:.2f} | {latency['p99']:.2f} | {entry['non_2xx']} |"
            f" {sum(entry['socket_errors'].values())} |"
            + (f" {spread_text(entry.get('connections_per_worker'))} |" if spread else "")
        )
    memory, scale = results["memory"], results["scale"]
    disturbed = []
    for key in TABLE_ORDER:
        entry = results["scenarios"][key]
        shares = {name: entry["other_cpu"].get(name, 0) for name in DISTURBANCES}
        if max(shares.values()) > BUSY_SHARE:
            described = ", ".join(f"{share:.0%} {name}" for name, share in shares.items())
            disturbed.append(f"{entry['label']} ({described})")
    lines += [
        "",
        "- CPU share taken by other work, by the hypervisor (steal) or idle waiting for the disk (iowait):"
        f" {'; '.join(disturbed) if disturbed else 'none above 10% in any scenario'}",
        f"- gunicorn PSS (master + {memory['idle']['workers']} workers): idle {memory['idle']['total_mib']:.1f} MiB,"
        f" after the run {memory['after']['total_mib']:.1f} MiB",
        *(size_line(scale, key, label, spread) for key, label in SIZE_LABELS.items()),
        f"- the heavy user's current month holds {scale['heavy_current_month_rows']:,} rows in both sizes",
        budgets_line(results["budgets_and_rules"]),
        f"- seeding: {results['seed']['seconds_total']:.0f} s"
        f" (users with their budgets and rules {results['seed']['seconds_users']:.1f} s,"
        f" phase A {results['seed']['seconds_phase_a']:.1f} s,"
        f" phase B {results['seed']['seconds_phase_b']:.1f} s, rollup trigger"
        f" {'present' if results['seed']['rollup_trigger'] else 'absent'})",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for target in results["targets"]:
        lines.append(f"| {target['target']} | {target['shown']} | {'PASS' if target['passed'] else 'FAIL'} |")
    return "\n".join(lines)


def budgets_line(checked: dict) -> str:
    """What GET /budgets and GET /recurring-transactions answered the heavy user (checked after the seed)."""
    return (
        f"- the heavy user's {checked['heavy_budgets']} budgets, {checked['heavy_budgets_with_spending']} with"
        f" spending in {checked['month']} (equal to its rows' in every category), and its"
        f" {checked['heavy_recurring_rules']} recurring rules"
    )


def size_line(scale: dict, key: str, label: str, spread: bool) -> str:
    """One scenario of the data-size comparison: p50 at both sizes, on 1 connection and on 8."""
    one, eight = scale[key], scale[key]["connections_8"]
    return (
        f"- {label} p50 with 1 connection: {one['p50_ms_10k']:.2f} ms at {scale['tenant_rows_small']:,} tenant rows,"
        f" {one['p50_ms_1m']:.2f} ms at {scale['tenant_rows_large']:,} ({one['p50_ratio']:.2f}x);"
        f" with 8: {eight['p50_ms_10k']:.2f} ms and {eight['p50_ms_1m']:.2f} ms ({eight['p50_ratio']:.2f}x"
        + (
            f", connections per worker {' and '.join(spread_text(each) for each in eight['connections_per_worker'])}"
            if spread else ""
        )
        + ")"
    )


def describe_machine(results: dict) -> str:
    machine, server = results["machine"], results["server"]
    return (
        f"{machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, Linux {machine['kernel']},"
        f" Python {machine['python']}, PostgreSQL {machine['postgresql']}, {machine['wrk']};"
        f" gunicorn {server['worker_class']} {server['workers']} workers x {server['threads']} threads;"
        f" commit {(machine['git_commit'] or '?')[:12]}{' (with uncommitted changes)' if machine['git_dirty'] else ''}"
        + "".join(f"; {name}={value}" for name, value in results["options"].get("postgres_settings", {}).items())
    )


def compare(old_path: Path, new_path: Path) -> str:
    old, new = (json.loads(path.read_text()) for path in (old_path, new_path))
    lines = [
        f"old: {old_path.name}: {describe_machine(old)}",
        f"new: {new_path.name}: {describe_machine(new)}",
        "",
        "| scenario | req/s old → new | × /health old → new | p50 ms old → new | p99 ms old → new |",
        "| --- | --- | --- | --- | --- |",
    ]

    def change(a: float, b: float, fmt: str) -> str:
        delta = f" ({(b - a) / a:+.0%})" if a else ""
        return f"{a:{fmt}} → {b:{fmt}}{delta}"

    for key in TABLE_ORDER:
        if key not in old["scenarios"] or key not in new["scenarios"]:
            continue
        a, b = old["scenarios"][key], new["scenarios"][key]
        lines.append(
            f"| {b['label']} | {change(a['requests_per_s'], b['requests_per_s'], ',.0f')} |"
            f" {a['ratio_to_health']:.2f} → {b['ratio_to_health']:.2f} |"
            f" {change(a['latency_ms']['p50'], b['latency_ms']['p50'], '.2f')} |"
            f" {change(a['latency_ms']['p99'], b['latency_ms']['p99'], '.2f')} |"
        )
    lines += ["", "| target | old | new |", "| --- | --- | --- |"]
    old_targets = {t["target"]: t for t in old["targets"]}
    for target in new["targets"]:
        before = old_targets.get(target["target"])
        was = f"{before['shown']} {'PASS' if before['passed'] else 'FAIL'}" if before else "n/a"
        lines.append(f"| {target['target']} | {was} | {target['shown']} {'PASS' if target['passed'] else 'FAIL'} |")
    return "\n".join(lines)
