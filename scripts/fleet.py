"""Every tenant at once: the state of each (status) and an upgrade of their app image, canary first,
then in waves, stopping at the first failure (upgrade).

    scripts/fleet status [--context CTX | --local]
    scripts/fleet upgrade --image TAG [--canary NAME] [--wave N] [--tenants A,B] [--dry-run] [--context CTX]
    scripts/fleet upgrade --local [--canary NAME] [--wave N] [--tenants A,B] [--dry-run]

In a cluster (kubectl's current context, or --context), the tenants are the namespaces labelled
finance.example.com/tenant; an upgrade reaches those of them that have a folder in tenants/ and are
not LOCAL_ONLY. It writes the tag into each tenant's overlay (tenants/NAME/kustomization.yaml,
`images:`), which deploy.yml then pins to its digest, and applies the overlay, so git and the
cluster say the same. A rollback is an upgrade to the previous tag: migrations are expand-only
within a release (docs/architecture.md), so the older code runs on the newer schema.
Locally (--local) the tenants are those of tenants/ with the servers of scripts/dev; an upgrade
restarts each running one on this checkout's code (migrating it first), in the same order.
docs/operations.md, "Fleet: status, upgrades and rollback", says more.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import tenancy
from tenancy import StepError, UsageError

if TYPE_CHECKING:
    import localstack

APP_IMAGE = "finance-service"
API = "finance-api"
# The Deployments that run the app image and must finish their rollout; the scheduler CronJob
# runs it too, and takes the new image at its next run.
ROLLED_OUT = ("finance-api", "finance-webhooks")
ROLLOUT_TIMEOUT = "300s"
BACKUP_CRONJOBS = ("postgres-backup-full", "postgres-backup-diff")
# As the alert FinanceBackupTooOld (components/alerts): no good backup for this long is unhealthy.
BACKUP_TOO_OLD = timedelta(hours=26)
# How long the smoke request is retried after a rollout: pods of the old version may still answer
# while they drain (their preStop sleep). FLEET_SMOKE_SECONDS changes it (the tests shorten it).
SMOKE_SECONDS = float(os.environ.get("FLEET_SMOKE_SECONDS", "60"))
DEFAULT_WAVE = 1
# A Docker tag: what `docker tag` accepts.
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Asked inside the API container, so that neither the Ingress nor a port-forward is needed.
READY_PROBE = (
    "import urllib.request, urllib.error\n"
    "try:\n"
    "    answer = urllib.request.urlopen('http://localhost:8000/health/ready', timeout=5)\n"
    "except urllib.error.HTTPError as error:\n"
    "    answer = error\n"
    "print(answer.status, answer.read().decode())\n"
)


# --- what is shown ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of `status`: what a tenant runs and whether it is healthy (no problems)."""

    tenant: str
    url: str = "-"
    version: str = "-"
    replicas: str = "-"
    database: str = "-"
    schema: str = "-"
    backup: str = "-"
    problems: list[str] = field(default_factory=list)
    note: str = ""
    # False for a tenant folder with nothing deployed: shown, neither healthy nor not.
    checked: bool = True

    def cells(self) -> list[str]:
        state = ("UNHEALTHY" if self.problems else "ok") if self.checked else ""
        state = f"{state} ({self.note})" if state and self.note else state or self.note
        return [self.tenant, self.url, self.version, self.replicas, self.database, self.schema, self.backup, state]


HEADER = ["TENANT", "URL", "VERSION", "REPLICAS", "DATABASE", "SCHEMA", "LAST BACKUP", "STATE"]


def print_table(rows: list[Row]) -> None:
    lines = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(HEADER))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def report(rows: list[Row]) -> int:
    """Print the table, then one line on stderr per unhealthy tenant; 1 if there is one."""
    print_table(rows)
    unhealthy = [row for row in rows if row.problems]
    for row in unhealthy:
        print(f"{row.tenant} is unhealthy: {'; '.join(row.problems)}", file=sys.stderr)
    return 1 if unhealthy else 0


def ago(instant: datetime, now: datetime) -> str:
    """An instant as `2026-11-30T02:17Z (21h ago)`."""
    return f"{instant.strftime('%Y-%m-%dT%H:%MZ')} ({span(now - instant)} ago)"


def span(age: timedelta) -> str:
    """A duration as `3d4h`, `21h` or `12m`."""
    hours = int(age.total_seconds() // 3600)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24}h"
    return f"{hours}h" if hours else f"{int(age.total_seconds() // 60)}m"


def check_ready_answer(status: int, body: str, tenant: str, row: Row | None = None) -> str | None:
    """What is wrong with a /health/ready answer for this tenant (None: nothing); fills the row's
    version and schema from it."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}  # the API's error envelope
    if row is not None:
        row.schema = answer.get("schema_version") or error.get("code") or "-"
        if answer.get("version"):
            row.version = answer["version"]
    # An image from before /health named the tenant answers without it: it cannot be told apart.
    if answer.get("tenant", tenant) != tenant:
        return f"the server answering is tenant {answer.get('tenant')!r}, not {tenant!r}"
    if status != 200:
        return f"/health/ready answers {status} {error.get('code') or body.strip()[:80]}"
    return None


# --- the cluster --------------------------------------------------------------------------------


class Cluster:
    """kubectl on one context (the current one unless given)."""

    def __init__(self, context: str | None) -> None:
        self.context = context

    def args(self, *args: str) -> list[str]:
        return [*(("--context", self.context) if self.context else ()), *args]

    def run(self, *args: str) -> str:
        return tenancy.kubectl_output(*self.args(*args))

    def command(self, *args: str) -> str:
        """The command line, as the plan shows it."""
        return shlex.join(["kubectl", *self.args(*args)])

    def name(self) -> str:
        return self.context or self.run("config", "current-context").strip() or "(current context)"

    def tenant_namespaces(self) -> dict[str, str]:
        """{tenant: namespace} of the namespaces labelled with a tenant."""
        listing = json.loads(self.run("get", "namespaces", "-l", tenancy.TENANT_LABEL, "-o", "json"))
        return {item["metadata"]["labels"][tenancy.TENANT_LABEL]: item["metadata"]["name"] for item in listing["items"]}

    def ready_probe(self, namespace: str) -> tuple[int, str]:
        """(status, body) of /health/ready, asked inside one of the tenant's API pods."""
        output = self.run("-n", namespace, "exec", f"deploy/{API}", "-c", "api", "--", "python", "-c", READY_PROBE)
        status, _, body = output.strip().partition(" ")
        return int(status), body

    def probe_command(self, namespace: str) -> str:
        return self.command(
            "-n", namespace, "exec", f"deploy/{API}", "-c", "api", "--", "python", "-c", "<GET /health/ready>"
        )


def cluster_rows(cluster: Cluster, now: datetime) -> list[Row]:
    """A row per tenant namespace (one kubectl get for all of them, one exec each for readiness)
    and per tenant folder that is not deployed there."""
    kinds = "namespaces,deployments,statefulsets,cronjobs,ingresses"
    listing = json.loads(cluster.run("get", kinds, "-A", "-l", tenancy.TENANT_LABEL, "-o", "json"))
    objects: dict[tuple[str, str, str], dict] = {}
    tenants: dict[str, str] = {}
    for item in listing["items"]:
        meta = item["metadata"]
        if item["kind"] == "Namespace":
            tenants[meta["labels"][tenancy.TENANT_LABEL]] = meta["name"]
        else:
            objects[meta.get("namespace", ""), item["kind"], meta["name"]] = item
    folders = {tenant.name: tenant for tenant in tenancy.discover_tenants()}
    rows = []
    for tenant, namespace in sorted(tenants.items()):
        own = {key[1:]: obj for key, obj in objects.items() if key[0] == namespace}
        row = cluster_row(cluster, tenant, namespace, own, now)
        if tenant not in folders:
            row.note = f"no folder tenants/{tenant}: upgrades leave it alone"
        elif folders[tenant].local_only:
            row.note = "LOCAL_ONLY in tenants/, yet deployed"
        rows.append(row)
    for name, tenant in sorted(folders.items()):
        if name not in tenants and not tenant.local_only:
            rows.append(Row(name, checked=False, note=f"not deployed: no namespace {tenancy.namespace(name)}"))
    return rows


def cluster_row(
    cluster: Cluster, tenant: str, namespace: str, objects: dict[tuple[str, str], dict], now: datetime
) -> Row:
    """A tenant's row from its objects ({(kind, name): object}) and its API's readiness answer."""
    row = Row(tenant)
    ingress = objects.get(("Ingress", API))
    if ingress:
        row.url = f"https://{ingress['spec']['rules'][0]['host']}"
    api = objects.get(("Deployment", API))
    if api is None:
        row.problems.append(f"no Deployment {API}")
    else:
        row.version = image_tag(container_image(api["spec"]["template"]["spec"], "api"))
        ready, desired = api.get("status", {}).get("readyReplicas", 0), api["spec"].get("replicas", 1)
        row.replicas = f"{ready}/{desired}"
        if ready < desired:
            row.problems.append(f"{ready} of {desired} API replicas ready")
    webhooks = objects.get(("Deployment", "finance-webhooks"))
    if webhooks and webhooks.get("status", {}).get("readyReplicas", 0) < webhooks["spec"].get("replicas", 1):
        row.problems.append("the webhook dispatcher is not ready")
    postgres = objects.get(("StatefulSet", "postgres"))
    if postgres and postgres.get("status", {}).get("readyReplicas", 0) >= postgres["spec"].get("replicas", 1):
        row.database = "ready"
    else:
        row.database = "not ready"
        row.problems.append("PostgreSQL is not ready")
    image = row.version
    if api is not None and api.get("status", {}).get("readyReplicas", 0):
        try:
            problem = check_ready_answer(*cluster.ready_probe(namespace), tenant, row)
        except (StepError, ValueError) as error:
            problem = f"readiness not answered: {error}"
        if problem:
            row.problems.append(problem)
        if row.version != image:
            row.version = f"{image} (answers {row.version})"
    row.backup, backup_problem = last_backup(objects, now)
    if backup_problem:
        row.problems.append(backup_problem)
    return row


def last_backup(objects: dict[tuple[str, str], dict], now: datetime) -> tuple[str, str | None]:
    """The newest successful pgBackRest backup, from the backup CronJobs' status, and a problem
    when there has been none for BACKUP_TOO_OLD (counted from the CronJobs' creation, as the alert does)."""
    newest: tuple[datetime, str] | None = None
    created: list[datetime] = []
    for name in BACKUP_CRONJOBS:
        cronjob = objects.get(("CronJob", name))
        if cronjob is None:
            continue
        created.append(parse_time(cronjob["metadata"]["creationTimestamp"]))
        succeeded = cronjob.get("status", {}).get("lastSuccessfulTime")
        if succeeded and (newest is None or parse_time(succeeded) > newest[0]):
            newest = parse_time(succeeded), name.rpartition("-")[2]
    if not created:
        return "-", "no backup CronJobs"
    since = newest[0] if newest else max(created)
    problem = f"no good backup for {span(now - since)}" if now - since > BACKUP_TOO_OLD else None
    return (f"{ago(newest[0], now)} {newest[1]}" if newest else "none yet"), problem


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def container_image(pod_spec: dict, name: str) -> str:
    return next(container["image"] for container in pod_spec["containers"] if container["name"] == name)


def image_tag(image: str) -> str:
    """The tag of `repo:tag` or `repo:tag@sha256:…`; a short digest when there is no tag."""
    name, _, digest = image.partition("@")
    last = name.rpartition("/")[2]
    if ":" in last:
        return last.partition(":")[2]
    return digest[:19] if digest else "latest"


# --- the local servers --------------------------------------------------------------------------


def local_rows() -> list[Row]:
    """A row per tenant of tenants/, from its server started by scripts/dev and its cluster."""
    import dev

    ports = tenancy.local_ports()
    rows = []
    for tenant in tenancy.discover_tenants():
        row = Row(tenant.name, url=f"http://127.0.0.1:{ports[tenant.name]}")
        stack = dev.stack(tenant.name, ports[tenant.name])
        row.database = "ready" if stack.cluster.is_running() else "not running"
        row.backup = local_backup(stack)
        alive = dev.running(tenant.name)
        row.replicas = "1/1" if alive else "0/1"
        if alive is None:
            row.problems.append("not running: start it with make up")
        else:
            row.url = alive[1]
            problem = check_ready_answer(*http_ready(alive[1]), tenant.name, row)
            if problem:
                row.problems.append(problem)
        if row.database != "ready":
            row.problems.append("its PostgreSQL is not running")
        rows.append(row)
    return rows


def local_backup(stack: localstack.Stack) -> str:
    """The newest backup of the tenant's pgBackRest archive, "none" if it has none (yet)."""
    assert stack.cluster.archive is not None
    if not stack.cluster.archive.config.exists():
        return "none"
    try:
        backups = stack.cluster.archive.backups()
    except (subprocess.CalledProcessError, OSError, ValueError):
        return "unreadable"
    return f"{ago(backups[-1].stopped, datetime.now(UTC))} {backups[-1].type}" if backups else "none"


def http_ready(url: str) -> tuple[int, str]:
    """(status, body) of GET url/health/ready; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as answer:  # noqa: S310 - our own URL
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, f"nothing answers: {error}"


# --- upgrades -----------------------------------------------------------------------------------


def waves(tenants: list[str], canary: str | None, size: int) -> list[list[str]]:
    """The canary alone (the first by name unless named), then the others in name order, `size` at a time."""
    ordered = sorted(tenants)
    first = canary or ordered[0]
    rest = [tenant for tenant in ordered if tenant != first]
    return [[first], *(rest[start:start + size] for start in range(0, len(rest), size))]


def choose(candidates: list[str], left_alone: list[str], args) -> list[list[str]]:
    """The waves of an upgrade among `candidates`, checking --canary and --tenants (UsageError)."""
    if args.tenants:
        named = [name for name in args.tenants.split(",") if name]
        unknown = [name for name in named if name not in candidates]
        if unknown:
            raise UsageError(f"--tenants: {', '.join(unknown)} cannot be upgraded here ({describe(candidates)})")
        candidates = named
    if args.canary and args.canary not in candidates:
        raise UsageError(f"--canary {args.canary} is not a tenant this upgrade reaches ({describe(candidates)})")
    if not candidates:
        raise StepError("nothing to upgrade: " + ("; ".join(left_alone) or "no tenant"))
    return waves(candidates, args.canary, args.wave)


def describe(candidates: list[str]) -> str:
    return f"it reaches {', '.join(sorted(candidates))}" if candidates else "it reaches none"


def set_overlay_tag(directory: Path, repository: str, tag: str) -> None:
    """Write the app image's tag into the overlay's `images:` (adding the entry, or the list, the
    first time), keeping the rest of the file as it is."""
    path = directory / "kustomization.yaml"
    text = path.read_text()
    entry = re.compile(rf"^(  - name: {re.escape(repository)}\n    newTag: )\S+$", re.MULTILINE)
    if entry.search(text):
        text = entry.sub(lambda match: match.group(1) + tag, text)
    elif re.search(r"^images:\n", text, re.MULTILINE):
        text = re.sub(r"^images:\n", f"images:\n  - name: {repository}\n    newTag: {tag}\n", text, count=1,
                      flags=re.MULTILINE)
    else:
        text = text.rstrip("\n") + (
            "\n# The app image's tag, written by scripts/fleet upgrade (deploy.yml pins it to its digest).\n"
            f"images:\n  - name: {repository}\n    newTag: {tag}\n"
        )
    path.write_text(text)


def overlay_path(name: str) -> str:
    """The tenant's overlay folder as kubectl is given it: relative to where the command runs (tenants/NAME
    from the repository's root), as an operator would type it."""
    return os.path.relpath(tenancy.tenant_dir(name))


def rendered_app_image(directory: Path) -> str:
    """The app image the overlay renders for the API."""
    objects = tenancy.render(directory)
    api = next(obj for obj in objects if obj["kind"] == "Deployment" and obj["metadata"]["name"] == API)
    return container_image(api["spec"]["template"]["spec"], "api")


def upgrade_cluster(args) -> int:
    if not TAG.match(args.image):
        raise UsageError(f"--image {args.image!r} is not an image tag (letters, digits, '_', '.', '-'; at most 128)")
    cluster = Cluster(args.context)
    deployed = cluster.tenant_namespaces()
    folders = {tenant.name: tenant for tenant in tenancy.discover_tenants()}
    candidates = [name for name in sorted(deployed) if name in folders and not folders[name].local_only]
    left_alone = [f"{name} (LOCAL_ONLY)" for name in sorted(folders) if folders[name].local_only]
    left_alone += [f"{name} (no namespace {tenancy.namespace(name)})" for name in sorted(folders)
                   if name not in deployed and not folders[name].local_only]
    left_alone += [f"{name} (no folder tenants/{name})" for name in sorted(deployed) if name not in folders]
    plan = choose(candidates, left_alone, args)
    current = {name: rendered_app_image(tenancy.tenant_dir(name)) for wave in plan for name in wave}
    repository = current[plan[0][0]].partition("@")[0].rpartition(":")[0]
    print(f"{'Plan: ' if args.dry_run else ''}image {repository}:{args.image} in context {cluster.name()}:"
          f" the canary {plan[0][0]} first, then waves of {args.wave}")
    if left_alone:
        print(f"left alone: {', '.join(left_alone)}")
    done: list[str] = []
    for number, wave in enumerate(plan):
        print(f"wave {number}{' (canary)' if number == 0 else ''}: "
              + ", ".join(f"{name} ({image_tag(current[name])} -> {args.image})" for name in wave), flush=True)
        for name in wave:
            steps = [
                f"set images: newTag {args.image} in tenants/{name}/kustomization.yaml",
                cluster.command("apply", "-k", overlay_path(name)),
                *(cluster.command("-n", deployed[name], "rollout", "status", f"deployment/{deployment}",
                                  f"--timeout={ROLLOUT_TIMEOUT}") for deployment in ROLLED_OUT),
                f"{cluster.probe_command(deployed[name])}: ready, tenant {name}, version {args.image}",
            ]
            if args.dry_run:
                print("\n".join(f"  {step}" for step in steps))
        if args.dry_run:
            continue
        failed = roll_wave(cluster, wave, deployed, repository, args.image)
        done += [name for name in wave if name not in failed]
        if failed:
            return stopped(args.image, plan, number, done, failed, current)
    if args.dry_run:
        print("dry run: nothing changed")
    else:
        print(f"done: {', '.join(done)} run {args.image}; commit tenants/*/kustomization.yaml so that deploy.yml"
              " deploys the same")
    return 0


def roll_wave(
    cluster: Cluster, wave: list[str], namespaces: dict[str, str], repository: str, tag: str
) -> dict[str, str]:
    """Apply the tag to every tenant of the wave, then wait for each; {tenant: why} of those that failed."""
    failed: dict[str, str] = {}
    for name in wave:
        directory = tenancy.tenant_dir(name)
        before = (directory / "kustomization.yaml").read_text()
        set_overlay_tag(directory, repository, tag)
        try:
            image = rendered_app_image(directory)
            if image != f"{repository}:{tag}":
                (directory / "kustomization.yaml").write_text(before)
                raise StepError(
                    f"tenants/{name} renders {image}, not {repository}:{tag}: its overlay sets the image otherwise"
                )
            cluster.run("apply", "-k", overlay_path(name))
        except StepError as error:
            failed[name] = str(error)
    for name in wave:
        if name in failed:
            continue
        try:
            for deployment in ROLLED_OUT:
                cluster.run("-n", namespaces[name], "rollout", "status", f"deployment/{deployment}",
                            f"--timeout={ROLLOUT_TIMEOUT}")
            smoke(lambda name=name: cluster.ready_probe(namespaces[name]), name, tag)
            print(f"  {name}: {tag} rolled out, ready", flush=True)
        except StepError as error:
            failed[name] = str(error)
    return failed


def smoke(probe, tenant: str, version: str) -> None:
    """Ask /health/ready until it answers ready, as the tenant, with the new version (old pods may
    still answer for a while as they drain); StepError when it does not within SMOKE_SECONDS."""
    deadline = time.monotonic() + SMOKE_SECONDS
    while True:
        try:
            status, body = probe()
            row = Row(tenant)
            problem = check_ready_answer(status, body, tenant, row)
            if problem is None and row.version != version:
                problem = f"/health/ready answers version {row.version}, not {version}"
        except (StepError, ValueError) as error:
            problem = f"readiness not answered: {error}"
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise StepError(f"smoke request: {problem}")
        time.sleep(2)


def stopped(tag: str, plan: list[list[str]], number: int, done: list[str], failed: dict[str, str],
            current: dict[str, str]) -> int:
    """Say what the upgrade did before it stopped, what it did not reach, and how to roll back."""
    for name, why in failed.items():
        print(f"fleet upgrade: {name} failed: {why}", file=sys.stderr)
    untouched = [name for wave in plan[number + 1:] for name in wave]
    print(f"stopped at wave {number}: upgraded to {tag}: {', '.join(done) or 'none'};"
          f" failed: {', '.join(failed)}; not reached (unchanged): {', '.join(untouched) or 'none'}", file=sys.stderr)
    changed = [*done, *failed]
    previous: dict[str, list[str]] = {}
    for name in changed:
        previous.setdefault(image_tag(current[name]), []).append(name)
    for old, names in previous.items():
        print(f"roll back with: scripts/fleet upgrade --image {old} --tenants {','.join(names)}", file=sys.stderr)
    return 1


def upgrade_local(args) -> int:
    """Restart each running tenant's server on this checkout's code, canary first, then in waves,
    checking /health/ready after each; stop at the first that does not answer ready as itself."""
    import importlib.metadata

    import dev

    tenants = {tenant.name: tenant for tenant in tenancy.discover_tenants()}
    running = [name for name in tenants if dev.running(name)]
    left_alone = [f"{name} (not running)" for name in tenants if name not in running]
    plan = choose(running, left_alone, args)
    version = importlib.metadata.version("finance-service")
    ports = tenancy.local_ports()
    print(f"{'Plan: ' if args.dry_run else ''}restart the local servers on this checkout's code ({version}):"
          f" the canary {plan[0][0]} first, then waves of {args.wave}")
    if left_alone:
        print(f"left alone: {', '.join(left_alone)}")
    done: list[str] = []
    for number, wave in enumerate(plan):
        print(f"wave {number}{' (canary)' if number == 0 else ''}: {', '.join(wave)}", flush=True)
        for name in wave:
            url = f"http://127.0.0.1:{ports[name]}"
            if args.dry_run:
                print(f"  stop {name}'s server, migrate its database, start it on {url}; GET {url}/health/ready:"
                      f" ready, tenant {name}, version {version}")
                continue
            try:
                dev.stop_server(name)
                dev.serve(dev.stack(name, ports[name]), tenants[name], ports[name])
                smoke(lambda url=url: http_ready(url), name, version)
            except (StepError, RuntimeError) as error:
                print(f"fleet upgrade: {name} failed: {error}", file=sys.stderr)
                untouched = [other for later in plan[number + 1:] for other in later]
                untouched += [other for other in wave[wave.index(name) + 1:]]
                print(f"stopped: restarted {', '.join(done) or 'none'}; not reached: {', '.join(untouched) or 'none'};"
                      " see .local/dev/<tenant>/logs", file=sys.stderr)
                return 1
            done.append(name)
            print(f"  {name}: restarted, ready on {url}", flush=True)
    print("dry run: nothing changed" if args.dry_run else f"done: {', '.join(done)} run this checkout's code")
    return 0


# --- the command line ---------------------------------------------------------------------------


def parse(argv: list[str] | None):
    parser = tenancy.ArgumentParser(prog="scripts/fleet", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="one line per tenant; exit 1 if any is unhealthy")
    upgrade = commands.add_parser("upgrade", help="set the app image, canary first, then in waves")
    for command in (status, upgrade):
        where = command.add_mutually_exclusive_group()
        where.add_argument("--context", help="kubectl's context (default: the current one)")
        where.add_argument("--local", action="store_true", help="the tenants of tenants/ served by scripts/dev")
    upgrade.add_argument("--image", help="the app image's tag to run (not with --local)")
    upgrade.add_argument("--canary", help="the tenant upgraded first, alone (default: the first by name)")
    upgrade.add_argument("--wave", type=int, default=DEFAULT_WAVE,
                         help=f"tenants upgraded together after the canary (default {DEFAULT_WAVE})")
    upgrade.add_argument(
        "--tenants", help="only these tenants (comma-separated), e.g. to roll back those a failed upgrade reached"
    )
    upgrade.add_argument("--dry-run", action="store_true", help="print the plan and the commands; change nothing")
    args = parser.parse_args(argv)
    if args.command == "upgrade":
        if args.local and args.image:
            raise UsageError("--image with --local: the local servers run this checkout's code, not an image;"
                             " `upgrade --local` restarts them on it")
        if not args.local and not args.image:
            raise UsageError("upgrade needs --image TAG (or --local)")
        if args.wave < 1:
            raise UsageError(f"--wave {args.wave}: a wave is at least one tenant")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        if args.command == "status":
            return report(local_rows() if args.local else cluster_rows(Cluster(args.context), datetime.now(UTC)))
        return upgrade_local(args) if args.local else upgrade_cluster(args)
    except UsageError as error:
        print(f"scripts/fleet: error: {error}", file=sys.stderr)
        return 2
    except StepError as error:
        print(f"scripts/fleet: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
