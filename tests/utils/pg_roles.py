"""The tenant's database roles in tests: kubernetes/base/postgres-init.sh run against the suite's
real PostgreSQL (as the image runs it, as the superuser), and what a role must never be able to do."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql

ROOT = Path(__file__).resolve().parent.parent.parent
INIT_SCRIPT = ROOT / "kubernetes" / "base" / "postgres-init.sh"
UPGRADE_SCRIPT = ROOT / "kubernetes" / "base" / "postgres-upgrade-roles.sh"

# What only a superuser (or a role granted pg_read_server_files, pg_write_server_files,
# pg_execute_server_program, CREATEROLE or CREATEDB) may do: each must be refused.
SUPERUSER_ONLY = {
    "run a program": "COPY (SELECT 1) TO PROGRAM 'id'",
    "feed a table from a program": "COPY schema_migrations FROM PROGRAM 'id'",
    "read a server file": "SELECT pg_read_file('/etc/passwd')",
    "read a server file as bytes": "SELECT pg_read_binary_file('/etc/passwd')",
    "copy a server file into a table": "COPY schema_migrations FROM '/etc/passwd'",
    "import a server file as a large object": "SELECT lo_import('/etc/passwd')",
    "list a server directory": "SELECT pg_ls_dir('/')",
    "write a server file": "COPY (SELECT 1) TO '/tmp/finance-role-test'",
    "create a role": "CREATE ROLE finance_intruder",
    "create a database": "CREATE DATABASE finance_intruder",
    "change the server's configuration": "ALTER SYSTEM SET log_statement = 'none'",
    "reload the server's configuration": "SELECT pg_reload_conf()",
}


def unique(prefix: str) -> str:
    """A role or database name no other test (nor another run on the same server) uses."""
    return f"{prefix}_{secrets.token_hex(4)}"


def attributes(conn: psycopg.Connection, role: str) -> dict:
    """The role's attributes and the roles it is a member of."""
    row = conn.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolinherit,"
        " ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
        "       WHERE m.member = r.oid ORDER BY 1)"
        " FROM pg_roles r WHERE rolname = %s",
        (role,),
    ).fetchone()
    assert row, f"role {role} does not exist"
    keys = ("login", "superuser", "createrole", "createdb", "replication", "bypassrls", "inherit", "member_of")
    return dict(zip(keys, row, strict=True))


def refused(conn: psycopg.Connection, superuser: str) -> dict[str, str]:
    """Run every SUPERUSER_ONLY statement (and SET ROLE to the superuser); return what was NOT refused."""
    allowed = {}
    for what, statement in {**SUPERUSER_ONLY, "become the superuser": f'SET ROLE "{superuser}"'}.items():
        try:
            conn.execute(statement)
        except errors.InsufficientPrivilege:
            continue
        except psycopg.Error as error:  # refused for another reason: the test must say which
            allowed[what] = f"{type(error).__name__}: {error}"
        else:
            allowed[what] = "succeeded"
    return allowed


def server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


def require_client(tool: str, env: dict[str, str], server_version: int) -> None:
    """Skip unless the client tool on env's PATH is as new as the server (pg_dump refuses older)."""
    result = subprocess.run([tool, "--version"], env=env, capture_output=True, text=True, check=False)
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", result.stdout)
    if result.returncode != 0 or not match:
        pytest.skip(f"{tool} is not installed")
    if int(match.group(1)) < server_version:
        pytest.skip(f"{tool} {match.group(1)} cannot work with a PostgreSQL {server_version} server")


@dataclass
class Tenant:
    """The names and passwords postgres-init.sh was given, and where the server listens."""

    app_user: str
    app_db: str
    backup_user: str
    app_password: str
    backup_password: str
    host: str
    port: int

    def connect(self, user: str | None = None, password: str | None = None, **kwargs) -> psycopg.Connection:
        """Connect over TCP with a password, as the app's role unless told otherwise."""
        return psycopg.connect(
            host=self.host, port=self.port, dbname=kwargs.pop("dbname", self.app_db), user=user or self.app_user,
            password=password or self.app_password, autocommit=True, connect_timeout=10, **kwargs,
        )

    def connect_backup(self) -> psycopg.Connection:
        return self.connect(self.backup_user, self.backup_password)

    @property
    def url(self) -> str:
        """The app's DATABASE_URL (the password percent-encoded)."""
        from urllib.parse import quote

        return f"postgresql://{self.app_user}:{quote(self.app_password, safe='')}@{self.host}:{self.port}/{self.app_db}"


def script_env(stack, directory: Path, tenant: Tenant, **extra: str) -> dict[str, str]:
    """The postgres container's environment for the scripts: names, password files, the superuser's libpq settings."""
    files = {}
    for key, value in (("APP_PASSWORD", tenant.app_password), ("BACKUP_PASSWORD", tenant.backup_password)):
        path = directory / key.lower()
        path.write_text(value)
        path.chmod(0o600)
        files[f"{key}_FILE"] = str(path)
    client = stack.cluster.client_env()
    return {
        **os.environ, **client, **files,
        "POSTGRES_USER": client["PGUSER"],
        "APP_USER": tenant.app_user, "APP_DB": tenant.app_db, "BACKUP_USER": tenant.backup_user,
        **extra,
    }


def new_tenant(stack, prefix: str) -> Tenant:
    """Unique names and passwords; the app's password holds quotes and a backslash, so a script that
    pastes it into SQL instead of quoting it fails."""
    return Tenant(
        app_user=unique(f"{prefix}_app"), app_db=unique(f"{prefix}_db"), backup_user=unique(f"{prefix}_backup"),
        app_password=f"it's \"{secrets.token_urlsafe(16)}\\'; --", backup_password=secrets.token_urlsafe(32),
        host=stack.cluster.host, port=stack.cluster.port,
    )


def run_init_script(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=60)


def drop(stack, tenant: Tenant, *more_databases: str, more_roles: tuple[str, ...] = ()) -> None:
    """Remove what a test created, so the server (CI's is shared by the whole run) stays clean."""
    with stack.cluster.connect() as conn:
        for database in (tenant.app_db, *more_databases):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        for role in (tenant.app_user, tenant.backup_user, *more_roles):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
