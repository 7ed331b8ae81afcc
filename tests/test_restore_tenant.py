"""scripts/restore-tenant: its arguments, checked before it touches a cluster (none runs here), and
its in-pod restore step, run against the test suite's real PostgreSQL."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.utils.pg_roles import drop, new_tenant, require_client, run_init_script, script_env, server_major

ROOT = Path(__file__).resolve().parent.parent
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
