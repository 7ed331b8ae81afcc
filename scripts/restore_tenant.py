"""Restore a tenant's PostgreSQL database to a point in time from its pgBackRest archive, in the
current kubectl context or (--local) a tenant of `make run`; or from one of its pg_dump backups.

    scripts/restore-tenant NAME --list                  the backups and the restore window
    scripts/restore-tenant NAME --to-time 2026-11-30T10:15:00Z
    scripts/restore-tenant NAME --latest                up to the newest archived change
    scripts/restore-tenant NAME --drill                 restore into a scratch cluster and check it
    (each also with --local: the tenant of `make run`)

    scripts/restore-tenant NAME --list-dumps      list the pg_dump files in the tenant's backup volume
    scripts/restore-tenant NAME [BACKUP_FILE]     restore one (default: the newest)

A point-in-time restore must reach an instant of the window from the end of the oldest backup to
now; a time outside it is refused before anything changes. The tenant's scheduler (its CronJob
suspended, a running pass waited for), webhook dispatcher (Deployment finance-webhooks scaled to 0,
back to its replicas afterwards) and API stop, everything written until then is archived,
the database's data directory is replaced by a pgBackRest restore to the instant asked for (the
newest backup that ended by it, then the archived WAL), the restored server is promoted and
checkpointed, the API serves again and the scheduler resumes (unless it was suspended before;
nothing is lost meanwhile: its next pass makes every recurring transaction missed). All or
nothing: on any failure before the restored server is promoted, the data directory it replaced is
put back and started, so the database is as it was. It prints the backup used, the time reached
and the rows per table.

In Kubernetes (namespace finance-NAME) PostgreSQL's StatefulSet is scaled to 0, a Job with the
postgres container's image, pgBackRest settings and data volume runs scripts/restore_pgdata.sh
(restore into a sibling directory of PGDATA, then swap the two with mv), and the StatefulSet is
scaled back; a failure runs the same script's rollback in a second Job (once the restore Job is
deleted), and if that fails too, PostgreSQL, the API and the dispatcher stay at 0 replicas and
the scheduler suspended, and the message says what is on the volume and what to do. A full backup starts once
the restored server is promoted. When the running database is not the archive's (a lost volume
re-initialised, a new cluster), there is nothing of it to archive: the restore warns and replaces
it. A drill (--drill) starts a Job from the tenant's restore-drill CronJob, waits for it and
prints its log: the newest backup and the archive restored into the Job's scratch directory and
checked (migrations current, the totals equal a recomputation); exit status 1 when it fails. The
tenant's own database is not touched. Locally (scripts/local_restore.py) the same steps run
against the tenant's cluster of `make run`.

A pg_dump BACKUP_FILE is a dump name as listed (finance-20260101T021700Z.dump) or the path of a
local file made by `pg_dump --format=custom` (a copy kept off the cluster, say). The restore
copies the dump into the postgres-0 pod, stops the tenant's scheduler, webhook dispatcher and API
(suspends the CronJob finance-scheduler, waits for a running pass, scales finance-webhooks and
finance-api to 0 and waits for their pods to go), replays the dump with `pg_restore --clean
--if-exists` into psql, as the app's own database role, in one transaction that first drops the
public schema (all or nothing: the database ends exactly as in the backup, or unchanged), then
scales the API and the dispatcher back and resumes the scheduler (unless it was suspended before);
the API's migrate init container brings an older schema up to date. Deliveries the restore brings
back as pending are sent again, with their webhook-id (at least once).

Everything written after the instant or backup restored is lost, so a restore asks for the
tenant's name unless --yes.
"""


from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import tenancy
from pgbackrest_info import Backup, backups_of, listing, newest_ended_by
from tenancy import StepError, kubectl_output

BACKUP_NAME = re.compile(r"^finance-\d{8}T\d{6}Z\.dump$")
BACKUP_DIR = "/backups"
RESTORE_PATH = "/tmp/restore.dump"  # an emptyDir of the postgres pod  # noqa: S108
POSTGRES_POD = "postgres-0"
WAIT = "300s"  # for kubectl wait and rollout status


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="restore-tenant", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", metavar="NAME", help="the tenant (its namespace is finance-NAME)")
    parser.add_argument("backup", metavar="BACKUP_FILE", nargs="?",
                        help="a dump name from --list-dumps, or a local file")
    parser.add_argument("--list", action="store_true",
                        help="list the tenant's pgBackRest backups, newest first, and the restore window")
    parser.add_argument("--list-dumps", action="store_true", help="list the pg_dump files in the backup volume")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--local", action="store_true", help="a tenant of `make run`, from its pgBackRest archive")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--to-time", type=instant, metavar="TIME",
                        help="restore to this instant, ISO 8601 with its offset (2026-11-30T10:15:00Z)")
    target.add_argument("--latest", action="store_true", help="restore to the newest archived change")
    target.add_argument("--drill", action="store_true", help="restore into a scratch cluster and check it")
    args = parser.parse_args(argv)
    point_in_time = args.to_time is not None or args.latest or args.drill
    if (args.list and point_in_time) or (args.list_dumps and (args.list or point_in_time)):
        parser.error("--list, --list-dumps, --to-time, --latest and --drill exclude each other")
    if point_in_time and args.backup:
        parser.error("--to-time, --latest and --drill take no BACKUP_FILE (that is a pg_dump file)")
    if args.local and (args.backup or args.list_dumps or not (args.list or point_in_time)):
        parser.error("--local takes exactly one of --list, --to-time, --latest, --drill, and no BACKUP_FILE")
    try:
        tenancy.check_name(args.name)
    except tenancy.UsageError as error:
        parser.error(str(error))
    if (args.list or args.list_dumps) and args.backup:
        parser.error("--list and --list-dumps take no BACKUP_FILE")
    if args.backup and not BACKUP_NAME.match(args.backup) and not Path(args.backup).is_file():
        parser.error(
            f"BACKUP_FILE {args.backup!r} is neither a backup name (finance-YYYYMMDDTHHMMSSZ.dump) nor a local file"
        )
    return args


def instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset; a time without one is ambiguous and refused."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (2026-11-30T10:15:00Z)") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: add Z (UTC) or +hh:mm")
    return value


def pod_security(**extra) -> dict:
    """The restricted profile of a pod: the postgres image's user (70), never root, seccomp."""
    return {
        "runAsNonRoot": True, "runAsUser": 70, "runAsGroup": 70, **extra,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict:
    """The restricted profile of a container: no privilege, a read-only root, no capability."""
    return {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
    }


def reader_pod_manifest(name: str, image: str) -> dict:
    """A pod that mounts the backup volume read-only, meets the restricted profile, and has no network."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "backup-reader"}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 3600,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security(),
            "containers": [{
                "name": "reader",
                "image": image,
                "command": ["sleep", "3600"],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "200m", "memory": "64Mi"},
                },
                "securityContext": container_security(),
                "volumeMounts": [{"name": "backups", "mountPath": BACKUP_DIR, "readOnly": True}],
            }],
            "volumes": [{
                "name": "backups",
                "persistentVolumeClaim": {"claimName": "postgres-backups", "readOnly": True},
            }],
        },
    }


class BackupReader:
    """A short-lived pod in the tenant's namespace that can read its backup volume."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.name = f"backup-reader-{secrets.token_hex(3)}"

    def __enter__(self) -> BackupReader:
        image = kubectl_output(
            "-n", self.namespace, "get", "statefulset", "postgres",
            "-o", "jsonpath={.spec.template.spec.containers[0].image}",
        ).strip()
        manifest = json.dumps(reader_pod_manifest(self.name, image))
        kubectl_output("-n", self.namespace, "apply", "-f", "-", stdin=manifest)
        try:
            kubectl_output(
                "-n", self.namespace, "wait", "--for=condition=Ready", f"pod/{self.name}", f"--timeout={WAIT}"
            )
        except StepError as exc:
            self.__exit__()
            raise StepError(f"{exc} (is a backup job holding the volume on another node?)") from None
        return self

    def __exit__(self, *exc_info) -> None:
        tenancy.kubectl(
            "-n", self.namespace, "delete", "pod", self.name, "--wait=false", "--ignore-not-found",
            capture=True, check=False,
        )

    def backups(self) -> list[str]:
        """Dump names in the volume, newest first."""
        listing = kubectl_output("-n", self.namespace, "exec", self.name, "--", "ls", "-1", BACKUP_DIR)
        return sorted((line for line in listing.split() if BACKUP_NAME.match(line)), reverse=True)

    def copy_to_postgres(self, backup: str) -> None:
        """Stream a dump from the volume into the postgres pod, without a local copy."""
        source = subprocess.Popen(
            tenancy.kubectl_command("-n", self.namespace, "exec", self.name, "--", "cat", f"{BACKUP_DIR}/{backup}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            upload(self.namespace, source.stdout)
        finally:
            source.stdout.close()
            if source.wait() != 0:
                raise StepError(f"reading {backup} failed: {source.stderr.read().decode().strip()}")


def upload(namespace: str, stream) -> None:
    kubectl_output(
        "-n", namespace, "exec", "-i", POSTGRES_POD, "-c", "postgres", "--",
        "sh", "-c", f"cat > {RESTORE_PATH}", stdin=stream,
    )


# Run in the postgres container as `sh -c RESTORE_SCRIPT restore DUMP`, as the app's role (the
# container's APP_USER, APP_DB and APP_PASSWORD_FILE; the local socket): it owns the database, so
# the new schema public and every restored object are its own, and the app can migrate them.
# One transaction: the public schema is dropped (so tables of migrations newer than the backup go
# too) and the dump replayed; COMMIT is only sent once pg_restore has read the whole dump, so a
# failure anywhere leaves the database as it was.
RESTORE_SCRIPT = """
dump=$1
failed="$dump.failed"
rm -f "$failed"
if [ -n "${APP_PASSWORD_FILE:-}" ]; then PGPASSWORD=$(cat "$APP_PASSWORD_FILE"); export PGPASSWORD; fi
{
  echo 'BEGIN;'
  echo 'DROP SCHEMA IF EXISTS public CASCADE;'
  echo 'CREATE SCHEMA public;'
  if pg_restore --clean --if-exists --no-owner --no-acl --file=- "$dump"; then
    echo 'COMMIT;'
  else
    touch "$failed"
  fi
} | psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username="${APP_USER:-finance}" --dbname="${APP_DB:-finance}"
status=$?
if [ -e "$failed" ] || [ "$status" -ne 0 ]; then
  echo "restore failed; the database is unchanged" >&2
  status=1
fi
rm -f "$dump" "$failed"
exit $status
"""


def restore(namespace: str) -> None:
    """Replace the database with the uploaded dump, all or nothing, then remove the dump."""
    kubectl_output(
        "-n", namespace, "exec", POSTGRES_POD, "-c", "postgres", "--",
        "sh", "-c", RESTORE_SCRIPT, "restore", RESTORE_PATH,
    )


def confirm(name: str, where: str, source: str) -> bool:
    print(
        f"This replaces every table of tenant {name!r} ({where}) with {source};\n"
        "everything written after it is lost, and the API is down meanwhile.",
        file=sys.stderr,
    )
    answer = input(f"Type the tenant name ({name}) to continue: ")
    return answer.strip() == name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.local:
        return local_main(args)
    namespace = tenancy.namespace(args.name)
    if not shutil.which(tenancy.kubectl_command()[0]):
        print("restore-tenant: kubectl not found on PATH (install it, select the cluster's context)", file=sys.stderr)
        return 1
    asks = not (args.list or args.list_dumps or args.drill)
    if asks and not args.yes and not sys.stdin.isatty():
        print("restore-tenant: no terminal to confirm on; pass --yes to restore anyway", file=sys.stderr)
        return 2
    try:
        kubectl_output("get", "namespace", namespace, "-o", "name")
        if args.list:
            print(list_pitr_backups(args.name, namespace))
            return 0
        if args.drill:
            return drill(namespace)
        if args.to_time is not None or args.latest:
            return point_in_time_restore(args, namespace)
        local_file = Path(args.backup) if args.backup and not BACKUP_NAME.match(args.backup) else None
        if local_file:
            if not args.yes and not confirm(args.name, f"namespace {namespace}", f"local file {local_file}"):
                print("restore-tenant: not confirmed; nothing changed", file=sys.stderr)
                return 1
            with_api_stopped(namespace, lambda: _upload_file(namespace, local_file))
            print(f"{args.name}: restored from {local_file}")
            return 0
        with BackupReader(namespace) as reader:
            backups = reader.backups()
            if args.list_dumps:
                print("\n".join(backups) if backups else f"{args.name}: no dumps yet")
                return 0
            if not backups:
                raise StepError(f"no backups in {namespace}'s postgres-backups volume")
            backup = args.backup or backups[0]
            if backup not in backups:
                raise StepError(f"{backup} is not in {namespace}'s backups; see --list")
            if not args.yes and not confirm(args.name, f"namespace {namespace}", backup):
                print("restore-tenant: not confirmed; nothing changed", file=sys.stderr)
                return 1
            with_api_stopped(namespace, lambda: reader.copy_to_postgres(backup))
        print(f"{args.name}: restored from {backup}")
        return 0
    except StepError as exc:
        print(f"restore-tenant: {exc}", file=sys.stderr)
        return 1


def local_main(args: argparse.Namespace) -> int:
    """--local: the pgBackRest archive of a tenant of `make run` (scripts/local_restore.py)."""
    import local_restore  # the venv's psycopg; the Kubernetes path needs only the standard library

    writes = args.to_time is not None or args.latest
    if writes and not args.yes and not sys.stdin.isatty():
        print("restore-tenant: no terminal to confirm on; pass --yes to restore anyway", file=sys.stderr)
        return 2
    try:
        if args.list:
            print(local_restore.list_backups(args.name))
        elif args.drill:
            print(local_restore.drill(args.name))
        else:
            source = f"its state at {args.to_time.isoformat()}" if args.to_time else "its newest archived state"
            if not args.yes and not confirm(args.name, f"local cluster of {args.name}", source):
                print("restore-tenant: not confirmed; nothing changed", file=sys.stderr)
                return 1
            print(local_restore.restore(args.name, args.to_time))
        return 0
    except local_restore.Refused as exc:
        print(f"restore-tenant: {exc}; nothing changed", file=sys.stderr)
        return 1
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
        what = "drill failed" if args.drill else "restore failed"
        print(f"restore-tenant: {what}: {detail}", file=sys.stderr)
        return 1


def _upload_file(namespace: str, path: Path) -> None:
    with path.open("rb") as stream:
        upload(namespace, stream)


def with_api_stopped(namespace: str, copy_dump) -> None:
    """Copy the dump in, stop the scheduler, the webhook dispatcher and the API, restore, and bring
    them back even if the restore failed."""
    copy_dump()
    replicas = kubectl_output(
        "-n", namespace, "get", "deployment", "finance-api", "-o", "jsonpath={.spec.replicas}"
    ).strip() or "2"
    dispatchers = webhooks_replicas(namespace)
    resume = stop_scheduler(namespace)
    try:
        stop_webhooks(namespace, dispatchers)
        # At 0 replicas the autoscaler leaves the Deployment alone until it is scaled back.
        kubectl_output("-n", namespace, "scale", "deployment", "finance-api", "--replicas=0")
        wait_until_api_stopped(namespace)
        restore(namespace)
    finally:
        serve_again(namespace, replicas, resume, dispatchers)
    kubectl_output("-n", namespace, "rollout", "status", "deployment/finance-api", f"--timeout={WAIT}")


def wait_until_api_stopped(namespace: str, timeout: float = 300) -> None:
    """Wait until no API pod and no webhook dispatcher's pod is left, so no connection holds a lock
    pg_restore needs, and no outcome of a send is written into the database being replaced."""
    deadline = time.monotonic() + timeout
    for name in ("finance-api", WEBHOOKS):
        pods = ("-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/name={name}", "-o", "name")
        while kubectl_output(*pods).strip():
            if time.monotonic() > deadline:
                raise StepError(f"{name} pods still running after {timeout:.0f} s")
            time.sleep(2)


# The webhook dispatcher (kubernetes/base/webhooks.yaml) writes into the database too (each
# delivery's outcome): a restore scales it to 0 with the API and back with it. Nothing is lost
# meanwhile: deliveries wait in the database, and those the restore brings back as pending are sent
# again with their webhook-id (receivers drop what they have seen: at least once).
WEBHOOKS = "finance-webhooks"


def webhooks_replicas(namespace: str) -> str | None:
    """The dispatcher's replicas, to scale it back to; None for a tenant deployed before it."""
    replicas = kubectl_output(
        "-n", namespace, "get", "deployment", WEBHOOKS, "--ignore-not-found", "-o", "jsonpath={.spec.replicas}"
    ).strip()
    return replicas or None


def stop_webhooks(namespace: str, replicas: str | None) -> None:
    if replicas is not None:
        kubectl_output("-n", namespace, "scale", "deployment", WEBHOOKS, "--replicas=0")


def scale_webhooks_command(namespace: str, replicas: str | None) -> str:
    return f" && kubectl -n {namespace} scale deployment {WEBHOOKS} --replicas={replicas}" if replicas else ""


# The recurring transactions' scheduler (kubernetes/base/scheduler.yaml) writes into the database as
# the API does: a restore suspends its CronJob with the API's scale to 0 and resumes it when the API
# is scaled back. Nothing is lost meanwhile: its next pass makes every occurrence missed.
SCHEDULER = "finance-scheduler"
SCHEDULER_LABEL = f"app.kubernetes.io/name={SCHEDULER}"  # its Jobs' and their pods'
# A pass's Job ends within its activeDeadlineSeconds (600), its pods within their grace period after.
SCHEDULER_WAIT_SECONDS = 660


def suspend_scheduler_patch(suspend: bool) -> str:
    return json.dumps({"spec": {"suspend": suspend}}, separators=(",", ":"))


def resume_scheduler_command(namespace: str) -> str:
    return f"kubectl -n {namespace} patch cronjob {SCHEDULER} --type=merge -p '{suspend_scheduler_patch(False)}'"


def set_scheduler_suspended(namespace: str, suspend: bool) -> None:
    kubectl_output(
        "-n", namespace, "patch", "cronjob", SCHEDULER, "--type=merge", "-p", suspend_scheduler_patch(suspend)
    )


def scheduler_running(namespace: str) -> list[str]:
    """The scheduler's Jobs not finished and pods not finished. Both: a Job between two attempts
    has no pod for its backoff's seconds, and a pod may still be terminating once its Job failed."""
    listed = kubectl_output("-n", namespace, "get", "jobs,pods", "-l", SCHEDULER_LABEL, "-o", "json")
    running = []
    for item in json.loads(listed or "{}").get("items", []):
        status = item.get("status") or {}
        if item["kind"] == "Pod":
            finished = status.get("phase") in ("Succeeded", "Failed")
        else:
            finished = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
        if not finished:
            running.append(f"{item['kind'].lower()}/{item['metadata']['name']}")
    return running


def stop_scheduler(namespace: str) -> bool:
    """Suspend the scheduler's CronJob and wait until no pass of it runs. True when this suspended
    it, to be resumed by serve_again; False when it was suspended already (it stays so) or there is
    none. When a pass does not end in time, the CronJob is left as it was and StepError says so."""
    cronjob = kubectl_output("-n", namespace, "get", "cronjob", SCHEDULER, "--ignore-not-found", "-o", "json")
    if not cronjob.strip():
        return False  # a tenant deployed before the scheduler
    suspended = json.loads(cronjob).get("spec", {}).get("suspend") is True
    if not suspended:
        set_scheduler_suspended(namespace, True)
    deadline = time.monotonic() + SCHEDULER_WAIT_SECONDS
    try:
        while running := scheduler_running(namespace):
            if time.monotonic() > deadline:
                raise StepError(
                    f"a pass of the scheduler still runs after {SCHEDULER_WAIT_SECONDS} s ({', '.join(running)});"
                    f" its CronJob {SCHEDULER} is as it was, and the restore did not start"
                )
            time.sleep(POLL_SECONDS)
    except BaseException:
        if not suspended:
            set_scheduler_suspended(namespace, False)
        raise
    return not suspended


def serve_again(namespace: str, replicas: str, resume_scheduler: bool, webhooks: str | None = None) -> None:
    """Scale the API back to its replicas and the webhook dispatcher to its own (when it had some),
    then resume the scheduler if the restore suspended it (each even when the one before failed: the
    database is whole either way)."""
    try:
        kubectl_output("-n", namespace, "scale", "deployment", "finance-api", f"--replicas={replicas}")
    finally:
        try:
            if webhooks is not None:
                kubectl_output("-n", namespace, "scale", "deployment", WEBHOOKS, f"--replicas={webhooks}")
        finally:
            if resume_scheduler:
                set_scheduler_suspended(namespace, False)


# --- point-in-time restores in Kubernetes, from the tenant's pgBackRest repository ------------------

PGDATA_SCRIPT = Path(__file__).resolve().parent / "restore_pgdata.sh"
DATA_VOLUME = "data"  # the StatefulSet's volume claim template: claim data-postgres-0
RECOVERY_TIMEOUT_SECONDS = 3600  # for the restored server to replay the archive and be promoted
JOB_TIMEOUT_SECONDS = 6 * 3600
POLL_SECONDS = 2
# The restore Job's pods reach the object store through the NetworkPolicy object-store, which admits
# them by this name (and grants them nothing else).
OBJECT_STORE_LABEL = "pgbackrest-restore"
# Rows per table of schema public, in one statement (psql prints one "table|rows" line each).
ROW_COUNTS_SQL = (
    "SELECT c.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I',"
    " n.nspname, c.relname), false, true, '')))[1]::text FROM pg_class c JOIN pg_namespace n"
    " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"
)


class Refused(StepError):
    """The restore cannot be done as asked; nothing was changed."""


def psql(namespace: str, sql_text: str, database: str = "postgres") -> str:
    """One statement as the superuser, through the postgres container's socket (trusted there)."""
    return kubectl_output(
        "-n", namespace, "exec", POSTGRES_POD, "-c", "postgres", "--",
        "psql", "--no-psqlrc", "--username=postgres", f"--dbname={database}", "--tuples-only", "--no-align",
        "--set=ON_ERROR_STOP=1", f"--command={sql_text}",
    ).strip()


def repository_info(namespace: str) -> dict:
    """The stanza as `pgbackrest info --output=json` in the postgres container sees it ({} if none)."""
    output = kubectl_output(
        "-n", namespace, "exec", POSTGRES_POD, "-c", "postgres", "--",
        "pgbackrest", "--log-level-console=off", "info", "--output=json",
    )
    try:
        stanzas = json.loads(output or "[]")
    except json.JSONDecodeError:
        raise StepError(f"pgbackrest info in {namespace}/{POSTGRES_POD} did not print JSON: {output[:200]!r}") from None
    return stanzas[0] if stanzas else {}


def pitr_backups(namespace: str, info: dict | None = None) -> list[Backup]:
    """The repository's backups, oldest first."""
    return backups_of(repository_info(namespace) if info is None else info)


def archive_system_id(info: dict) -> str | None:
    """The system identifier of the database the stanza archives (its newest `db` entry), if known."""
    databases = info.get("db") or []
    if not databases:
        return None
    return str(max(databases, key=lambda db: db.get("id", 0)).get("system-id", "")) or None


def running_is_the_archives(namespace: str, info: dict) -> bool:
    """Whether the running PostgreSQL is the database the repository archives. It is not after a
    lost volume (the image ran initdb on the new one) or on a new cluster: a cluster of its own,
    whose WAL pgBackRest refuses (`pgbackrest check`: the info files "do not match the database")."""
    expected = archive_system_id(info)
    if expected is None:
        return True  # an older pgBackRest's info: `pgbackrest check` tells
    return psql(namespace, "SELECT system_identifier FROM pg_control_system()") == expected


def list_pitr_backups(name: str, namespace: str) -> str:
    backups = pitr_backups(namespace)
    if not backups:
        return f"{name}: no pgBackRest backup yet (the CronJob postgres-backup-full takes the first)"
    return listing(name, backups, "now")


def choose_backup(backups: list[Backup], to_time: datetime | None, now: datetime) -> Backup:
    """The newest backup that ended by `to_time` (None: the newest); Refused outside the window."""
    if not backups:
        raise Refused("the repository holds no backup yet (the CronJob postgres-backup-full takes the first)")
    if to_time is not None and not backups[0].stopped <= to_time <= now:
        raise Refused(
            f"{to_time.isoformat()} is outside the restore window: {backups[0].stopped.isoformat()} to"
            f" {now.isoformat()} (from the end of the oldest backup to now)"
        )
    return newest_ended_by(backups, to_time)


def restore_job_manifest(name: str, statefulset: dict, mode: str, options: list[str]) -> dict:
    """A Job that runs restore_pgdata.sh MODE on the database's volume, with the postgres container's
    image and pgBackRest settings (its ConfigMap, Secret keys and PGDATA), meeting the restricted
    profile, with no ServiceAccount token, egress to the object store only."""
    pod = statefulset["spec"]["template"]["spec"]
    postgres = next(c for c in pod["containers"] if c["name"] == "postgres")
    env = [e for e in postgres.get("env", []) if e["name"].startswith("PGBACKREST_") or e["name"] == "PGDATA"]
    data_mount = next(m for m in postgres["volumeMounts"] if m["name"] == DATA_VOLUME)
    labels = {"app.kubernetes.io/name": OBJECT_STORE_LABEL, "app.kubernetes.io/component": "restore"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_TIMEOUT_SECONDS,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # The owner of the data directory, as in the postgres pod.
                    "securityContext": pod_security(fsGroup=70, fsGroupChangePolicy="OnRootMismatch"),
                    "containers": [{
                        "name": "restore",
                        "image": postgres["image"],
                        "command": ["sh", "-c", PGDATA_SCRIPT.read_text(), "restore_pgdata.sh", mode, *options],
                        "envFrom": postgres.get("envFrom", []),
                        "env": env,
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                        "securityContext": container_security(),
                        "volumeMounts": [
                            {"name": DATA_VOLUME, "mountPath": data_mount["mountPath"]},
                            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - pgBackRest's lock path
                        ],
                    }],
                    "volumes": [
                        {"name": DATA_VOLUME,
                         "persistentVolumeClaim": {"claimName": f"{DATA_VOLUME}-{POSTGRES_POD}"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def wait_for_job(namespace: str, name: str, timeout: float = JOB_TIMEOUT_SECONDS) -> bool:
    """Wait until the Job completes (True) or fails (False)."""
    deadline = time.monotonic() + timeout
    while True:
        conditions = kubectl_output(
            "-n", namespace, "get", "job", name, "-o", 'jsonpath={.status.conditions[?(@.status=="True")].type}'
        ).split()
        if "Complete" in conditions:
            return True
        if "Failed" in conditions:
            return False
        if time.monotonic() > deadline:
            raise StepError(f"job {name} did not finish within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def job_log(namespace: str, name: str, container: str) -> str:
    result = tenancy.kubectl("-n", namespace, "logs", f"job/{name}", "-c", container, capture=True, check=False)
    return (result.stdout or "") + (result.stderr or "")


def pgdata_job_name(mode: str) -> str:
    return f"postgres-{mode}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def run_pgdata_job(namespace: str, statefulset: dict, mode: str, name: str, options: list[str] = ()) -> None:
    """restore_pgdata.sh MODE in the Job NAME on the database's volume; its log goes to stderr."""
    manifest = restore_job_manifest(name, statefulset, mode, list(options))
    kubectl_output("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))
    succeeded = wait_for_job(namespace, name)
    print(job_log(namespace, name, "restore").rstrip(), file=sys.stderr)
    if not succeeded:
        raise StepError(f"job {name} ({mode}) failed")


def scale_postgres(namespace: str, replicas: int) -> None:
    kubectl_output("-n", namespace, "scale", "statefulset", "postgres", f"--replicas={replicas}")
    if replicas == 0:
        # The volume is free for a Job once the pod is gone (ReadWriteOnce).
        kubectl_output("-n", namespace, "wait", "--for=delete", f"pod/{POSTGRES_POD}", f"--timeout={WAIT}")


def archive_up_to_now(namespace: str) -> None:
    """Everything acknowledged so far into the repository, before PostgreSQL stops: a transaction
    that commits now (a time target needs a commit after it to stop at), then `pgbackrest check`,
    which switches the WAL segment and waits until it is archived."""
    psql(namespace, "SELECT txid_current()")
    kubectl_output(
        "-n", namespace, "exec", POSTGRES_POD, "-c", "postgres", "--",
        "pgbackrest", "--pg1-socket-path=/var/run/postgresql", "check",
    )


def wait_promoted(namespace: str, timeout: float = RECOVERY_TIMEOUT_SECONDS) -> None:
    """Wait until the restored server has replayed the archive to its target and been promoted;
    StepError when its container restarts (a target the archive does not reach stops the server)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psql(namespace, "SELECT pg_is_in_recovery()") == "f":
                return
        except StepError:
            pass  # not started yet, or replaying without connections
        try:
            restarts = kubectl_output(
                "-n", namespace, "get", "pod", POSTGRES_POD, "-o",
                'jsonpath={.status.containerStatuses[?(@.name=="postgres")].restartCount}',
            ).strip()
        except StepError:
            restarts = ""  # the pod is being created
        if restarts not in ("", "0"):
            raise StepError(
                "the restored server stopped during recovery"
                f" (kubectl -n {namespace} logs {POSTGRES_POD} -c postgres --previous says why)"
            )
        if time.monotonic() > deadline:
            raise StepError(f"the restored server was not promoted within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def restored_report(namespace: str, name: str, backup: Backup, to_time: datetime | None) -> str:
    reached = psql(namespace, "SELECT pg_last_xact_replay_timestamp()")
    counts = psql(namespace, ROW_COUNTS_SQL, database="finance")
    return "\n".join([
        f"{name}: restored from backup {backup.label} ({backup.type}, ended {backup.stopped.isoformat()})",
        f"  asked for: {to_time.isoformat() if to_time else 'the end of the archive'}",
        f"  reached: the last change replayed committed at {reached or 'the backup itself'}",
        *(f"  {table}: {rows} rows" for table, rows in (line.split("|", 1) for line in counts.splitlines() if line)),
    ])


class Stranded(StepError):
    """The restore failed, and putting the replaced data directory back failed too: PostgreSQL and
    the API are left stopped; the message says what is on the volume and what to do by hand."""


def point_in_time_restore(args: argparse.Namespace, namespace: str) -> int:
    """--to-time / --latest in Kubernetes: refuse a time outside the window before anything
    changes, then stop the scheduler and the API, restore all or nothing, serve again (the
    scheduler stays suspended if it was before), and start a full backup."""
    try:
        info = repository_info(namespace)
        backup = choose_backup(pitr_backups(namespace, info), args.to_time, datetime.now(UTC))
    except Refused as exc:
        print(f"restore-tenant: {exc}; nothing changed", file=sys.stderr)
        return 1
    # A database that is not the archive's (a lost volume re-initialised by the image, a new
    # cluster) has nothing to archive into this repository, and pgBackRest would refuse its WAL.
    archived = running_is_the_archives(namespace, info)
    statefulset = json.loads(kubectl_output("-n", namespace, "get", "statefulset", "postgres", "-o", "json"))
    source = f"its state at {args.to_time.isoformat()}" if args.to_time else "its newest archived state"
    if not archived:
        print(
            f"WARNING: the database running in {namespace} is not the one its pgBackRest repository archives"
            f" (system-id {archive_system_id(info)}): a lost volume re-initialised, or a new cluster.\n"
            "Its own writes are not archived first; the restore replaces it with the archive's state"
            " (a time after the archive's last commit cannot be reached: --latest restores up to it).",
            file=sys.stderr,
        )
    if not args.yes and not confirm(args.name, f"namespace {namespace}", source):
        print("restore-tenant: not confirmed; nothing changed", file=sys.stderr)
        return 1
    target = (
        ["--type=time", f"--target={args.to_time.isoformat(sep=' ')}", "--target-action=promote"]
        if args.to_time else []
    )
    replicas = kubectl_output(
        "-n", namespace, "get", "deployment", "finance-api", "-o", "jsonpath={.spec.replicas}"
    ).strip() or "2"
    dispatchers = webhooks_replicas(namespace)
    resume = stop_scheduler(namespace)
    stranded = False
    try:
        stop_webhooks(namespace, dispatchers)
        kubectl_output("-n", namespace, "scale", "deployment", "finance-api", "--replicas=0")
        wait_until_api_stopped(namespace)
        if archived:
            try:
                archive_up_to_now(namespace)
            except StepError as exc:
                raise StepError(f"archiving the last changes failed ({exc}); nothing changed") from None
        report = replace_data(namespace, statefulset, [*target, f"--set={backup.label}"],
                              lambda: restored_report(namespace, args.name, backup, args.to_time))
    except Stranded as exc:
        # Nothing may start on the volume as it is: the API would take writes on whatever
        # PostgreSQL makes of it.
        stranded = True
        scheduler = (
            f"  5. {resume_scheduler_command(namespace)} (the scheduler, suspended with the API: its next pass"
            " makes every recurring transaction missed meanwhile)"
            if resume else f"  (no step 5: the CronJob {SCHEDULER} was suspended before the restore, or there is none)"
        )
        print(
            f"restore-tenant: {exc}\n"
            f"  4. kubectl -n {namespace} scale deployment finance-api --replicas={replicas}"
            f"{scale_webhooks_command(namespace, dispatchers)}\n{scheduler}",
            file=sys.stderr,
        )
        return 1
    except StepError as exc:
        print(f"restore-tenant: {exc}", file=sys.stderr)
        return 1
    finally:
        if not stranded:
            serve_again(namespace, replicas, resume, dispatchers)
    report += "\n" + start_full_backup(namespace)
    kubectl_output("-n", namespace, "rollout", "status", "deployment/finance-api", f"--timeout={WAIT}")
    print(report)
    return 0


def start_full_backup(namespace: str) -> str:
    """A full backup of the restored database, started and not waited for: until a backup on the
    restored timeline exists, a restore to a later time would pick one on the old timeline and
    fail ("requested timeline N is not a child of this server's history")."""
    name = f"postgres-backup-full-manual-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    how = f"kubectl -n {namespace} create job --from=cronjob/postgres-backup-full {name}"
    try:
        kubectl_output("-n", namespace, "create", "job", name, "--from=cronjob/postgres-backup-full")
    except StepError as exc:
        print(f"restore-tenant: WARNING: starting a full backup failed ({exc}); start one: {how}", file=sys.stderr)
        return (
            f"  full backup: NOT started ({exc}); start one now ({how}): until a backup of the restored"
            " database ends, a restore to a later time fails"
        )
    return (
        f"  full backup: started, job {name} (kubectl -n {namespace} logs -f job/{name}); until it ends,"
        " a restore to a later time fails"
    )


def replace_data(namespace: str, statefulset: dict, options: list[str], report) -> str:
    """Stop PostgreSQL, restore into a sibling of its data directory and swap, start it and wait
    for its promotion; on a failure until then, put the replaced directory back and start that.
    Stranded when that fails too: PostgreSQL is then left stopped."""
    scale_postgres(namespace, 0)
    restore_job = pgdata_job_name("restore")
    try:
        run_pgdata_job(namespace, statefulset, "restore", restore_job, options)
        scale_postgres(namespace, 1)
        wait_promoted(namespace)
    except StepError as exc:
        # Before its promotion the restored server has written nothing into the repository, so the
        # old data directory can take over again as if nothing happened.
        rollback_job = pgdata_job_name("rollback")
        try:
            scale_postgres(namespace, 0)
            # The restore Job's pod may still run (its wait gave up): never two Jobs on the volume.
            kubectl_output(
                "-n", namespace, "delete", "job", restore_job, "--ignore-not-found", "--wait=true",
                "--cascade=foreground", f"--timeout={WAIT}",
            )
            run_pgdata_job(namespace, statefulset, "rollback", rollback_job)
        except StepError as rollback_failed:
            raise Stranded(stranded_message(namespace, statefulset, exc, rollback_failed, rollback_job)) from None
        kubectl_output("-n", namespace, "scale", "statefulset", "postgres", "--replicas=1")
        try:
            kubectl_output("-n", namespace, "rollout", "status", "statefulset/postgres", f"--timeout={WAIT}")
        except StepError as not_ready:
            raise StepError(f"restore failed: {exc}; the old data directory is back, but {not_ready}") from None
        raise StepError(f"restore failed: {exc}; the database is as it was") from None
    # Promoted: a new timeline is in the repository from here on, and the old directory's history
    # goes another way, so it is not put back after this point. Promotion started a spread
    # checkpoint, and until it ends archive_timeout switches no segment (docs/operations.md):
    # finish it now, then drop the replaced directory.
    try:
        psql(namespace, "CHECKPOINT")
        kubectl_output(
            "-n", namespace, "exec", POSTGRES_POD, "-c", "postgres", "--",
            "sh", "-c", PGDATA_SCRIPT.read_text(), "restore_pgdata.sh", "commit",
        )
        return report()
    except StepError as exc:
        raise StepError(
            f"restored and promoted, but then {exc}: run CHECKPOINT in {POSTGRES_POD}, then remove"
            " pgdata.replaced beside pgdata"
        ) from None


def stranded_message(namespace: str, statefulset: dict, failed: StepError, rollback_failed: StepError, job: str) -> str:
    """What is on the volume after a failed rollback, and how to put the old data back by hand."""
    postgres = next(c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "postgres")
    pgdata = next((e.get("value") for e in postgres.get("env", []) if e["name"] == "PGDATA"), None) or (
        "/var/lib/postgresql/data/pgdata")
    volume = f"{DATA_VOLUME}-{POSTGRES_POD}"
    return "\n".join([
        f"restore failed: {failed}; putting the old data directory back failed too: {rollback_failed}",
        f"The StatefulSet postgres and the Deployment finance-api (and {WEBHOOKS}, the webhook dispatcher)"
        " are left at 0 replicas, and the scheduler"
        f" (CronJob {SCHEDULER}) suspended: nothing may start on the volume {volume} as it is, nor write"
        " into what PostgreSQL makes of it. On it:",
        f"  {pgdata}: the restored data, never promoted (missing if the rollback removed it): do not start"
        " PostgreSQL on it",
        f"  {pgdata}.replaced: the data directory as it was before the restore, to put back (holding only"
        " .restore-pgdata-absent: there was none)",
        f"  {pgdata}.restoring: a partial restore, if present, to remove",
        "To put the old data back by hand:",
        f"  1. kubectl -n {namespace} logs job/{job} says why the rollback failed; wait until no Job pod is"
        f" left on the volume (kubectl -n {namespace} delete job {job} --wait=true --cascade=foreground)",
        f"  2. in a pod that mounts {volume} as uid 70 (the Job's spec: kubectl -n {namespace} get job {job}"
        f" -o yaml), what restore_pgdata.sh rollback does: rm -rf {pgdata}.restoring; then, if {pgdata}.replaced"
        f" exists, rm -rf {pgdata} && mv {pgdata}.replaced {pgdata} (if it holds only .restore-pgdata-absent:"
        f" rm -rf {pgdata} {pgdata}.replaced)",
        f"  3. kubectl -n {namespace} scale statefulset postgres --replicas=1 &&"
        f" kubectl -n {namespace} rollout status statefulset/postgres",
    ])


def drill(namespace: str) -> int:
    """--drill: a Job from the restore-drill CronJob, waited for; its log and its verdict."""
    name = f"restore-drill-manual-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    kubectl_output("-n", namespace, "create", "job", name, "--from=cronjob/restore-drill")
    passed = wait_for_job(namespace, name)
    print(job_log(namespace, name, "restore-drill").rstrip())
    if not passed:
        print(f"restore-tenant: drill failed (job {name} in {namespace})", file=sys.stderr)
        return 1
    print(f"restore-tenant: drill passed (job {name} in {namespace})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
