"""Give one of a tenant's database roles a new password, in its PostgreSQL and its Secret, in the cluster.

    scripts/rotate-db-password acme [--role app|backup|superuser] [--context CTX] [--yes]

The roles and the Secret keys that hold their passwords (kubernetes/base/postgres-init.sh):

    app        finance          POSTGRES_PASSWORD            the API, the webhook dispatcher, the
                                                             scheduler (DATABASE_URL is built from it)
    backup     finance_backup   BACKUP_PASSWORD              the nightly pg_dump CronJob
    superuser  postgres         POSTGRES_SUPERUSER_PASSWORD  no pod connects with it

The steps, in this order: a new URL-safe password is generated; the Secret finance-secrets gets
it (a running pod keeps the value it started with); PostgreSQL gets it, as a SCRAM verifier made
here (`ALTER ROLE` in postgres-0, on psql's stdin: the password itself never reaches the server,
a command line or a log); for the app role, finance-api and finance-webhooks are restarted at once
and waited for (their readiness probe connects with the new password). The CronJobs read the
Secret when they next start. Between `ALTER ROLE` and the end of the restart, the old pods keep the
connections their pools hold open but cannot open new ones: the restart follows at once, and a
rolling update replaces a pod only once its successor is ready. Should a step fail, run the
script again: it sets a fresh password in both places.

A Secret kept by the External Secrets Operator is refused: the secret manager holds the password,
and docs/operations.md ("Rotating the database passwords") gives the order to follow there.
Without --context, kubectl's current context is used, read once at the start and named on every
call, so that a context switched meanwhile (in another terminal) does not redirect the run. Asks
for the tenant's name as confirmation unless --yes; without a terminal, --yes is required. No
password is ever printed.
"""

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import sys
from dataclasses import dataclass

import tenancy
from tenancy import StepError, UsageError


@dataclass(frozen=True)
class Role:
    """A database role, the Secret key that holds its password, the Deployments that read it."""

    name: str
    key: str
    deployments: tuple[str, ...] = ()


ROLES = {
    "app": Role("finance", "POSTGRES_PASSWORD", ("finance-api", "finance-webhooks")),
    "backup": Role("finance_backup", "BACKUP_PASSWORD"),
    "superuser": Role("postgres", "POSTGRES_SUPERUSER_PASSWORD"),
}
# Where the roles live: the database pod and its container (kubernetes/base/postgres.yaml).
DATABASE_POD = "postgres-0"
DATABASE_CONTAINER = "postgres"
ROLLOUT_TIMEOUT = "300s"
# The password goes into DATABASE_URL unescaped: letters, digits, '-' and '_' only.
URL_SAFE = re.compile(r"[A-Za-z0-9_-]{43,}")
# The prefix of the labels and annotations the External Secrets Operator puts on a Secret it writes.
ESO_MARK = "reconcile.external-secrets.io/"
SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = tenancy.ArgumentParser(
        prog="rotate-db-password", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the tenant, as in tenants/NAME")
    parser.add_argument("--role", choices=sorted(ROLES), default="app", help="the role whose password changes (app)")
    parser.add_argument("--context", help="the kubeconfig context of the tenant's cluster (default: the current one)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser.parse_args(argv)


def check_tenant(name: str) -> str:
    """The tenant's name, if it has a folder and runs in a cluster; else UsageError."""
    tenancy.check_name(name)
    if not tenancy.tenant_dir(name).is_dir():
        raise UsageError(f"unknown tenant {name!r}: there is no tenants/{name}")
    if tenancy.read_tenant(name).local_only:
        raise UsageError(f"{name} is a local-only tenant (LOCAL_ONLY=true in tenants/{name}/local.env): "
                         "it has no cluster Secret to rotate")
    return name


def new_password() -> str:
    """A random password that can stand in DATABASE_URL as it is (256 bits)."""
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, 7677): given to ALTER ROLE,
    the server never sees the password itself, so no log or statement view can show it."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def alter_role_sql(role: Role, verifier: str) -> str:
    """psql's input: the role's new password, kept out of the server log even on an error."""
    if not re.fullmatch(r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", verifier):
        raise ValueError("not a SCRAM verifier")
    return (
        "SET log_statement = 'none';\n"
        "SET log_min_error_statement = 'panic';\n"
        f"ALTER ROLE \"{role.name}\" PASSWORD '{verifier}';\n"
    )


class Cluster:
    """kubectl in the tenant's namespace, in one context: the one given, else the current one,
    resolved once, so that the context the confirmation names is the one every call acts on."""

    def __init__(self, name: str, context: str | None):
        self.namespace = tenancy.namespace(name)
        self.context = context or tenancy.current_context()

    def run(self, *args: str, stdin: str | None = None) -> str:
        return tenancy.kubectl_output("--namespace", self.namespace, *args, stdin=stdin, context=self.context)


def check_secret(cluster: Cluster, role: Role) -> None:
    """The Secret exists, holds the role's key, and is ours to change (no ExternalSecret owns it)."""
    metadata = json.loads(cluster.run("get", "secret", tenancy.SECRET_NAME, "--output=jsonpath={.metadata}") or "{}")
    owners = [owner.get("kind") for owner in metadata.get("ownerReferences", [])]
    # The operator owns the Secrets it creates, and marks every Secret it writes (also those it
    # merges into without owning them) with its labels and annotations.
    marks = [*metadata.get("labels", {}), *metadata.get("annotations", {})]
    if "ExternalSecret" in owners or any(mark.startswith(ESO_MARK) for mark in marks):
        raise UsageError(
            f"{cluster.namespace}'s {tenancy.SECRET_NAME} is kept by an ExternalSecret: change {role.key} in the "
            "secret manager instead (docs/operations.md, Rotating the database passwords); nothing was changed"
        )
    keys = cluster.run(
        "get", "secret", tenancy.SECRET_NAME,
        "--output=go-template={{range $key, $value := .data}}{{$key}}{{\"\\n\"}}{{end}}",
    ).split()
    if role.key not in keys:
        raise StepError(f"{cluster.namespace}'s {tenancy.SECRET_NAME} has no {role.key}; nothing was changed")


def confirm(name: str, role: Role, context: str) -> bool:
    """Say what will change, where, and ask for the tenant's name."""
    restarts = f", then restart {' and '.join(role.deployments)}" if role.deployments else ""
    return tenancy.confirm(name, (
        f"This will give the role {role.name} of {tenancy.namespace(name)} (context {context}) a new password "
        f"in PostgreSQL and in {tenancy.SECRET_NAME} ({role.key}){restarts}."
    ))


def scrubbed(error: Exception, *secret_values: str) -> str:
    """The error's message with every secret value kubectl or psql might echo masked."""
    message = str(error)
    for value in secret_values:
        message = message.replace(value, "***")
    return message


class RotationError(Exception):
    """A step failed after the Secret changed: what that leaves behind, and how to mend it."""


def rotate(cluster: Cluster, role: Role) -> None:
    """Secret, then database, then the Deployments that read the password, each step after the last.

    The Secret first: should the database step fail, the running pods still hold the password the
    database has, and only a pod started meanwhile is refused until the script is run again.
    """
    password = new_password()
    if not URL_SAFE.fullmatch(password):
        raise RuntimeError("the generated password is not URL-safe")
    encoded = base64.b64encode(password.encode()).decode()
    verifier = scram_verifier(password)
    try:
        cluster.run("patch", "secret", tenancy.SECRET_NAME, "--type=merge", "--patch-file=/dev/stdin",
                    stdin=json.dumps({"data": {role.key: encoded}}))
    except StepError as error:
        raise StepError(scrubbed(error, password, encoded)) from None
    print(f"{tenancy.SECRET_NAME}: {role.key} changed")
    try:
        cluster.run(
            "exec", "-i", DATABASE_POD, "--container", DATABASE_CONTAINER, "--",
            "psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--username=postgres", "--dbname=postgres",
            stdin=alter_role_sql(role, verifier),
        )
    except StepError as error:
        raise RotationError(
            f"{scrubbed(error, password, verifier)}; {tenancy.SECRET_NAME} holds a password that PostgreSQL "
            f"does not have yet: a pod that starts now cannot connect as {role.name}; run the script again"
        ) from None
    print(f"PostgreSQL: role {role.name} has the new password")
    try:
        if role.deployments:
            cluster.run("rollout", "restart", *(f"deployment/{name}" for name in role.deployments))
        for name in role.deployments:
            cluster.run("rollout", "status", f"deployment/{name}", f"--timeout={ROLLOUT_TIMEOUT}")
            print(f"deployment/{name}: restarted and ready with the new password")
    except StepError as error:
        raise RotationError(
            f"{error}; PostgreSQL and {tenancy.SECRET_NAME} agree on the new password, but the old pods cannot open "
            f"new connections: restart them (kubectl -n {cluster.namespace} rollout restart "
            + " ".join(f"deployment/{name}" for name in role.deployments) + ")"
        ) from None


# What reads the password once the script is done, by role.
AFTERWARDS = {
    "app": "the scheduler CronJob reads POSTGRES_PASSWORD when it next starts",
    "backup": "the backup CronJob reads BACKUP_PASSWORD when it next starts; to prove it now: kubectl -n {namespace} "
              "create job --from=cronjob/postgres-backup backup-after-rotation",
    "superuser": "no pod connects as postgres; postgres-0's file of it follows the Secret by itself",
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    role = ROLES[args.role]
    try:
        name = check_tenant(args.name)
        if not args.yes and not sys.stdin.isatty():
            raise UsageError("not a terminal, so no one can confirm: pass --yes to rotate without asking")
    except UsageError as error:
        print(f"rotate-db-password: error: {error}", file=sys.stderr)
        return 2
    try:
        cluster = Cluster(name, args.context)
        check_secret(cluster, role)
        if not args.yes and not confirm(name, role, cluster.context):
            print("rotate-db-password: not confirmed; nothing was changed", file=sys.stderr)
            return 1
    except (UsageError, StepError) as error:
        print(f"rotate-db-password: {error}", file=sys.stderr)
        return 1
    try:
        rotate(cluster, role)
    except StepError as error:  # the Secret's patch: nothing changed
        print(f"rotate-db-password: {error}; nothing was changed", file=sys.stderr)
        return 1
    except RotationError as error:
        print(f"rotate-db-password: {error}", file=sys.stderr)
        return 1
    print(AFTERWARDS[args.role].format(namespace=cluster.namespace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
