"""The database roles against the suite's real PostgreSQL: the app's role owns its database and can
do nothing a superuser could (read a server file, run a program, create a role or a database); the
backup role reads everything and writes nothing; kubernetes/base/postgres-init.sh creates exactly
these roles, and postgres-upgrade-roles.sh turns a tenant of the older layout (the app's role the
bootstrap superuser) into them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from tests.utils.pg_roles import (
    UPGRADE_SCRIPT,
    Tenant,
    attributes,
    drop,
    new_tenant,
    refused,
    require_client,
    run_init_script,
    script_env,
    server_major,
    unique,
)

ROOT = Path(__file__).resolve().parents[2]
NO_POWERS = {"superuser": False, "createrole": False, "createdb": False, "replication": False, "bypassrls": False}


def superuser_name(stack) -> str:
    return stack.cluster.client_env()["PGUSER"]


def migrate(url: str, tenant_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m service migrate` on url; with a tenant's environment (its TENANT_TIMEZONE), so
    that a shared tenant's totals are not re-keyed to UTC under the tests that follow."""
    env = {**os.environ, **(tenant_env or {}), "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def not_owned_by(conn: psycopg.Connection, role: str) -> list[str]:
    """Every relation, function and type of schema public, the schema and the database, that the
    role does not own (pg_database_owner, a new database's default owner of public, is the database's owner)."""
    return [row[0] for row in conn.execute(
        "SELECT 'relation ' || oid::regclass FROM pg_class"
        "  WHERE relnamespace = 'public'::regnamespace AND relowner <> %(role)s::regrole"
        " UNION ALL SELECT 'function ' || oid::regprocedure FROM pg_proc"
        "  WHERE pronamespace = 'public'::regnamespace AND proowner <> %(role)s::regrole"
        " UNION ALL SELECT 'type ' || oid::regtype FROM pg_type"
        "  WHERE typnamespace = 'public'::regnamespace AND typowner <> %(role)s::regrole"
        " UNION ALL SELECT 'schema public' FROM pg_namespace WHERE nspname = 'public'"
        "  AND nspowner NOT IN (%(role)s::regrole, 'pg_database_owner'::regrole)"
        " UNION ALL SELECT 'database' FROM pg_database"
        "  WHERE datname = current_database() AND datdba <> %(role)s::regrole",
        {"role": role},
    )]


# --- the app's role of every local tenant -----------------------------------------------------------


def test_the_apps_role_cannot_read_a_server_file_run_a_program_or_create_a_role(stack, tenant_envs):
    url = tenant_envs["tenant1"]["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        role = conn.execute("SELECT current_user").fetchone()[0]
        assert attributes(conn, role) | NO_POWERS == attributes(conn, role)
        assert attributes(conn, role)["member_of"] == []
        assert refused(conn, superuser_name(stack)) == {}


def test_the_apps_role_owns_its_schema_and_migrates_it(stack, tenant_envs):
    url = tenant_envs["tenant1"]["DATABASE_URL"]
    result = migrate(url, tenant_envs["tenant1"])
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        role = conn.execute("SELECT current_user").fetchone()[0]
        assert not_owned_by(conn, role) == []
        # What a future migration does: a table of its own, in one transaction.
        with conn.transaction(force_rollback=True):
            conn.execute("CREATE TABLE role_test_feature (id int)")
            conn.execute("ALTER TABLE users ADD COLUMN role_test text")


# --- postgres-init.sh ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def initialised(stack, tmp_path_factory) -> Iterator[tuple[Tenant, subprocess.CompletedProcess, dict]]:
    """A tenant made by postgres-init.sh as the image runs it, migrated by its app role, with data."""
    tenant = new_tenant(stack, "init")
    env = script_env(stack, tmp_path_factory.mktemp("init"), tenant)
    result = run_init_script(env)
    try:
        assert result.returncode == 0, result.stderr
        applied = migrate(tenant.url)
        assert applied.returncode == 0, applied.stderr
        with tenant.connect() as conn:
            for n in range(3):
                user_id = conn.execute(
                    "INSERT INTO users (username, password_hash) VALUES (%s, 'x') RETURNING id", (f"u{n}@example.com",)
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO transactions (user_id, type, amount, category) VALUES (%s, 'expense', 12.34, 'food')",
                    (user_id,),
                )
        yield tenant, result, env
    finally:
        drop(stack, tenant)


def test_init_script_creates_a_login_role_that_owns_the_database_and_nothing_more(stack, initialised):
    tenant, _, _ = initialised
    with stack.cluster.connect(tenant.app_db) as conn:
        assert attributes(conn, tenant.app_user) == {**NO_POWERS, "login": True, "inherit": True, "member_of": []}
        assert not_owned_by(conn, tenant.app_user) == []
        # No one else may connect (the superuser aside): PUBLIC's CONNECT is revoked.
        assert conn.execute("SELECT has_database_privilege('public', current_database(), 'CONNECT')").fetchone() == (
            False,
        )
        assert conn.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone() == (False,)


def test_init_scripts_app_role_cannot_read_a_server_file_run_a_program_or_create_a_role(stack, initialised):
    tenant, _, _ = initialised
    with tenant.connect() as conn:
        assert refused(conn, superuser_name(stack)) == {}


def test_init_scripts_backup_role_is_a_reader_and_nothing_else(stack, initialised):
    tenant, _, _ = initialised
    with stack.cluster.connect(tenant.app_db) as conn:
        assert attributes(conn, tenant.backup_user) == {
            **NO_POWERS, "login": True, "inherit": True, "member_of": ["pg_read_all_data"],
        }
    with tenant.connect_backup() as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)
        assert conn.execute("SELECT last_value FROM users_id_seq").fetchone() == (3,)
        for statement in (
            "INSERT INTO users (username, password_hash) VALUES ('intruder@example.com', 'x')",
            "UPDATE transactions SET amount = 1",
            "DELETE FROM users",
            "TRUNCATE users",
            "CREATE TABLE intruder (id int)",
            "CREATE TEMP TABLE intruder (id int)",
            "SELECT nextval('users_id_seq')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
        assert refused(conn, superuser_name(stack)) == {}


def test_no_other_tenants_role_may_connect(stack, tenant_envs, initialised):
    tenant, _, _ = initialised
    other = conninfo_to_dict(tenant_envs["tenant2"]["DATABASE_URL"])
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        tenant.connect(other["user"], other["password"]).close()


def test_init_script_prints_no_password_and_keeps_them_out_of_the_server_log(stack, initialised):
    tenant, result, _ = initialised
    output = result.stdout + result.stderr
    for password in (tenant.app_password, tenant.backup_password):
        assert password not in output
        log_file = getattr(stack.cluster, "log_file", None)
        if log_file is not None:  # the private cluster's log; a CI service container's is not ours to read
            assert password not in log_file.read_text(errors="replace")


def test_a_backup_by_the_backup_role_restores_whole_into_a_fresh_database(stack, initialised, tmp_path):
    tenant, _, env = initialised
    with tenant.connect() as conn:
        require_client("pg_dump", env, server_major(conn))
        expected = conn.execute(
            "SELECT (SELECT array_agg(username ORDER BY id) FROM users), (SELECT count(*) FROM transactions),"
            " (SELECT array_agg(version ORDER BY version) FROM schema_migrations)"
        ).fetchone()
    dump = tmp_path / "backup.dump"
    # As the CronJob runs it: PGUSER/PGPASSWORD of the backup role, the server over TCP.
    backup_env = {
        **env, "PGHOST": tenant.host, "PGPORT": str(tenant.port), "PGDATABASE": tenant.app_db,
        "PGUSER": tenant.backup_user, "PGPASSWORD": tenant.backup_password,
    }
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}"], env=backup_env, check=True, timeout=60)

    restored = unique("init_restored")
    with stack.cluster.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(restored), sql.Identifier(tenant.app_user)
        ))
    try:
        restore_env = {**backup_env, "PGUSER": tenant.app_user, "PGPASSWORD": tenant.app_password}
        subprocess.run(
            ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", f"--dbname={restored}", str(dump)],
            env=restore_env, check=True, timeout=60,
        )
        with tenant.connect(dbname=restored) as conn:
            assert conn.execute(
                "SELECT (SELECT array_agg(username ORDER BY id) FROM users), (SELECT count(*) FROM transactions),"
                " (SELECT array_agg(version ORDER BY version) FROM schema_migrations)"
            ).fetchone() == expected
            # The identity sequences came along: the next user does not collide.
            next_id = conn.execute(
                "INSERT INTO users (username, password_hash) VALUES ('next@example.com', 'x') RETURNING id"
            ).fetchone()[0]
            assert next_id == len(expected[0]) + 1
            assert not_owned_by(conn, tenant.app_user) == []
    finally:
        with stack.cluster.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored)))


def test_init_script_run_again_keeps_everything_and_sets_the_new_passwords(stack, tmp_path):
    tenant = new_tenant(stack, "rerun")
    try:
        assert run_init_script(script_env(stack, tmp_path, tenant)).returncode == 0
        migrated = migrate(tenant.url)
        assert migrated.returncode == 0, migrated.stderr
        old_password = tenant.app_password
        tenant.app_password = "a-new-app-password"
        again = run_init_script(script_env(stack, tmp_path, tenant))
        assert again.returncode == 0, again.stderr
        assert again.stdout == "" and "ERROR" not in again.stderr
        with tenant.connect() as conn:
            assert not_owned_by(conn, tenant.app_user) == []
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            tenant.connect(password=old_password).close()
    finally:
        drop(stack, tenant)


def test_init_script_needs_the_apps_password_and_makes_no_backup_role_without_one(stack, tmp_path):
    tenant = new_tenant(stack, "nopw")
    env = script_env(stack, tmp_path, tenant)
    try:
        missing = run_init_script({k: v for k, v in env.items() if k != "APP_PASSWORD_FILE"})
        assert missing.returncode == 2 and "APP_PASSWORD" in missing.stderr
        both = run_init_script({**env, "APP_PASSWORD": "x"})
        assert both.returncode == 2 and "both" in both.stderr
        without_backup = run_init_script({k: v for k, v in env.items() if k != "BACKUP_PASSWORD_FILE"})
        assert without_backup.returncode == 0, without_backup.stderr
        with stack.cluster.connect() as conn:
            assert not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (tenant.backup_user,)).fetchone()
    finally:
        drop(stack, tenant)


# --- postgres-upgrade-roles.sh ------------------------------------------------------------------------


@pytest.fixture
def legacy(stack, tmp_path) -> Iterator[tuple[Tenant, dict, str]]:
    """A tenant as the older manifests made it: the app's role a superuser that owns everything."""
    tenant = new_tenant(stack, "legacy")
    superuser = unique("legacy_su")
    with stack.cluster.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(tenant.app_user), sql.Literal(tenant.app_password)
        ))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(tenant.app_db), sql.Identifier(tenant.app_user)
        ))
    superuser_password = tmp_path / "superuser_password"
    superuser_password.write_text("the superuser's password")
    env = script_env(
        stack, tmp_path, tenant, POSTGRES_USER=superuser, POSTGRES_PASSWORD_FILE=str(superuser_password),
        INIT_SCRIPT=str(ROOT / "kubernetes" / "base" / "postgres-init.sh"),
    )
    try:
        migrated = migrate(tenant.url)
        assert migrated.returncode == 0, migrated.stderr
        with tenant.connect() as conn:
            conn.execute("INSERT INTO users (username, password_hash) VALUES ('before@example.com', 'x')")
        yield tenant, env, superuser
    finally:
        drop(stack, tenant, more_roles=(superuser, f"{superuser}_upgrade"))


def run_upgrade(env: dict) -> subprocess.CompletedProcess:
    # As the README runs it: the script on sh's standard input.
    return subprocess.run(
        ["sh", "-s"], stdin=UPGRADE_SCRIPT.open(), env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_upgrade_turns_the_superuser_app_role_into_an_owner_and_keeps_the_data(stack, legacy):
    tenant, env, superuser = legacy
    with stack.cluster.connect() as conn:
        (old_oid,) = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (tenant.app_user,)).fetchone()
    held = tenant.connect()  # a pooled connection of the app, still a superuser's
    try:
        result = run_upgrade(env)
        assert result.returncode == 0, result.stderr
        assert f"{tenant.app_user} is now {superuser}" in result.stdout
        assert "ended: 1" in result.stdout
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()
    for password in (tenant.app_password, tenant.backup_password, "the superuser's password"):
        assert password not in result.stdout + result.stderr

    with stack.cluster.connect(tenant.app_db) as conn:
        # The bootstrap role (PostgreSQL 16+ never demotes it) is renamed, not demoted.
        assert conn.execute("SELECT oid, rolsuper FROM pg_roles WHERE rolname = %s", (superuser,)).fetchone() == (
            old_oid, True,
        )
        assert attributes(conn, tenant.app_user) == {**NO_POWERS, "login": True, "inherit": True, "member_of": []}
        assert attributes(conn, tenant.backup_user)["member_of"] == ["pg_read_all_data"]
        assert not_owned_by(conn, tenant.app_user) == []
    with tenant.connect() as conn:
        assert refused(conn, superuser) == {}
        assert conn.execute("SELECT array_agg(username) FROM users").fetchone() == (["before@example.com"],)
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('after@example.com', 'x')")
    assert "none, schema is current" in migrate(tenant.url).stdout
    with tenant.connect(superuser, "the superuser's password", dbname="postgres") as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)


def test_upgrade_run_again_or_on_a_new_tenant_renames_nothing(stack, legacy):
    tenant, env, superuser = legacy
    assert run_upgrade(env).returncode == 0
    again = run_upgrade(env)
    assert again.returncode == 0, again.stderr
    assert "is now" not in again.stdout and "ended: 0" in again.stdout
    with stack.cluster.connect(tenant.app_db) as conn:
        assert attributes(conn, tenant.app_user)["superuser"] is False
        assert not_owned_by(conn, tenant.app_user) == []
