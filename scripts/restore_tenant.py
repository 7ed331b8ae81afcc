"""Restore a tenant's PostgreSQL database: to a point in time from its pgBackRest archive (--local:
a tenant of `make run`), or from one of its pg_dump backups in the current kubectl context.

    scripts/restore-tenant NAME --local --list              the backups and the restore window
    scripts/restore-tenant NAME --local --to-time 2026-11-30T10:15:00Z
    scripts/restore-tenant NAME --local --latest            up to the newest archived change
    scripts/restore-tenant NAME --local --drill             restore into a scratch cluster and check it

    scripts/restore-tenant NAME --list            list the dumps in the tenant's backup volume
    scripts/restore-tenant NAME [BACKUP_FILE]     restore one (default: the newest)

Locally (scripts/local_restore.py), the tenant's API stops, its cluster's data is replaced by a
pgBackRest restore to the instant asked for, which must lie in the window from the end of the
oldest backup to now (everything written until then is archived first), and the API serves again.
All or nothing: on any failure the database is as it was. It prints the backup used, the time
reached and the rows per table. A drill restores the newest backup and every archived change into
a scratch cluster, checks it (migrations current, the totals equal a recomputation) and exits 1
when a check fails; the tenant's own database is not touched.

In Kubernetes, BACKUP_FILE is a dump name as listed (finance-20260101T021700Z.dump) or the path
of a local file made by `pg_dump --format=custom` (a copy kept off the cluster, say). The restore
copies the dump into the postgres-0 pod, stops the tenant's API (scales finance-api to 0),
replays the dump with `pg_restore --clean --if-exists` into psql, as the app's own database role,
in one transaction that first drops the public schema (all or nothing: the database ends exactly
as in the backup, or unchanged), then scales the API back; its migrate init container brings an
older schema up to date.

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
from datetime import datetime
from pathlib import Path

NAMESPACE_PREFIX = "finance-"
MAX_NAME = 63 - len(NAMESPACE_PREFIX)
# A DNS label that still fits a namespace name (63 characters at most) once prefixed.
TENANT_NAME = re.compile(rf"^[a-z0-9]([a-z0-9-]{{0,{MAX_NAME - 2}}}[a-z0-9])?$")
BACKUP_NAME = re.compile(r"^finance-\d{8}T\d{6}Z\.dump$")
BACKUP_DIR = "/backups"
RESTORE_PATH = "/tmp/restore.dump"  # an emptyDir of the postgres pod  # noqa: S108
POSTGRES_POD = "postgres-0"
WAIT = "300s"  # for kubectl wait and rollout status


class Failed(Exception):
    """A step against the cluster failed; the message says which."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="restore-tenant", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", metavar="NAME", help="the tenant (its namespace is finance-NAME)")
    parser.add_argument("backup", metavar="BACKUP_FILE", nargs="?", help="a dump name from --list, or a local file")
    parser.add_argument("--list", action="store_true", help="list the tenant's backups, newest first, and exit")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--local", action="store_true", help="a tenant of `make run`, from its pgBackRest archive")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--to-time", type=instant, metavar="TIME",
                        help="restore to this instant, ISO 8601 with its offset (2026-11-30T10:15:00Z); with --local")
    target.add_argument("--latest", action="store_true", help="restore to the newest archived change; with --local")
    target.add_argument("--drill", action="store_true",
                        help="restore into a scratch cluster and check it; with --local")
    args = parser.parse_args(argv)
    point_in_time = args.to_time is not None or args.latest or args.drill
    if point_in_time and not args.local:
        parser.error(
            "--to-time, --latest and --drill work on the pgBackRest archive of a tenant of `make run` (--local);"
            " in Kubernetes restore-tenant restores a pg_dump backup"
        )
    if args.local and (args.backup or (args.list and point_in_time) or not (args.list or point_in_time)):
        parser.error("--local takes exactly one of --list, --to-time, --latest, --drill, and no BACKUP_FILE")
    if not TENANT_NAME.match(args.name):
        parser.error(
            f"invalid tenant name {args.name!r}: lowercase letters, digits and '-', "
            f"at most {MAX_NAME} characters, starting and ending with a letter or digit"
        )
    if args.list and args.backup:
        parser.error("--list takes no BACKUP_FILE")
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


def kubectl(*args: str, stdin=None, input: str | None = None) -> str:  # noqa: A002 - subprocess's name
    """Run kubectl; return its output, or raise Failed with its last error line."""
    result = subprocess.run(["kubectl", *args], stdin=stdin, input=input, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or "").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {result.returncode}"
        raise Failed(f"kubectl {' '.join(args[:4])} failed: {detail}")
    return result.stdout or ""


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
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": 70, "runAsGroup": 70,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "reader",
                "image": image,
                "command": ["sleep", "3600"],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "200m", "memory": "64Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                },
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
        image = kubectl(
            "-n", self.namespace, "get", "statefulset", "postgres",
            "-o", "jsonpath={.spec.template.spec.containers[0].image}",
        ).strip()
        manifest = json.dumps(reader_pod_manifest(self.name, image))
        kubectl("-n", self.namespace, "apply", "-f", "-", input=manifest)
        try:
            kubectl("-n", self.namespace, "wait", "--for=condition=Ready", f"pod/{self.name}", f"--timeout={WAIT}")
        except Failed as exc:
            self.__exit__()
            raise Failed(f"{exc} (is a backup job holding the volume on another node?)") from None
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(
            ["kubectl", "-n", self.namespace, "delete", "pod", self.name, "--wait=false", "--ignore-not-found"],
            capture_output=True, check=False,
        )

    def backups(self) -> list[str]:
        """Dump names in the volume, newest first."""
        listing = kubectl("-n", self.namespace, "exec", self.name, "--", "ls", "-1", BACKUP_DIR)
        return sorted((line for line in listing.split() if BACKUP_NAME.match(line)), reverse=True)

    def copy_to_postgres(self, backup: str) -> None:
        """Stream a dump from the volume into the postgres pod, without a local copy."""
        source = subprocess.Popen(
            ["kubectl", "-n", self.namespace, "exec", self.name, "--", "cat", f"{BACKUP_DIR}/{backup}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            upload(self.namespace, source.stdout)
        finally:
            source.stdout.close()
            if source.wait() != 0:
                raise Failed(f"reading {backup} failed: {source.stderr.read().decode().strip()}")


def upload(namespace: str, stream) -> None:
    kubectl(
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
    kubectl(
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
    namespace = NAMESPACE_PREFIX + args.name
    if not shutil.which("kubectl"):
        print("restore-tenant: kubectl not found on PATH (install it, select the cluster's context)", file=sys.stderr)
        return 1
    if not args.list and not args.yes and not sys.stdin.isatty():
        print("restore-tenant: no terminal to confirm on; pass --yes to restore anyway", file=sys.stderr)
        return 2
    try:
        kubectl("get", "namespace", namespace, "-o", "name")
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
            if args.list:
                print("\n".join(backups) if backups else f"{args.name}: no backups yet")
                return 0
            if not backups:
                raise Failed(f"no backups in {namespace}'s postgres-backups volume")
            backup = args.backup or backups[0]
            if backup not in backups:
                raise Failed(f"{backup} is not in {namespace}'s backups; see --list")
            if not args.yes and not confirm(args.name, f"namespace {namespace}", backup):
                print("restore-tenant: not confirmed; nothing changed", file=sys.stderr)
                return 1
            with_api_stopped(namespace, lambda: reader.copy_to_postgres(backup))
        print(f"{args.name}: restored from {backup}")
        return 0
    except Failed as exc:
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
        what = "drill failed" if args.drill else "restore failed; the database is as it was"
        print(f"restore-tenant: {what}: {detail}", file=sys.stderr)
        return 1


def _upload_file(namespace: str, path: Path) -> None:
    with path.open("rb") as stream:
        upload(namespace, stream)


def with_api_stopped(namespace: str, copy_dump) -> None:
    """Copy the dump in, stop the API, restore, and bring the API back even if the restore failed."""
    copy_dump()
    replicas = kubectl(
        "-n", namespace, "get", "deployment", "finance-api", "-o", "jsonpath={.spec.replicas}"
    ).strip() or "2"
    # At 0 replicas the autoscaler leaves the Deployment alone until it is scaled back.
    kubectl("-n", namespace, "scale", "deployment", "finance-api", "--replicas=0")
    try:
        wait_until_api_stopped(namespace)
        restore(namespace)
    finally:
        kubectl("-n", namespace, "scale", "deployment", "finance-api", f"--replicas={replicas}")
    kubectl("-n", namespace, "rollout", "status", "deployment/finance-api", f"--timeout={WAIT}")


def wait_until_api_stopped(namespace: str, timeout: float = 300) -> None:
    """Wait until no API pod is left, so no connection holds a lock pg_restore needs."""
    deadline = time.monotonic() + timeout
    while kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=finance-api", "-o", "name").strip():
        if time.monotonic() > deadline:
            raise Failed(f"finance-api pods still running after {timeout:.0f} s")
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
