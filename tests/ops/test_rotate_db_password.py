"""scripts/rotate-db-password, run as a command in a copy of the repository.

No cluster: a stand-in kubectl (`KUBECTL`) records every call with its stdin and plays the tenant's
Secret. The SQL the script would run in postgres-0 is run against the suite's real PostgreSQL, to
prove that the password it put in the Secret is the one the role then logs in with.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.utils.pg_roles import drop, new_tenant, run_init_script, script_env
from tests.utils.terminal import answering

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEYS = (
    "JWT_SECRET", "POSTGRES_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "BACKUP_PASSWORD",
    "PGBACKREST_REPO1_CIPHER_PASS", "PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET",
)

# Records each call as a JSON line (its arguments and stdin) and plays the cluster's part:
# FAKE_SECRET_METADATA (the Secret's metadata), FAKE_SECRET_KEYS (its keys), FAKE_FAIL (a
# subcommand that fails).
FAKE_KUBECTL = """#!{python}
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "-i" in args or "--patch-file=/dev/stdin" in args else None
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
rest = [arg for arg in args if not arg.startswith("--context=")]
if rest[:1] == ["--namespace"]:
    rest = rest[2:]
if rest[0] == os.environ.get("FAKE_FAIL"):
    # As an error that quotes its input would: what the script sent must not reach its own message.
    sys.exit("error: the server could not be reached; input: " + " ".join((stdin or "").split()))
if rest == ["config", "current-context"]:
    print("kind-finance")
if rest[:3] == ["get", "secret", "finance-secrets"] and rest[3] == "--output=jsonpath={{.metadata}}":
    print(os.environ.get("FAKE_SECRET_METADATA", json.dumps({{"name": "finance-secrets"}})), end="")
if rest[:3] == ["get", "secret", "finance-secrets"] and rest[3].startswith("--output=go-template="):
    print("\\n".join(os.environ.get("FAKE_SECRET_KEYS", " ".join({keys})).split()))
"""
# A Secret the operator created (creationPolicy Owner, as the component sets), and one it merges
# its keys into without owning it (creationPolicy Merge).
EXTERNAL_SECRET_METADATA = {
    "owned": json.dumps({
        "name": "finance-secrets",
        "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                             "name": "finance-secrets", "controller": True}],
    }),
    "merged": json.dumps({
        "name": "finance-secrets", "annotations": {"reconcile.external-secrets.io/data-hash": "0f3a"},
    }),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """scripts/ and tenants/ with a deployed tenant, acme, beside the local-only demo tenants."""
    repo = tmp_path_factory.mktemp("rotate") / "repo"
    for folder in ("scripts", "tenants"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".venv").symlink_to(ROOT / ".venv")
    (repo / "tenants" / "acme").mkdir()
    (repo / "tenants" / "acme" / "tenant.env").write_text("TENANT_CURRENCY=EUR\n")
    (repo / "tenants" / "acme" / "local.env").write_text("LOCAL_PORT=8003\n")
    return repo


@pytest.fixture
def kubectl_env(tmp_path: Path) -> dict[str, str]:
    executable = tmp_path / "kubectl"
    executable.write_text(FAKE_KUBECTL.format(python=sys.executable, keys=SECRET_KEYS))
    executable.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("FAKE_")}
    return {**env, "KUBECTL": str(executable), "KUBECTL_LOG": str(tmp_path / "kubectl.log")}


def rotate(repo: Path, env: dict[str, str], *args: str, stdin=subprocess.DEVNULL, **fake: str):
    return subprocess.run(
        [str(repo / "scripts" / "rotate-db-password"), *args], env={**env, **fake},
        capture_output=True, text=True, timeout=60, stdin=stdin,
    )


def calls(env: dict[str, str]) -> list[dict]:
    log = Path(env["KUBECTL_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def steps(env: dict[str, str]) -> list[list[str]]:
    """Each call's arguments up to what runs in the pod, without the context and namespace, and
    without the reading of the current context (test_the_current_context_is_read_once_and_named_on_every_call)."""
    shown = []
    for call in calls(env):
        args = [arg for arg in call["args"] if not arg.startswith("--context=")]
        if args == ["config", "current-context"]:
            continue
        if args[:1] == ["--namespace"]:
            assert args[1] == "finance-acme"
            args = args[2:]
        shown.append(args[: args.index("--")] if "--" in args else args)
    return shown


def patched_password(env: dict[str, str], key: str) -> str:
    (patch,) = [call for call in calls(env) if "patch" in call["args"]]
    data = json.loads(patch["stdin"])["data"]
    assert set(data) == {key}
    return base64.b64decode(data[key]).decode()


def sql_run_in_postgres(env: dict[str, str]) -> str:
    (exec_call,) = [call for call in calls(env) if "exec" in call["args"]]
    args = exec_call["args"]
    assert args[args.index("--") + 1:][:1] == ["psql"] and "--username=postgres" in args
    return exec_call["stdin"]


def assert_never_shown(result: subprocess.CompletedProcess, env: dict[str, str], password: str) -> None:
    """The password, and its base64 form, on no command line and in no output; only in the patch's stdin."""
    encoded = base64.b64encode(password.encode()).decode()
    for secret in (password, encoded):
        assert secret not in result.stdout + result.stderr
        assert not any(secret in arg for call in calls(env) for arg in call["args"])
    assert password not in sql_run_in_postgres(env)


# --- the app role ---------------------------------------------------------------------------------


def test_app_role_secret_first_then_database_then_restart(repo, kubectl_env):
    result = rotate(repo, kubectl_env, "acme", "--yes")
    assert result.returncode == 0, result.stderr
    assert steps(kubectl_env) == [
        ["get", "secret", "finance-secrets", "--output=jsonpath={.metadata}"],
        ["get", "secret", "finance-secrets",
         '--output=go-template={{range $key, $value := .data}}{{$key}}{{"\\n"}}{{end}}'],
        ["patch", "secret", "finance-secrets", "--type=merge", "--patch-file=/dev/stdin"],
        ["exec", "-i", "postgres-0", "--container", "postgres"],
        ["rollout", "restart", "deployment/finance-api", "deployment/finance-webhooks"],
        ["rollout", "status", "deployment/finance-api", "--timeout=300s"],
        ["rollout", "status", "deployment/finance-webhooks", "--timeout=300s"],
    ]
    password = patched_password(kubectl_env, "POSTGRES_PASSWORD")
    # It goes into DATABASE_URL as it is.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", password)
    assert_never_shown(result, kubectl_env, password)
    assert 'ALTER ROLE "finance" PASSWORD \'SCRAM-SHA-256$' in sql_run_in_postgres(kubectl_env)
    assert "deployment/finance-webhooks: restarted and ready" in result.stdout


def test_each_run_sets_a_new_password(repo, kubectl_env, tmp_path):
    assert rotate(repo, kubectl_env, "acme", "--yes").returncode == 0
    first = patched_password(kubectl_env, "POSTGRES_PASSWORD")
    second_env = {**kubectl_env, "KUBECTL_LOG": str(tmp_path / "second.log")}
    assert rotate(repo, second_env, "acme", "--yes").returncode == 0
    assert patched_password(second_env, "POSTGRES_PASSWORD") != first


def test_the_database_takes_the_password_the_secret_got(repo, kubectl_env, stack, tmp_path):
    """The SQL sent to postgres-0, run by psql as the superuser against a real PostgreSQL: the role
    then logs in with the Secret's new password, and no longer with its old one."""
    tenant = new_tenant(stack, "rotate")
    try:
        assert run_init_script(script_env(stack, tmp_path, tenant)).returncode == 0
        assert rotate(repo, kubectl_env, "acme", "--yes").returncode == 0
        password = patched_password(kubectl_env, "POSTGRES_PASSWORD")
        sql = sql_run_in_postgres(kubectl_env).replace('ALTER ROLE "finance"', f'ALTER ROLE "{tenant.app_user}"')
        psql = subprocess.run(
            ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname=postgres"],
            input=sql, env={**os.environ, **stack.cluster.client_env()}, capture_output=True, text=True, check=False,
        )
        assert psql.returncode == 0, psql.stderr
        with tenant.connect(password=password) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (tenant.app_user,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            tenant.connect(password=tenant.app_password).close()
    finally:
        drop(stack, tenant)


# --- the other roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "name", "key"), [
    ("backup", "finance_backup", "BACKUP_PASSWORD"),
    ("superuser", "postgres", "POSTGRES_SUPERUSER_PASSWORD"),
])
def test_backup_and_superuser_roles_restart_nothing(repo, kubectl_env, role, name, key):
    result = rotate(repo, kubectl_env, "acme", "--role", role, "--yes")
    assert result.returncode == 0, result.stderr
    assert [step[0] for step in steps(kubectl_env)] == ["get", "get", "patch", "exec"]
    assert f'ALTER ROLE "{name}" PASSWORD \'SCRAM-SHA-256$' in sql_run_in_postgres(kubectl_env)
    assert_never_shown(result, kubectl_env, patched_password(kubectl_env, key))
    if role == "backup":
        assert "create job --from=cronjob/postgres-backup" in result.stdout


def test_context_is_given_to_every_call(repo, kubectl_env):
    assert rotate(repo, kubectl_env, "acme", "--context", "prod-eu", "--yes").returncode == 0
    assert calls(kubectl_env) and all(call["args"][0] == "--context=prod-eu" for call in calls(kubectl_env))


def test_the_current_context_is_read_once_and_named_on_every_call(repo, kubectl_env):
    """Without --context, the context is resolved first and every later call names it: a context
    switched in another terminal while the rollout runs cannot send the rest to another cluster."""
    result = rotate(repo, kubectl_env, "acme", "--yes")
    assert result.returncode == 0, result.stderr
    first, *rest = [call["args"] for call in calls(kubectl_env)]
    assert first == ["config", "current-context"]
    assert len(rest) == 7 and all(args[0] == "--context=kind-finance" for args in rest), rest


# --- refusals and failures ------------------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(EXTERNAL_SECRET_METADATA))
def test_a_secret_kept_by_an_external_secret_is_refused(repo, kubectl_env, how):
    result = rotate(repo, kubectl_env, "acme", "--yes", FAKE_SECRET_METADATA=EXTERNAL_SECRET_METADATA[how])
    assert result.returncode == 1
    assert "kept by an ExternalSecret" in result.stderr and "Rotating the database passwords" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert [step[0] for step in steps(kubectl_env)] == ["get"]


def test_a_secret_without_the_roles_key_is_refused(repo, kubectl_env):
    keys = " ".join(key for key in SECRET_KEYS if key != "BACKUP_PASSWORD")
    result = rotate(repo, kubectl_env, "acme", "--role", "backup", "--yes", FAKE_SECRET_KEYS=keys)
    assert result.returncode == 1 and "has no BACKUP_PASSWORD; nothing was changed" in result.stderr
    assert [step[0] for step in steps(kubectl_env)] == ["get", "get"]


@pytest.mark.parametrize(("args", "says"), [
    (("tenant1", "--yes"), "tenant1 is a local-only tenant"),
    (("zeta", "--yes"), "unknown tenant 'zeta'"),
    (("Acme", "--yes"), "invalid tenant name 'Acme'"),
    (("acme", "--role", "root", "--yes"), "argument --role: invalid choice: 'root'"),
    (("acme",), "not a terminal, so no one can confirm: pass --yes"),
    ((), "the following arguments are required: name"),
])
def test_bad_input_is_refused_before_any_call(repo, kubectl_env, args, says):
    result = rotate(repo, kubectl_env, *args)
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.splitlines()) == 1
    assert calls(kubectl_env) == []


def test_a_failed_database_step_says_what_it_left_and_restarts_nothing(repo, kubectl_env):
    result = rotate(repo, kubectl_env, "acme", "--yes", FAKE_FAIL="exec")
    assert result.returncode == 1
    assert "holds a password that PostgreSQL does not have yet" in result.stderr
    assert "run the script again" in result.stderr
    assert [step[0] for step in steps(kubectl_env)] == ["get", "get", "patch", "exec"]
    assert_never_shown(result, kubectl_env, patched_password(kubectl_env, "POSTGRES_PASSWORD"))
    verifier = re.search(r"PASSWORD '([^']+)'", sql_run_in_postgres(kubectl_env)).group(1)
    assert verifier not in result.stderr and "***" in result.stderr


def test_a_failed_patch_changes_nothing(repo, kubectl_env):
    result = rotate(repo, kubectl_env, "acme", "--yes", FAKE_FAIL="patch")
    assert result.returncode == 1 and "nothing was changed" in result.stderr
    assert [step[0] for step in steps(kubectl_env)] == ["get", "get", "patch"]
    password = patched_password(kubectl_env, "POSTGRES_PASSWORD")
    encoded = base64.b64encode(password.encode()).decode()
    assert password not in result.stderr and encoded not in result.stderr and "***" in result.stderr


def test_a_failed_restart_says_how_to_finish(repo, kubectl_env):
    result = rotate(repo, kubectl_env, "acme", "--yes", FAKE_FAIL="rollout")
    assert result.returncode == 1
    assert "rollout restart deployment/finance-api deployment/finance-webhooks" in result.stderr


@pytest.mark.parametrize(("answer", "code"), [("acme\n", 0), ("acm\n", 1), ("\n", 1)])
def test_on_a_terminal_it_names_the_context_and_wants_the_tenants_name(repo, kubectl_env, answer, code):
    result = answering(answer, lambda terminal: rotate(repo, kubectl_env, "acme", stdin=terminal))
    assert result.returncode == code, result.stderr
    assert "role finance of finance-acme (context kind-finance)" in result.stderr
    assert "Type the tenant's name (acme)" in result.stdout
    changed = [step[0] for step in steps(kubectl_env) if step[0] in ("patch", "exec", "rollout")]
    assert bool(changed) == (code == 0)
    if code:
        assert "not confirmed; nothing was changed" in result.stderr
