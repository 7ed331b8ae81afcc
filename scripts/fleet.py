"""Every tenant at once: the state of each (status) and an upgrade of their app image, canary first,
then in waves, stopping at the first failure (upgrade).

    scripts/fleet status [--context CTX | --local]
    scripts/fleet upgrade --image TAG [--canary NAME] [--wave N] [--tenants A,B] [--dry-run] [--context CTX]
    scripts/fleet upgrade --local [--canary NAME] [--wave N] [--tenants A,B] [--dry-run]

In a cluster (kubectl's current context when the command starts, or --context: every call is made
on that one), the tenants are the namespaces labelled finance.example.com/tenant; an upgrade
reaches those of them that have a folder in tenants/ and are not LOCAL_ONLY. TAG is a release
version (X.Y.Z, or X.Y.Z-PRERELEASE), the version /health/ready answers. It writes the tag into
each tenant's overlay (tenants/NAME/kustomization.yaml, `images:`), which deploy.yml then pins to
its digest, and applies the overlay with every other image pinned to the digest the live workloads
run, so that only the app's pods change and git and the cluster say the same. A rollback is an
upgrade to the previous tag: migrations are expand-only within a release (docs/architecture.md),
so the older code runs on the newer schema.
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
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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
# What must finish its rollout after an apply: the database first (its pod template should not
# change, as its image keeps its digest; if it does, this notices), then the Deployments that run
# the app image. The scheduler CronJob runs it too, and takes the new image at its next run.
ROLLED_OUT = ("statefulset/postgres", "deployment/finance-api", "deployment/finance-webhooks")
ROLLOUT_TIMEOUT = "300s"
BACKUP_CRONJOBS = ("postgres-backup-full", "postgres-backup-diff")
# As the alert FinanceBackupTooOld (components/alerts): no good backup for this long is unhealthy.
BACKUP_TOO_OLD = timedelta(hours=26)
# How long the smoke request is retried after a rollout: pods of the old version may still answer
# while they drain (their preStop sleep). FLEET_SMOKE_SECONDS changes it (the tests shorten it).
SMOKE_SECONDS = float(os.environ.get("FLEET_SMOKE_SECONDS", "60"))
DEFAULT_WAVE = 1
# A release version tag, as publish.yml's `{{version}}` makes it from a git tag vX.Y.Z: semver, with
# an optional pre-release (e2e upgrades to `<version>-e2e-next`). Only such a tag is what the image's
# /health/ready answers as its version, which the smoke request checks; publish.yml's other tags
# (`X.Y`, `main`, `sha-...`) name images whose version is something else.
VERSION_TAG = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
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


# A row's version until something names it: also what an answer without one leaves.
NO_VERSION = "-"


@dataclass
class Row:
    """One line of `status`: what a tenant runs and whether it is healthy (no problems)."""

    tenant: str
    url: str = "-"
    version: str = NO_VERSION
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
    """kubectl on one context, named on every call: the one given, else the current one when the
    command starts. A `kubectl config use-context` in another terminal during a long upgrade then
    cannot send the later waves to another cluster."""

    def __init__(self, context: str | None) -> None:
        self.context = context or self.current_context()

    @staticmethod
    def current_context() -> str:
        """kubectl's current context, read once; UsageError when there is none."""
        result = tenancy.kubectl("config", "current-context", capture=True, check=False)
        context = (result.stdout or "").strip() if result.returncode == 0 else ""
        if not context:
            raise UsageError("kubectl has no current context: name the cluster with --context CTX"
                             " (kubectl config get-contexts lists them)")
        return context

    def args(self, *args: str) -> list[str]:
        return ["--context", self.context, *args]

    def run(self, *args: str) -> str:
        return tenancy.kubectl_output(*self.args(*args))

    def command(self, *args: str) -> str:
        """The command line, as the plan shows it."""
        return shlex.join(["kubectl", *self.args(*args)])

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

    def live_images(self, namespace: str) -> set[str]:
        """Every image the tenant's workloads name now (StatefulSets, Deployments, CronJobs)."""
        listing = json.loads(self.run("-n", namespace, "get", "statefulsets,deployments,cronjobs", "-o", "json"))
        return workload_images(listing["items"])


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
        # Each once, however often it is named: a tenant upgraded twice would be restarted twice.
        named = list(dict.fromkeys(name for name in args.tenants.split(",") if name))
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


def print_plan_header(args, what: str, plan: list[list[str]], left_alone: list[str]) -> None:
    """The first lines of an upgrade, in a cluster or locally: what it does, in which order, and
    which tenants it leaves alone."""
    print(f"{'Plan: ' if args.dry_run else ''}{what}: the canary {plan[0][0]} first, then waves of {args.wave}")
    if left_alone:
        print(f"left alone: {', '.join(left_alone)}")


def set_overlay_tag(directory: Path, repository: str, tag: str) -> None:
    """Write the app image's tag into the overlay's `images:` (adding the entry, or the list, the
    first time), keeping the rest of the file as it is. The tag is written quoted (`newTag: "0.2.0"`):
    unquoted, a tag such as 0.10 is a number to kustomize, which then fails to render. An entry
    written either way (onboard-tenant --force writes back what it reads) is found and rewritten."""
    path = directory / "kustomization.yaml"
    text = path.read_text()
    quoted = json.dumps(tag)
    entry = re.compile(rf"^(  - name: {re.escape(repository)}\n    newTag: )\S+$", re.MULTILINE)
    if entry.search(text):
        text = entry.sub(lambda match: match.group(1) + quoted, text)
    elif re.search(r"^images:\n", text, re.MULTILINE):
        text = re.sub(r"^images:\n", lambda _: f"images:\n  - name: {repository}\n    newTag: {quoted}\n", text,
                      count=1, flags=re.MULTILINE)
    else:
        text = text.rstrip("\n") + (
            "\n# The app image's tag, written by scripts/fleet upgrade (deploy.yml pins it to its digest).\n"
            f"images:\n  - name: {repository}\n    newTag: {quoted}\n"
        )
    path.write_text(text)


def app_image(objects: list[dict]) -> str:
    """The app image a rendered overlay names for the API."""
    api = next(obj for obj in objects if obj["kind"] == "Deployment" and obj["metadata"]["name"] == API)
    return container_image(api["spec"]["template"]["spec"], "api")


def workload_images(objects: list[dict]) -> set[str]:
    """The image of every container and init container of these objects' pod templates (a
    Deployment's or StatefulSet's, and a CronJob's job template's)."""
    images = set()
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        images.update(container["image"] for container in [*pod.get("initContainers", []), *pod.get("containers", [])])
    return images


def image_repository(image: str) -> str:
    """`repo` of `repo:tag`, `repo@sha256:…` or `repo:tag@sha256:…` (a registry's `:port` is not a tag)."""
    head, _, last = image.partition("@")[0].rpartition("/")
    return f"{head}/{last.partition(':')[0]}" if head else last.partition(":")[0]


def digest_pins(rendered: set[str], live: set[str]) -> list[str]:
    """`repo:tag@digest` for each image the overlay renders by tag alone while the live workloads
    run that same repository and tag by digest (deploy.yml applies every image so). Applying these
    leaves those pod templates as they are: an app upgrade does not restart PostgreSQL. The app
    image under its new tag is not among them (the live ones run the old tag). A repository rendered
    under two names (kustomize's `images:` sets one for all of them), or a tag run under two digests,
    is left as rendered."""
    running: dict[str, set[str]] = {}
    for image in live:
        name, _, digest = image.partition("@")
        if digest:
            running.setdefault(name, set()).add(digest)
    by_repository: dict[str, set[str]] = {}
    for image in rendered:
        by_repository.setdefault(image_repository(image), set()).add(image)
    pins = []
    for images in by_repository.values():
        image = next(iter(images))
        if len(images) == 1 and "@" not in image and len(running.get(image, ())) == 1:
            pins.append(f"{image}@{next(iter(running[image]))}")
    return sorted(pins)


@contextmanager
def pinned_overlay(name: str, pins: list[str]) -> Iterator[Path]:
    """A temporary overlay of tenants/NAME that adds the digest of each pin, as deploy.yml's does:
    a hidden folder beside it (tenants/.fleet-NAME-XXXX, which no script takes for a tenant),
    removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=f".fleet-{name}-", dir=tenancy.TENANTS_DIR))
    try:
        lines = [f"# scripts/fleet upgrade's overlay of tenants/{name}, pinned to the digests its workloads run.",
                 "resources:", f"  - ../{name}"]
        lines += ["images:"] if pins else []
        for pin in pins:
            image, _, digest = pin.partition("@")
            repository = image_repository(image)
            lines += [f"  - name: {repository}", f"    newTag: {json.dumps(image[len(repository) + 1:])}",
                      f"    digest: {digest}"]
        (folder / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upgrade_cluster(args) -> int:
    cluster = Cluster(args.context)
    deployed = cluster.tenant_namespaces()
    folders = {tenant.name: tenant for tenant in tenancy.discover_tenants()}
    candidates = [name for name in sorted(deployed) if name in folders and not folders[name].local_only]
    left_alone = [f"{name} (LOCAL_ONLY)" for name in sorted(folders) if folders[name].local_only]
    left_alone += [f"{name} (no namespace {tenancy.namespace(name)})" for name in sorted(folders)
                   if name not in deployed and not folders[name].local_only]
    left_alone += [f"{name} (no folder tenants/{name})" for name in sorted(deployed) if name not in folders]
    plan = choose(candidates, left_alone, args)
    rendered = {name: tenancy.render(tenancy.tenant_dir(name)) for wave in plan for name in wave}
    current = {name: app_image(objects) for name, objects in rendered.items()}
    repository = image_repository(current[plan[0][0]])
    print_plan_header(args, f"image {repository}:{args.image} in context {cluster.context}", plan, left_alone)
    done: list[str] = []
    for number, wave in enumerate(plan):
        print(f"wave {number}{' (canary)' if number == 0 else ''}: "
              + ", ".join(f"{name} ({image_tag(current[name])} -> {args.image})" for name in wave), flush=True)
        if args.dry_run:
            for name in wave:
                print_steps(cluster, name, deployed[name], rendered[name], repository, args.image)
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


def print_steps(cluster: Cluster, name: str, namespace: str, objects: list[dict], repository: str, tag: str) -> None:
    """What an upgrade would do to one tenant (--dry-run), with the pins it would apply today."""
    images = {f"{repository}:{tag}" if image_repository(image) == repository else image
              for image in workload_images(objects)}
    pins = digest_pins(images, cluster.live_images(namespace))
    steps = [
        f"set images: newTag {json.dumps(tag)} in tenants/{name}/kustomization.yaml",
        f"pin to the digests running now: {', '.join(pins) or 'none (no image of the render runs by digest)'}",
        f"{cluster.command('apply', '-k', f'tenants/.fleet-{name}-XXXX')} (tenants/{name} with those pins;"
        " removed afterwards)",
        *(cluster.command("-n", namespace, "rollout", "status", workload, f"--timeout={ROLLOUT_TIMEOUT}")
          for workload in ROLLED_OUT),
        f"{cluster.probe_command(namespace)}: ready, tenant {name}, version {tag}",
    ]
    print("\n".join(f"  {step}" for step in steps))


def roll_wave(
    cluster: Cluster, wave: list[str], namespaces: dict[str, str], repository: str, tag: str
) -> dict[str, str]:
    """Apply the tag to every tenant of the wave, then wait for each; {tenant: why} of those that failed."""
    failed: dict[str, str] = {}
    for name in wave:
        try:
            apply_tag(cluster, name, namespaces[name], repository, tag)
        except StepError as error:
            failed[name] = str(error)
    for name in wave:
        if name in failed:
            continue
        try:
            for workload in ROLLED_OUT:
                cluster.run("-n", namespaces[name], "rollout", "status", workload, f"--timeout={ROLLOUT_TIMEOUT}")
            smoke(lambda name=name: cluster.ready_probe(namespaces[name]), name, tag)
            print(f"  {name}: {tag} rolled out, ready", flush=True)
        except StepError as error:
            failed[name] = str(error)
    return failed


def apply_tag(cluster: Cluster, name: str, namespace: str, repository: str, tag: str) -> None:
    """Write the tag into the tenant's overlay, check that the API renders it, and apply the overlay
    with every other image pinned to the digest its live workloads run (deploy.yml applied them by
    digest: applied by tag alone, PostgreSQL's pod template would change and postgres-0 restart).
    Until the apply has succeeded, any failure puts the overlay back as it was (StepError)."""
    path = tenancy.tenant_dir(name) / "kustomization.yaml"
    before = path.read_text()
    try:
        set_overlay_tag(path.parent, repository, tag)
        objects = tenancy.render(path.parent)
        image = app_image(objects)
        if image != f"{repository}:{tag}":
            raise StepError(
                f"tenants/{name} renders {image}, not {repository}:{tag}: its overlay sets the image otherwise"
            )
        pins = digest_pins(workload_images(objects), cluster.live_images(namespace))
        with pinned_overlay(name, pins) as overlay:
            cluster.run("apply", "-k", os.path.relpath(overlay))
    except BaseException:
        path.write_text(before)
        raise


def smoke(probe, tenant: str, version: str) -> None:
    """Ask /health/ready until it answers ready, as the tenant, with the new version (old pods may
    still answer for a while as they drain); StepError when it does not within SMOKE_SECONDS.
    An answer without a version (an image from before /health named it) is accepted, with a note:
    the version cannot be checked."""
    deadline = time.monotonic() + SMOKE_SECONDS
    while True:
        row = Row(tenant)
        try:
            status, body = probe()
            problem = check_ready_answer(status, body, tenant, row)
            if problem is None and row.version not in (NO_VERSION, version):
                problem = f"/health/ready answers version {row.version}, not {version}"
        except (StepError, ValueError) as error:
            problem = f"readiness not answered: {error}"
        if problem is None:
            if row.version == NO_VERSION:
                print(f"  {tenant}: /health/ready does not name its version (an image from before it did):"
                      f" the version could not be checked", flush=True)
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
        if VERSION_TAG.match(old):
            print(f"roll back with: scripts/fleet upgrade --image {old} --tenants {','.join(names)}", file=sys.stderr)
        else:
            print(f"roll back {', '.join(names)} by hand: they ran {old}, not a release version that fleet upgrade"
                  " takes: put their overlays back (git checkout tenants/) and deploy them with deploy.yml",
                  file=sys.stderr)
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
    print_plan_header(args, f"restart the local servers on this checkout's code ({version})", plan, left_alone)
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
                # `scripts/dev run` stops every tenant when one server is down, unless it is down on purpose.
                with dev.down_on_purpose(name, "scripts/fleet upgrade --local restarts it"):
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
    upgrade.add_argument("--image", help="the release version tag to run, X.Y.Z[-PRERELEASE] (not with --local)")
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
        if args.image and (not VERSION_TAG.match(args.image) or len(args.image) > 128):
            raise UsageError(f"--image {args.image!r} is not a release version tag (X.Y.Z or X.Y.Z-PRERELEASE, as"
                             " publish.yml tags a release): the smoke request checks that the tenant answers with"
                             " that version")
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
