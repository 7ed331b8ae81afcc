"""scripts/restore-tenant: its arguments, checked before it touches a cluster (none runs here); its
pg_dump restore step, run against the test suite's real PostgreSQL; its point-in-time restore in
Kubernetes, step by step against a fake kubectl that records every call; and restore_pgdata.sh,
the restore Job's script, with the real pgBackRest on a cluster of its own."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes_validate
import localstack
import psycopg
import pytest
import yaml

from tests.utils.pg_roles import drop, new_tenant, require_client, run_init_script, script_env, server_major
from tests.utils.private_tenant import PrivateTenant, private_tenant

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "restore_tenant.py"


def restore_tenant(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path if path is not None else os.environ["PATH"]}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, check=False, timeout=30,
    )


@pytest.fixture
def recording_kubectl(tmp_path) -> tuple[str, Path]:
    """A PATH whose kubectl only records that it was called."""
    calls = tmp_path / "kubectl-calls"
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexit 1\n')
    kubectl.chmod(0o755)
    return str(kubectl.parent), calls


def test_help_describes_the_usage():
    result = restore_tenant("--help")
    assert result.returncode == 0
    assert "NAME [BACKUP_FILE]" in result.stdout and "--list" in result.stdout and "pg_restore" in result.stdout


def test_name_is_required():
    result = restore_tenant()
    assert result.returncode == 2 and "NAME" in result.stderr


@pytest.mark.parametrize("name", ["Tenant1", "acme-", "ac_me", "acme.corp", "a" * 56, ""])
def test_bad_tenant_name_is_refused(name, recording_kubectl):
    path, calls = recording_kubectl
    result = restore_tenant(name, path=path)
    assert result.returncode == 2 and "invalid tenant name" in result.stderr
    assert not calls.exists()


@pytest.mark.parametrize(
    "backup", ["finance-latest.dump", "../finance-20260101T021700Z.dump", "/nonexistent/finance.dump", "x;rm -rf /"]
)
def test_backup_file_must_be_a_backup_name_or_a_local_file(backup, recording_kubectl):
    path, calls = recording_kubectl
    result = restore_tenant("acme", backup, "--yes", path=path)
    assert result.returncode == 2 and "BACKUP_FILE" in result.stderr
    assert not calls.exists()


def test_list_takes_no_backup_file():
    result = restore_tenant("acme", "finance-20260101T021700Z.dump", "--list")
    assert result.returncode == 2 and "--list" in result.stderr


@pytest.mark.parametrize("backup", ["finance-20260101T021700Z.dump", "local"])
def test_valid_arguments_need_kubectl(backup, tmp_path):
    if backup == "local":
        backup = str(tmp_path / "saved.dump")
        Path(backup).write_bytes(b"PGDMP")
    result = restore_tenant("acme", backup, "--yes", path=str(tmp_path))
    assert result.returncode == 1
    assert "kubectl not found" in result.stderr


def test_without_a_terminal_it_wants_yes_before_touching_the_cluster(recording_kubectl):
    path, calls = recording_kubectl
    result = restore_tenant("acme", path=path)
    assert result.returncode == 2 and "--yes" in result.stderr
    assert not calls.exists()


# --- the restore step, as the postgres container runs it -------------------------------------------


def load_script():
    loader = importlib.machinery.SourceFileLoader("restore_tenant", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    sys.modules[loader.name] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


@pytest.fixture
def tenant_database(stack, tmp_path):
    """A database made by postgres-init.sh and migrated by its app role, with one user, a dump of it
    made as the backup job makes it (the backup role), and the env the postgres pod would have."""
    tenant = new_tenant(stack, "restore")
    pod_env = script_env(stack, tmp_path, tenant)
    assert run_init_script(pod_env).returncode == 0
    url = tenant.url
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('before@example.com', 'x')")
        require_client("pg_dump", pod_env, server_major(conn))
    dump = tmp_path / "backup.dump"
    # As the backup job makes it.
    dump_env = {
        **pod_env, "PGHOST": tenant.host, "PGPORT": str(tenant.port), "PGDATABASE": tenant.app_db,
        "PGUSER": tenant.backup_user, "PGPASSWORD": tenant.backup_password,
    }
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}"], env=dump_env, check=True)
    # What happened after the backup: a new user, and a later migration's table.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('after@example.com', 'y')")
        conn.execute("CREATE TABLE later_feature (id int)")
        conn.execute("INSERT INTO schema_migrations (version) VALUES ('9999_later_feature')")
    yield url, dump, pod_env
    drop(stack, tenant)


def run_restore_step(dump: Path, env: dict) -> subprocess.CompletedProcess:
    script = load_script().RESTORE_SCRIPT
    return subprocess.run(["sh", "-c", script, "restore", str(dump)], env=env, capture_output=True, text=True)


def database_state(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        users = [row[0] for row in conn.execute("SELECT username FROM users ORDER BY username")]
        later = conn.execute("SELECT to_regclass('later_feature')").fetchone()[0]
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    return users, later, versions


def test_restore_returns_the_database_exactly_to_the_backup(tenant_database):
    url, dump, env = tenant_database
    result = run_restore_step(dump, env)
    assert result.returncode == 0, result.stderr
    users, later, versions = database_state(url)
    assert users == ["before@example.com"]
    # Newer objects are gone too, so the migrate init container can re-apply later migrations.
    assert later is None and "9999_later_feature" not in versions
    assert not dump.exists(), "the uploaded dump is removed after the restore"


def test_restored_objects_belong_to_the_apps_role_which_migrates_them(tenant_database):
    url, dump, env = tenant_database
    assert run_restore_step(dump, env).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        foreign = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = 'public' AND nspowner <> current_user::regrole"
            " UNION ALL SELECT relname FROM pg_class"
            "  WHERE relnamespace = 'public'::regnamespace AND relowner <> current_user::regrole"
            " UNION ALL SELECT proname FROM pg_proc"
            "  WHERE pronamespace = 'public'::regnamespace AND proowner <> current_user::regrole"
        ).fetchall()
        assert foreign == []
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    migrated = subprocess.run(
        [sys.executable, "-m", "service", "migrate"], cwd=ROOT, env={**os.environ, "DATABASE_URL": url},
        capture_output=True, text=True, check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE next_feature (id int)")  # what a later migration does


def test_an_unreadable_dump_changes_nothing(tenant_database):
    url, dump, env = tenant_database
    before = database_state(url)
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    result = run_restore_step(dump, env)
    assert result.returncode != 0 and "unchanged" in result.stderr
    assert database_state(url) == before


# --- point-in-time restores in Kubernetes, against a fake kubectl ----------------------------------

# A kubectl that records every call (argv as JSON, one a line; a manifest given on stdin beside it)
# and answers as scripts/restore-tenant expects the cluster to, as told by scenario.json.
FAKE_KUBECTL = r'''
import json, sys
SYSTEM_ID = "7400000000000000001"  # the stanza's, in INFO
from pathlib import Path
here = Path(__file__).resolve().parent.parent
scenario = json.loads((here / "scenario.json").read_text())
argv = sys.argv[1:]
with (here / "calls").open("a") as calls:
    calls.write(json.dumps(argv) + "\n")
if argv[:1] == ["-n"]:
    argv = argv[2:]
line = " ".join(argv)

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)

if argv[0] == "apply":
    manifest = json.loads(sys.stdin.read())
    name = manifest["metadata"]["name"]
    (here / "manifests").mkdir(exist_ok=True)
    (here / "manifests" / f"{name}.json").write_text(json.dumps(manifest))
    print(f"job.batch/{name} created")
elif argv[:2] == ["get", "namespace"]:
    print(f"namespace/{argv[2]}")
elif argv[:2] == ["get", "statefulset"]:
    print(json.dumps(scenario["statefulset"]))
elif argv[:3] == ["get", "deployment", "finance-webhooks"]:  # --ignore-not-found: nothing when there is none
    print(scenario.get("webhooks_replicas", "1") or "")
elif argv[:2] == ["get", "deployment"]:
    print(scenario.get("api_replicas", "3"))
elif argv[:2] == ["get", "cronjob"]:  # --ignore-not-found: nothing when there is none
    print(json.dumps(scenario["scheduler"]) if scenario["scheduler"] is not None else "")
elif argv[:2] == ["get", "jobs,pods"]:
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": scenario["scheduler_objects"]}))
elif argv[:2] == ["get", "pods"]:
    print("")
elif argv[:2] == ["get", "pod"]:
    print(scenario.get("restarts", "0"))
elif argv[:2] == ["get", "job"]:
    name = argv[2]
    kind = "rollback" if "-rollback-" in name else "restore" if "-restore-" in name else "drill"
    print(scenario.get(f"{kind}_job", "Complete"))
elif argv[0] == "logs":
    print(f"log of {argv[1]}")
elif argv[0] == "exec":
    command = argv[argv.index("--") + 1:]
    if command[0] == "pgbackrest" and "info" in command:
        print(json.dumps(scenario["info"]))
    elif command[0] == "pgbackrest" and "check" in command:
        if scenario.get("check_fails"):
            fail("ERROR: [082]: WAL segment was not archived before the 60000ms timeout")
        if scenario.get("system_id", SYSTEM_ID) != SYSTEM_ID:
            fail("ERROR: [028]: backup and archive info files exist but do not match the database")
    elif command[:1] == ["sh"] and command[3:4] == ["restore"] and scenario.get("dump_restore_fails"):
        fail("restore failed; the database is unchanged")
    elif command[0] == "psql":
        sql = next(arg for arg in command if arg.startswith("--command="))[len("--command="):]
        if "pg_is_in_recovery" in sql:
            if not scenario.get("promoted", True):
                fail("error: unable to upgrade connection: container not found")
            print("f")
        elif "pg_control_system" in sql:
            print(scenario.get("system_id", SYSTEM_ID))
        elif "txid_current" in sql:
            print("1234")
        elif "pg_last_xact_replay_timestamp" in sql:
            print("2026-11-30 10:14:58.25+00")
        elif "query_to_xml" in sql:
            print("transactions|3\nusers|1")
        elif sql != "CHECKPOINT":
            fail(f"unexpected SQL {sql}")
elif argv[0] == "create" and scenario.get("create_fails"):
    fail("error: failed to create job: jobs.batch is forbidden")
elif argv[0] in ("scale", "wait", "rollout", "create", "delete", "patch"):
    pass
else:
    fail(f"fake kubectl: unexpected {line}")
'''


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


INFO = [{
    "name": "finance",
    "db": [{"id": 1, "repo-key": 1, "system-id": 7400000000000000001, "version": "17"}],
    "backup": [
        {"label": "20261129-011700F", "type": "full",
         "timestamp": {"start": epoch("2026-11-29T01:17:00Z"), "stop": epoch("2026-11-29T01:19:00Z")}},
        {"label": "20261129-011700F_20261130-011700D", "type": "diff",
         "timestamp": {"start": epoch("2026-11-30T01:17:00Z"), "stop": epoch("2026-11-30T01:18:00Z")}},
    ],
}]


def scheduler_object(kind: str, name: str, status: dict) -> dict:
    return {"kind": kind, "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "finance-scheduler"}},
            "status": status}


# What the scheduler's history keeps (successfulJobsHistoryLimit, failedJobsHistoryLimit): nothing running.
SCHEDULER_HISTORY = [
    scheduler_object("Job", "finance-scheduler-29400000", {"conditions": [{"type": "Complete", "status": "True"}]}),
    scheduler_object("Pod", "finance-scheduler-29400000-abcde", {"phase": "Succeeded"}),
    scheduler_object("Job", "finance-scheduler-29400015", {"conditions": [
        {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}),
    scheduler_object("Pod", "finance-scheduler-29400015-fghij", {"phase": "Failed"}),
]
SUSPEND = 'patch cronjob finance-scheduler --type=merge -p {"spec":{"suspend":true}}'
RESUME = 'patch cronjob finance-scheduler --type=merge -p {"spec":{"suspend":false}}'
SCHEDULER_WAIT = "get jobs,pods -l app.kubernetes.io/name=finance-scheduler -o json"
WEBHOOKS_DOWN = "scale deployment finance-webhooks --replicas=0"
WEBHOOKS_GONE = "get pods -l app.kubernetes.io/name=finance-webhooks"
WEBHOOKS_BACK = "scale deployment finance-webhooks --replicas=1"


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict]:
    """tenant1's manifests, rendered by the real kubectl."""
    output = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "tenants" / "tenant1")], capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in yaml.safe_load_all(output) if obj}


class FakeCluster:
    def __init__(self, directory: Path, statefulset: dict) -> None:
        self.directory = directory
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        kubectl = bin_dir / "kubectl"
        kubectl.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
        kubectl.chmod(0o755)
        self.path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        self.scenario = {
            "statefulset": statefulset, "info": INFO, "scheduler": {"spec": {"suspend": False}},
            "scheduler_objects": SCHEDULER_HISTORY,
        }

    def set_scenario(self, **scenario) -> None:
        (self.directory / "scenario.json").write_text(json.dumps({**self.scenario, **scenario}))

    def run(self, *args: str, **scenario) -> subprocess.CompletedProcess:
        self.set_scenario(**scenario)
        return restore_tenant(*args, path=self.path)

    @property
    def calls(self) -> list[str]:
        path = self.directory / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        return [" ".join(json.loads(line)) for line in lines]

    def manifests(self) -> dict[str, dict]:
        folder = self.directory / "manifests"
        """The Jobs applied, in order."""
        paths = sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime_ns) if folder.exists() else []
        return {path.stem: json.loads(path.read_text()) for path in paths}

    def index(self, fragment: str) -> int:
        """The position of the first call containing `fragment`."""
        return next(i for i, call in enumerate(self.calls) if fragment in call)

    def has(self, fragment: str) -> bool:
        return any(fragment in call for call in self.calls)


@pytest.fixture
def cluster(tmp_path, rendered) -> FakeCluster:
    return FakeCluster(tmp_path, rendered["StatefulSet", "postgres"])


def changed_anything(cluster: FakeCluster) -> bool:
    return any(cluster.has(word) for word in (" scale ", "apply ", " check", "create job", " patch "))


def test_list_prints_the_backups_newest_first_and_the_window(cluster):
    result = cluster.run("acme", "--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "acme: restore window 2026-11-29T01:19:00+00:00 to now"
    assert "20261129-011700F_20261130-011700D  diff" in lines[1] and "20261129-011700F  full" in lines[2]
    assert cluster.has("-n finance-acme exec postgres-0 -c postgres -- pgbackrest")
    assert not changed_anything(cluster)


@pytest.mark.parametrize("when", ["2026-11-29T01:18:59Z", "2099-01-01T00:00:00Z"])
def test_a_time_outside_the_window_is_refused_before_anything_changes(cluster, when):
    result = cluster.run("acme", "--to-time", when, "--yes")
    assert result.returncode == 1
    assert "outside the restore window: 2026-11-29T01:19:00+00:00 to" in result.stderr
    assert "nothing changed" in result.stderr
    assert not changed_anything(cluster)


def test_a_restore_without_a_backup_is_refused(cluster):
    result = cluster.run("acme", "--latest", "--yes", info=[{"name": "finance", "backup": []}])
    assert result.returncode == 1 and "no backup yet" in result.stderr and "nothing changed" in result.stderr
    assert not changed_anything(cluster)


def test_a_restore_stops_the_scheduler_and_the_api_then_postgres_swaps_and_serves_again(cluster):
    result = cluster.run("acme", "--to-time", "2026-11-30T10:15:00Z", "--yes")
    assert result.returncode == 0, result.stderr
    steps = [
        "get deployment finance-webhooks --ignore-not-found",  # the dispatcher's replicas, to restore
        "get cronjob finance-scheduler --ignore-not-found -o json",  # suspended by the operator?
        SUSPEND,
        SCHEDULER_WAIT,  # until no pass of it runs
        WEBHOOKS_DOWN,
        "scale deployment finance-api --replicas=0",
        "get pods -l app.kubernetes.io/name=finance-api",  # waits until no API pod is left
        WEBHOOKS_GONE,  # nor a dispatcher's
        "--command=SELECT txid_current()",  # a commit after the target, then everything archived
        "pgbackrest --pg1-socket-path=/var/run/postgresql check",
        "scale statefulset postgres --replicas=0",
        "wait --for=delete pod/postgres-0",
        "apply -f -",  # the restore Job
        "scale statefulset postgres --replicas=1",
        "--command=SELECT pg_is_in_recovery()",
        "--command=CHECKPOINT",
        "restore_pgdata.sh commit",
        "scale deployment finance-api --replicas=3",
        WEBHOOKS_BACK,
        RESUME,
        "--from=cronjob/postgres-backup-full",
        "rollout status deployment/finance-api",
    ]
    positions = [cluster.index(step) for step in steps]
    assert positions == sorted(positions), cluster.calls
    (job,) = cluster.manifests().values()
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    # The newest backup that ended before the instant, and the instant as PostgreSQL reads it.
    assert command[4:] == [
        "restore", "--type=time", "--target=2026-11-30 10:15:00+00:00", "--target-action=promote",
        "--set=20261129-011700F_20261130-011700D",
    ]
    assert command[2] == (ROOT / "scripts" / "restore_pgdata.sh").read_text()
    assert result.stdout.splitlines()[:-1] == [
        "acme: restored from backup 20261129-011700F_20261130-011700D (diff, ended 2026-11-30T01:18:00+00:00)",
        "  asked for: 2026-11-30T10:15:00+00:00",
        "  reached: the last change replayed committed at 2026-11-30 10:14:58.25+00",
        "  transactions: 3 rows",
        "  users: 1 rows",
    ]
    assert result.stdout.splitlines()[-1].startswith("  full backup: started, job postgres-backup-full-manual-")


def test_latest_replays_the_whole_archive_from_the_newest_backup(cluster):
    result = cluster.run("acme", "--latest", "--yes")
    assert result.returncode == 0, result.stderr
    (job,) = cluster.manifests().values()
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[4:] == ["restore", "--set=20261129-011700F_20261130-011700D"]
    assert "asked for: the end of the archive" in result.stdout


def assert_rolled_back(cluster: FakeCluster, result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 1
    assert "restore failed" in result.stderr and "the database is as it was" in result.stderr
    restore, rollback = cluster.manifests()
    assert "-restore-" in restore and "-rollback-" in rollback
    rollback_job = cluster.manifests()[rollback]
    assert rollback_job["spec"]["template"]["spec"]["containers"][0]["command"][4:] == ["rollback"]
    calls = cluster.calls
    last_stop = max(i for i, call in enumerate(calls) if "scale statefulset postgres --replicas=0" in call)
    rollback_applied = [i for i, call in enumerate(calls) if call.endswith("apply -f -")][1]
    started = max(i for i, call in enumerate(calls) if "scale statefulset postgres --replicas=1" in call)
    api_back = cluster.index("scale deployment finance-api --replicas=3")
    assert last_stop < rollback_applied < started < api_back < cluster.index(RESUME), calls
    assert cluster.index(SUSPEND) < cluster.index("scale deployment finance-api --replicas=0")
    assert cluster.has("rollout status statefulset/postgres")
    assert not cluster.has("--command=CHECKPOINT") and not cluster.has("restore_pgdata.sh commit")
    assert not cluster.has("cronjob/postgres-backup-full")
    # The restore Job (its pod may still run when its wait gave up) is gone before the rollback's.
    assert cluster.index(f"delete job {restore} ") < rollback_applied, calls
    assert "--wait=true" in calls[cluster.index(f"delete job {restore} ")]


def test_a_failed_restore_job_puts_the_old_data_back_and_everything_up_again(cluster):
    result = cluster.run("acme", "--to-time", "2026-11-30T10:15:00Z", "--yes", restore_job="Failed")
    assert_rolled_back(cluster, result)
    assert "log of " in result.stderr  # the Jobs' logs, for the operator


def test_a_restored_server_that_stops_during_recovery_is_rolled_back(cluster):
    result = cluster.run("acme", "--latest", "--yes", promoted=False, restarts="1")
    assert_rolled_back(cluster, result)
    assert "stopped during recovery" in result.stderr


def test_the_restore_job_is_deleted_and_waited_for_before_the_rollback_job(cluster):
    result = cluster.run("acme", "--latest", "--yes", restore_job="Failed")
    assert result.returncode == 1
    restore, _rollback = cluster.manifests()
    delete = cluster.index(f"delete job {restore} ")
    rollback_applied = [i for i, call in enumerate(cluster.calls) if call.endswith("apply -f -")][1]
    assert delete < rollback_applied and "--wait=true" in cluster.calls[delete], cluster.calls


@pytest.mark.parametrize("failure", [{"promoted": False, "restarts": "1"}, {"restore_job": "Failed"}])
def test_a_failed_rollback_leaves_postgres_and_the_api_stopped_and_says_what_is_on_the_volume(cluster, failure):
    result = cluster.run("acme", "--latest", "--yes", rollback_job="Failed", **failure)
    assert result.returncode == 1
    calls = cluster.calls
    rollback_applied = [i for i, call in enumerate(calls) if call.endswith("apply -f -")][1]
    # Nothing starts on the restored-but-unpromoted (or missing) data directory after the rollback
    # Job, and no API takes writes.
    assert not any("scale statefulset postgres --replicas=1" in call for call in calls[rollback_applied:]), calls
    assert not cluster.has("scale deployment finance-api --replicas=3"), calls
    # Nor the webhook dispatcher, nor the scheduler: stopped with the API, they stay so with it.
    assert cluster.has(WEBHOOKS_DOWN) and not cluster.has(WEBHOOKS_BACK), calls
    assert cluster.index(SUSPEND) < cluster.index("scale deployment finance-api --replicas=0")
    assert not cluster.has(RESUME), calls
    assert not cluster.has("cronjob/postgres-backup-full")
    stderr = result.stderr
    assert "putting the old data directory back failed too" in stderr
    assert "left at 0 replicas" in stderr
    pgdata = "/var/lib/postgresql/data/pgdata"
    for path in (f"{pgdata}:", f"{pgdata}.replaced:", f"{pgdata}.restoring:"):
        assert path in stderr
    assert f"mv {pgdata}.replaced {pgdata}" in stderr
    assert "kubectl -n finance-acme scale statefulset postgres --replicas=1" in stderr
    assert ("kubectl -n finance-acme scale deployment finance-api --replicas=3"
            " && kubectl -n finance-acme scale deployment finance-webhooks --replicas=1") in stderr
    assert "and the scheduler (CronJob finance-scheduler) suspended" in stderr
    resume = "  5. kubectl -n finance-acme " + RESUME.replace("-p ", "-p '") + "'"
    assert resume in stderr and stderr.index("  4. kubectl") < stderr.index(resume), stderr


def test_a_restore_starts_a_full_backup_on_the_new_timeline_without_waiting_for_it(cluster):
    result = cluster.run("acme", "--latest", "--yes")
    assert result.returncode == 0, result.stderr
    create = cluster.calls[cluster.index("create job postgres-backup-full-manual-")]
    name = create.split()[4]
    assert create.endswith("--from=cronjob/postgres-backup-full") and len(name) <= 52
    assert cluster.index("restore_pgdata.sh commit") < cluster.index("create job postgres-backup-full")
    assert not cluster.has(f"get job {name}") and not cluster.has(f"wait --for=condition=complete job/{name}")
    assert f"full backup: started, job {name} (kubectl -n finance-acme logs -f job/{name})" in result.stdout


def test_a_full_backup_that_cannot_be_started_is_reported_but_the_restore_stands(cluster):
    result = cluster.run("acme", "--latest", "--yes", create_fails=True)
    assert result.returncode == 0, result.stderr
    assert "full backup: NOT started" in result.stdout
    assert "WARNING: starting a full backup failed" in result.stderr
    assert "--from=cronjob/postgres-backup-full" in result.stderr


@pytest.mark.parametrize("target", [["--latest"], ["--to-time", "2026-11-30T10:15:00Z"]])
def test_a_database_that_is_not_the_archives_is_replaced_without_archiving_it_first(cluster, target):
    # A lost volume re-initialised by the image, or a new cluster: pgbackrest check would refuse.
    result = cluster.run("acme", *target, "--yes", system_id="7499999999999999999")
    assert result.returncode == 0, result.stderr
    assert "is not the one its pgBackRest repository archives" in result.stderr
    assert "replaces it with the archive's state" in result.stderr
    assert cluster.has("--command=SELECT system_identifier FROM pg_control_system()")
    assert not cluster.has("pgbackrest --pg1-socket-path=/var/run/postgresql check")
    assert not cluster.has("txid_current")
    (job,) = cluster.manifests().values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][4] == "restore"
    assert cluster.index("scale deployment finance-api --replicas=0") < cluster.index("apply -f -")


def test_a_database_that_is_the_archives_is_archived_first_without_a_warning(cluster):
    result = cluster.run("acme", "--latest", "--yes")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    assert cluster.index("pgbackrest --pg1-socket-path=/var/run/postgresql check") < cluster.index("apply -f -")


def test_when_archiving_the_last_changes_fails_postgres_is_left_alone(cluster):
    result = cluster.run("acme", "--latest", "--yes", check_fails=True)
    assert result.returncode == 1 and "nothing changed" in result.stderr
    assert not cluster.has("statefulset postgres --replicas") and not cluster.manifests()
    assert cluster.index("finance-api --replicas=0") < cluster.index("finance-api --replicas=3")


def test_without_a_terminal_a_point_in_time_restore_wants_yes(cluster):
    result = cluster.run("acme", "--latest")
    assert result.returncode == 2 and "--yes" in result.stderr
    assert not cluster.calls


# --- the scheduler: stopped and started with the API, by both Kubernetes restores ----------------


@pytest.fixture
def dump_file(tmp_path) -> Path:
    dump = tmp_path / "saved.dump"
    dump.write_bytes(b"PGDMP")
    return dump


@pytest.mark.parametrize("fails", [False, True])
def test_a_dump_restore_stops_the_scheduler_with_the_api_and_starts_it_again(cluster, dump_file, fails):
    result = cluster.run("acme", str(dump_file), "--yes", dump_restore_fails=fails)
    assert result.returncode == (1 if fails else 0), result.stderr
    steps = [
        "exec -i postgres-0 -c postgres",  # the dump copied in
        "get cronjob finance-scheduler --ignore-not-found -o json",
        SUSPEND,
        SCHEDULER_WAIT,
        WEBHOOKS_DOWN,
        "scale deployment finance-api --replicas=0",
        "get pods -l app.kubernetes.io/name=finance-api",
        WEBHOOKS_GONE,
        "restore /tmp/restore.dump",
        "scale deployment finance-api --replicas=3",
        WEBHOOKS_BACK,
        RESUME,
    ]
    positions = [cluster.index(step) for step in steps]
    assert positions == sorted(positions), cluster.calls
    assert [call for call in cluster.calls if " patch " in f" {call}"] == [f"-n finance-acme {SUSPEND}",
                                                                          f"-n finance-acme {RESUME}"]


@pytest.mark.parametrize("target", ["--latest", "dump"])
@pytest.mark.parametrize("webhooks", ["2", "0", None], ids=["two", "scaled-to-0", "absent"])
def test_a_restore_scales_the_webhook_dispatcher_back_to_what_it_was(cluster, dump_file, target, webhooks):
    result = cluster.run("acme", *dump_or_point_in_time(target, dump_file), "--yes", webhooks_replicas=webhooks)
    assert result.returncode == 0, result.stderr
    scaled = [call.removeprefix("-n finance-acme ") for call in cluster.calls
              if "scale deployment finance-webhooks" in call]
    back = f"scale deployment finance-webhooks --replicas={webhooks}"
    assert scaled == ([] if webhooks is None else [WEBHOOKS_DOWN, back])


def dump_or_point_in_time(target: str, dump: Path) -> list[str]:
    return [str(dump)] if target == "dump" else [target]


@pytest.mark.parametrize("target", ["--latest", "dump"])
@pytest.mark.parametrize("scheduler", [{"spec": {"suspend": True}}, None], ids=["suspended", "absent"])
def test_a_scheduler_suspended_before_the_restore_or_absent_is_left_so(cluster, dump_file, target, scheduler):
    result = cluster.run("acme", *dump_or_point_in_time(target, dump_file), "--yes", scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    assert not cluster.has(" patch "), cluster.calls
    assert cluster.has("scale deployment finance-api --replicas=3")
    if scheduler is not None:  # an operator's suspend stops no pass already started: it is waited for
        assert cluster.index(SCHEDULER_WAIT) < cluster.index("scale deployment finance-api --replicas=0")


def test_a_stranded_restore_of_an_already_suspended_scheduler_prints_no_step_to_resume_it(cluster):
    result = cluster.run("acme", "--latest", "--yes", restore_job="Failed", rollback_job="Failed",
                         scheduler={"spec": {"suspend": True}})
    assert result.returncode == 1
    assert not cluster.has(" patch ")
    assert '"suspend":false' not in result.stderr
    assert "no step 5: the CronJob finance-scheduler was suspended before the restore" in result.stderr


# A pass still running, as the scheduler's Jobs and pods show it, and what the error names.
RUNNING = {
    "between-attempts": (  # a failed attempt's pod, and the Job's next one not made yet (backoff)
        [scheduler_object("Job", "finance-scheduler-29400030", {"active": 0, "failed": 1}),
         scheduler_object("Pod", "finance-scheduler-29400030-klmno", {"phase": "Failed"})],
        "job/finance-scheduler-29400030",
    ),
    "terminating-pod": (  # past its deadline: the Job has failed, its pod still runs its grace period
        [scheduler_object("Job", "finance-scheduler-29400030", {"conditions": [{"type": "Failed", "status": "True"}]}),
         scheduler_object("Pod", "finance-scheduler-29400030-klmno", {"phase": "Running"})],
        "pod/finance-scheduler-29400030-klmno",
    ),
}


@pytest.mark.parametrize("running", RUNNING)
@pytest.mark.parametrize("target", ["--latest", "dump"])
@pytest.mark.parametrize("suspended", [False, True])
def test_a_scheduler_pass_that_does_not_end_in_time_stops_the_restore_before_anything_changes(
    cluster, dump_file, monkeypatch, capsys, running, target, suspended
):
    objects, shown = RUNNING[running]
    cluster.set_scenario(scheduler={"spec": {"suspend": suspended}}, scheduler_objects=SCHEDULER_HISTORY + objects)
    monkeypatch.setenv("PATH", cluster.path)
    script = load_script()
    monkeypatch.setattr(script, "SCHEDULER_WAIT_SECONDS", 0)
    assert script.main(["acme", *dump_or_point_in_time(target, dump_file), "--yes"]) == 1
    stderr = capsys.readouterr().err
    assert f"a pass of the scheduler still runs after 0 s ({shown});" in stderr
    assert "the restore did not start" in stderr
    # The CronJob as it was: resumed if the restore suspended it, untouched if it was suspended.
    patches = [call.removeprefix("-n finance-acme ") for call in cluster.calls if " patch " in f" {call}"]
    assert patches == ([] if suspended else [SUSPEND, RESUME]), cluster.calls
    assert not changed_anything_but_the_scheduler(cluster), cluster.calls
    assert not cluster.has("restore /tmp/restore.dump")


def changed_anything_but_the_scheduler(cluster: FakeCluster) -> bool:
    return any(cluster.has(word) for word in (" scale ", "apply ", " check", "create job", "txid_current"))


@pytest.mark.parametrize(("outcome", "code"), [("Complete", 0), ("Failed", 1)])
def test_drill_runs_a_job_of_the_cronjob_and_reports_its_log_and_verdict(cluster, outcome, code):
    result = cluster.run("acme", "--drill", drill_job=outcome)
    assert result.returncode == code
    create = cluster.calls[cluster.index("create job")]
    assert create.endswith("--from=cronjob/restore-drill")
    assert "log of job/restore-drill-manual-" in result.stdout
    assert ("drill passed" in result.stdout) if code == 0 else ("drill failed" in result.stderr)
    assert not cluster.has(" scale ") and not cluster.has(" patch ")


def test_the_restore_job_meets_the_schemas_and_the_restricted_profile(rendered):
    statefulset = rendered["StatefulSet", "postgres"]
    job = load_script().restore_job_manifest("postgres-restore-x", statefulset, "restore", ["--set=L"])
    kubernetes_validate.validate(job, "1.32.0", strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}} in pod["volumes"]
    # The postgres container's image, pgBackRest settings and Secret keys.
    postgres = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == postgres["image"] and container["envFrom"] == postgres["envFrom"]
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert keys == {"PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET", "PGBACKREST_REPO1_CIPHER_PASS"}
    assert {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"} in container["env"]
    # Its pods may reach the object store: the NetworkPolicy object-store selects them.
    (selector,) = rendered["NetworkPolicy", "object-store"]["spec"]["podSelector"]["matchExpressions"]
    assert selector["key"] == "app.kubernetes.io/name"
    assert pod_labels(job)["app.kubernetes.io/name"] in selector["values"]


def pod_labels(job: dict) -> dict:
    return job["spec"]["template"]["metadata"]["labels"]


def test_the_restore_script_passes_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: run scripts/install (as root) or apt-get install it"
    result = subprocess.run(
        ["shellcheck", "--shell=sh", str(ROOT / "scripts" / "restore_pgdata.sh")], capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


# --- restore_pgdata.sh, as the Job runs it, against a real cluster and the real pgBackRest ----------

PGDATA_SCRIPT = ROOT / "scripts" / "restore_pgdata.sh"


@dataclass
class Archived:
    tenant: PrivateTenant
    env: dict[str, str]  # the pod's: PGDATA and pgBackRest's settings
    backup: str
    moment: datetime  # between the writes "before" and "after"

    @property
    def cluster(self) -> localstack.Cluster:
        return self.tenant.stack.cluster

    def usernames(self) -> list[str]:
        with self.tenant.connect() as conn:
            return [row[0] for row in conn.execute("SELECT username FROM users ORDER BY id")]

    def run(self, mode: str, *options: str) -> subprocess.CompletedProcess:
        """The script as the restore Job runs it (sh -c, its text), as the data's owner."""
        command = ["sh", "-c", PGDATA_SCRIPT.read_text(), "restore_pgdata.sh", mode, *options]
        if localstack.IS_ROOT:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120, cwd="/")

    def sibling(self, suffix: str) -> Path:
        return self.cluster.data_dir.with_name(self.cluster.data_dir.name + suffix)


@pytest.fixture(scope="module")
def archived(tmp_path_factory) -> Iterator[Archived]:
    """A private cluster archiving with pgBackRest, a full backup, writes before and after a noted
    moment, all archived; the server's environment names the repository as the pod's does."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed: run scripts/install")
    directory = tmp_path_factory.mktemp("restore-pgdata")
    with private_tenant(directory / "stack", "pgdata", archived=True) as tenant, pytest.MonkeyPatch.context() as patch:
        archive = tenant.archive
        cluster = tenant.stack.cluster
        # pgBackRest's settings in the environment, as the pod's; the restored server's
        # restore_command inherits them.
        settings = {"PGBACKREST_CONFIG": str(archive.config), "PGBACKREST_STANZA": archive.stanza}
        for key, value in settings.items():
            patch.setenv(key, value)
        archive.run("backup", "--type=full")
        (backup,) = [b.label for b in archive.backups()]
        with tenant.connect() as conn:
            conn.execute("INSERT INTO users (username, password_hash) VALUES ('before', 'x')")
            moment = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            time.sleep(0.2)
            conn.execute("INSERT INTO users (username, password_hash) VALUES ('after', 'x')")
        archive.run("check")  # everything archived
        env = {
            "PATH": f"{cluster.bin_dir}{os.pathsep}{os.environ['PATH']}", "LANG": "C.UTF-8",
            "PGDATA": str(cluster.data_dir), "PGBACKREST_PG1_PATH": str(cluster.data_dir), **settings,
        }
        yield Archived(tenant, env, backup, moment)


def test_a_failed_pgbackrest_restore_leaves_the_data_directory_alone(archived):
    archived.cluster.stop()
    result = archived.run("restore", "--set=20000101-000000F")
    assert result.returncode == 1 and "is unchanged" in result.stderr
    assert not archived.sibling(".restoring").exists() and not archived.sibling(".replaced").exists()
    archived.cluster.start()
    assert archived.usernames() == ["before", "after"]


def test_a_restored_server_that_cannot_reach_its_target_is_rolled_back(archived):
    archived.cluster.stop()
    beyond = datetime.now(UTC) + timedelta(hours=1)  # later than anything archived
    result = archived.run(
        "restore", "--type=time", f"--target={beyond.isoformat(sep=' ')}", "--target-action=promote",
        f"--set={archived.backup}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert archived.sibling(".replaced").is_dir() and not archived.sibling(".restoring").exists()
    # PostgreSQL replays the whole archive, misses the target and stops.
    with pytest.raises((subprocess.CalledProcessError, RuntimeError)):
        archived.cluster.start(restoring=True)  # as the pod starts, beside pgdata.replaced
        archived.cluster.wait_promoted(timeout=60)
    archived.cluster.stop("immediate", check=False)
    # A second restore over an unfinished one is refused.
    again = archived.run("restore", f"--set={archived.backup}")
    assert again.returncode == 1 and "did not finish" in again.stderr

    result = archived.run("rollback")
    assert result.returncode == 0, result.stderr
    assert "put the replaced data directory back" in result.stdout
    assert not archived.sibling(".replaced").exists()
    archived.cluster.start()
    assert archived.usernames() == ["before", "after"]


def test_a_restore_to_a_moment_swaps_in_exactly_the_writes_before_it(archived):
    archived.cluster.stop()
    result = archived.run(
        "restore", "--type=time", f"--target={archived.moment.isoformat(sep=' ')}", "--target-action=promote",
        f"--set={archived.backup}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The restore_command left for the server names the data directory, not the one restored into.
    recovery = (archived.cluster.data_dir / "postgresql.auto.conf").read_text()
    assert "restore_command" in recovery and ".restoring" not in recovery
    archived.cluster.start(restoring=True)  # as the pod starts, beside pgdata.replaced
    archived.cluster.wait_promoted(timeout=60)
    assert archived.usernames() == ["before"]

    result = archived.run("commit")
    assert result.returncode == 0, result.stderr
    assert not archived.sibling(".replaced").exists()
