"""pgBackRest as the Kubernetes manifests run it, proven with the real tool on a local cluster.

The settings come from a tenant's render: the `pgbackrest` sidecar's TLS server settings, the
backup CronJobs' client settings and commands, the restore drill's script and checks, and the
certificates scripts/onboard-tenant makes. Only what a machine without a cluster cannot have is
swapped: paths (certificates, data directory, socket), the address (127.0.0.1 and a free port, and
`localhost` as the server certificate's name instead of postgres-0.postgres) and the repository
(a filesystem one, unencrypted, instead of S3). A backup is taken through the TLS server, a client
of another CA is refused, and the drill restores the latest backup, passes, and fails once the
totals of the backed-up database are wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import localstack
import onboard_tenant
import psycopg
import pytest
import yaml

from tests.utils.private_tenant import PrivateTenant, private_tenant

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "kubernetes" / "base"
MIGRATIONS = ROOT / "service" / "migrations"
TENANT = "pgbrtls"
TLS_DIR_IN_POD = "/etc/pgbackrest/tls"
APP_MIGRATIONS_IN_IMAGE = "/app/service/migrations"


# --- the manifests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def render() -> dict[tuple[str, str], dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (1.32 or newer)", pytrace=False)
    output = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "tenants" / "tenant1")], capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in yaml.safe_load_all(output) if obj}


def container(render: dict, kind: str, name: str, container_name: str) -> dict:
    spec = render[kind, name]["spec"]
    pod = spec["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" else spec["template"]["spec"]
    return next(c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == container_name)


def plain_env(container: dict) -> dict[str, str]:
    """The container's variables with a literal value (the Secret's are the test's to give)."""
    return {variable["name"]: variable["value"] for variable in container.get("env", []) if "value" in variable}


def settings(render: dict) -> dict[str, str]:
    (config_map,) = [obj for (kind, name), obj in render.items()
                     if kind == "ConfigMap" and name.startswith("pgbackrest-settings-")]
    return config_map["data"]


# --- the local stand-ins ---------------------------------------------------------------------------


@dataclass
class Setup:
    tenant: PrivateTenant
    work: Path
    repository: Path
    stanza: str

    @property
    def cluster(self) -> localstack.Cluster:
        return self.tenant.stack.cluster

    def local_env(self, render: dict) -> dict[str, str]:
        """As common_env, for pgBackRest run beside the cluster (no TLS server between)."""
        return self.common_env(render) | {
            "PGBACKREST_PG1_PATH": str(self.cluster.data_dir),
            "PGBACKREST_PG1_SOCKET_PATH": str(self.cluster.socket_dir),
            "PGBACKREST_PG1_PORT": str(self.cluster.port),
            "PGBACKREST_START_FAST": "y",
        }

    def common_env(self, render: dict) -> dict[str, str]:
        """pgBackRest's repository settings of the manifests, with the local repository for S3's."""
        config = self.work / "empty.conf"
        config.write_text("")
        # Everything but S3 and the cipher: the stanza, the retention.
        swapped = ("PGBACKREST_REPO1_S3_", "PGBACKREST_REPO1_CIPHER_", "PGBACKREST_REPO1_PATH", "PGBACKREST_REPO1_TYPE")
        repository = {key: value for key, value in settings(render).items() if not key.startswith(swapped)}
        return {
            "PATH": f"{self.cluster.bin_dir}:{os.environ['PATH']}",
            "LANG": "C.UTF-8",
            **repository,
            # The manifests' stanza is the local archive's.
            "PGBACKREST_STANZA": self.stanza,
            "PGBACKREST_REPO1_TYPE": "posix",
            "PGBACKREST_REPO1_PATH": str(self.repository),
            # What the image's ENV sets (postgres/Dockerfile), and no config file of this machine's.
            "PGBACKREST_CONFIG": str(config),
            "PGBACKREST_LOG_LEVEL_FILE": "off",
            "PGBACKREST_LOG_LEVEL_CONSOLE": "info",
            "PGBACKREST_LOCK_PATH": str(self.work / "lock"),
        }


def as_db_owner(command: list[str]) -> list[str]:
    # runuser keeps the environment it is given (but HOME, SHELL, USER and LOGNAME).
    return ["runuser", "-u", "postgres", "--", *command] if localstack.IS_ROOT else command


def give_to_db_owner(*paths: Path) -> None:
    if localstack.IS_ROOT:
        for path in paths:
            shutil.chown(path, "postgres", "postgres")


def write_tls(directory: Path, files: dict[str, str]) -> None:
    """As Kubernetes mounts the Secret: owned by root, readable by the postgres group only (0440);
    without root, owned by the user running pgBackRest, readable by it only."""
    directory.mkdir(parents=True)
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        if localstack.IS_ROOT:
            shutil.chown(path, "root", "postgres")
            path.chmod(0o440)
        else:
            path.chmod(0o600)
    if localstack.IS_ROOT:
        shutil.chown(directory, "root", "postgres")
        directory.chmod(0o750)


def in_files(env: dict[str, str], files: Path) -> dict[str, str]:
    """The certificate paths of the pod's mount replaced by the local copies."""
    return {key: value.replace(TLS_DIR_IN_POD, str(files)) for key, value in env.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    """A private cluster archiving into a filesystem repository (the stanza created), a migrated
    tenant with transactions of two users."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed: run scripts/install")
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: scripts/onboard-tenant makes pgBackRest's certificates with it")
    directory = tmp_path_factory.mktemp("pgbackrest-tls")
    with private_tenant(directory / "stack", TENANT, archived=True) as tenant:
        archive = tenant.archive
        work = Path(localstack.cluster_directory(directory / "work"))
        work.mkdir(parents=True, exist_ok=True)
        (work / "lock").mkdir(exist_ok=True)
        give_to_db_owner(work, work / "lock")
        repository = next(Path(line.split("=", 1)[1]) for line in archive.config.read_text().splitlines()
                          if line.startswith("repo1-path="))
        with tenant.connect() as conn:
            for user in ("ada", "grace"):
                (user_id,) = conn.execute(
                    "INSERT INTO users (username, password_hash) VALUES (%s, 'x') RETURNING id", (user,)
                ).fetchone()
                conn.execute(
                    "INSERT INTO transactions (user_id, type, amount, category, occurred_at)"
                    " SELECT %s, CASE WHEN n %% 3 = 0 THEN 'income' ELSE 'expense' END, n * 1.25,"
                    " CASE WHEN n %% 4 = 0 THEN NULL ELSE 'c' || n %% 5 END,"
                    " timestamptz '2026-01-01 12:00Z' + n * interval '17 hours'"
                    " FROM generate_series(1, 200) AS n",
                    (user_id,),
                )
        try:
            yield Setup(tenant, work, repository, archive.stanza)
        finally:
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_server(setup: Setup, render: dict) -> Iterator[tuple[int, Path]]:
    """The sidecar's `pgbackrest server`, with its settings from the manifest and certificates made by
    onboard-tenant; yields its port and the folder of the certificates."""
    files = setup.work / "tls"
    write_tls(files, onboard_tenant.tls_files("finance-tenant1", server_names=("localhost",)))
    sidecar = container(render, "StatefulSet", "postgres", "pgbackrest")
    port = localstack.free_port()
    env = setup.common_env(render) | in_files(plain_env(sidecar), files) | {
        "PGBACKREST_TLS_SERVER_ADDRESS": "127.0.0.1",
        "PGBACKREST_TLS_SERVER_PORT": str(port),
    }
    log = (setup.work / "server.log").open("w")
    server = subprocess.Popen(as_db_owner(sidecar["command"]), env=env, stdout=log, stderr=subprocess.STDOUT, cwd="/")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbackrest server did not listen: {(setup.work / 'server.log').read_text()}")
                time.sleep(0.1)
        yield port, files
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def job_env(setup: Setup, render: dict, name: str, port: int, files: Path) -> dict[str, str]:
    job = container(render, "CronJob", name, "backup")
    return setup.common_env(render) | in_files(plain_env(job), files) | {
        "PGBACKREST_PG1_HOST": "localhost",
        "PGBACKREST_PG1_HOST_PORT": str(port),
        "PGBACKREST_PG1_PATH": str(setup.cluster.data_dir),
        "PGBACKREST_PG1_SOCKET_PATH": str(setup.cluster.socket_dir),
        "PGBACKREST_PG1_PORT": str(setup.cluster.port),
    }


def run_job(render: dict, name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The CronJob's own command, as the postgres user, with this environment."""
    command = container(render, "CronJob", name, "backup")["command"]
    return subprocess.run(as_db_owner(command), env=env, capture_output=True, text=True, timeout=120, cwd="/")


def backups(setup: Setup, render: dict) -> list[dict]:
    result = subprocess.run(
        as_db_owner(["pgbackrest", "info", "--output=json"]), env=setup.common_env(render), capture_output=True,
        text=True, check=True, timeout=60, cwd="/",
    )
    (stanza,) = json.loads(result.stdout)
    return stanza["backup"]


# --- the tests -------------------------------------------------------------------------------------


def test_onboarding_certificates_name_the_pod_and_chain_to_the_tenants_ca(tmp_path):
    files = onboard_tenant.tls_files("finance-acme")
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    def openssl(*args: str) -> str:
        return subprocess.run(["openssl", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    for leaf in ("server", "client"):
        assert f"{leaf}.crt: OK" in openssl("verify", "-CAfile", "ca.crt", f"{leaf}.crt")
    server = openssl("x509", "-in", "server.crt", "-noout", "-ext", "subjectAltName,extendedKeyUsage")
    assert f"DNS:{onboard_tenant.TLS_SERVER_HOST}," in server and "TLS Web Server Authentication" in server
    client = openssl("x509", "-in", "client.crt", "-noout", "-subject", "-ext", "extendedKeyUsage")
    assert f"CN = {onboard_tenant.TLS_CLIENT_CN}" in client and "TLS Web Client Authentication" in client
    # A new CA every time: no tenant's certificate is trusted by another's server.
    assert onboard_tenant.tls_files("finance-acme")["ca.crt"] != files["ca.crt"]


def test_backups_go_through_the_tls_server_with_the_manifests_settings(setup, render, tls_server):
    port, files = tls_server
    before = len(backups(setup, render))
    for name, backup_type in (("postgres-backup-full", "full"), ("postgres-backup-diff", "diff")):
        result = run_job(render, name, job_env(setup, render, name, port, files))
        assert result.returncode == 0, result.stdout + result.stderr
        # stanza-create on an existing stanza changes nothing and says so.
        assert "stanza-create command end: completed successfully" in result.stdout
        assert "backup command begin" in result.stdout and f"--type={backup_type}" in result.stdout
    taken = backups(setup, render)[before:]
    assert [backup["type"] for backup in taken] == ["full", "diff"]


def test_a_client_certificate_of_another_ca_is_refused(setup, render, tls_server):
    port, _ = tls_server
    stranger = setup.work / "stranger"
    write_tls(stranger, onboard_tenant.tls_files("finance-other", server_names=("localhost",)))
    # The server's own CA to check the server by, the other tenant's client certificate to prove itself.
    env = job_env(setup, render, "postgres-backup-diff", port, stranger) | {
        "PGBACKREST_PG1_HOST_CA_FILE": str(tls_server[1] / "ca.crt"),
    }
    before = len(backups(setup, render))
    result = run_job(render, "postgres-backup-diff", env)
    assert result.returncode != 0, result.stdout
    # What pgBackRest says of a database host it cannot use: the server closed the handshake.
    assert "unable to find primary cluster" in result.stdout + result.stderr
    assert len(backups(setup, render)) == before


# --- the restore drill -----------------------------------------------------------------------------


def newest_migration(render: dict, directory: Path) -> Path:
    """The drill's init container's own command, run against this checkout's migrations."""
    init = container(render, "CronJob", "restore-drill", "newest-migration")
    command = init["command"][-1].replace(APP_MIGRATIONS_IN_IMAGE, str(MIGRATIONS))
    target = plain_env(container(render, "CronJob", "restore-drill", "restore-drill"))["DRILL_NEWEST_MIGRATION_FILE"]
    local = directory / "newest-migration"
    subprocess.run(["sh", "-c", command.replace(target, str(local))], check=True, timeout=30)
    return local


def run_drill(setup: Setup, render: dict, name: str) -> subprocess.CompletedProcess:
    """restore-drill.sh as the CronJob runs it, into a scratch folder of its own."""
    drill = container(render, "CronJob", "restore-drill", "restore-drill")
    scratch = setup.work / name
    scratch.mkdir()
    give_to_db_owner(scratch)
    # The script and its check, readable by the postgres user wherever this checkout is.
    for file in ("restore-drill.sh", "restore-drill-check.sql"):
        shutil.copy(BASE / file, scratch / file)
    env = setup.common_env(render) | plain_env(drill) | {
        "DRILL_PGDATA": str(scratch / "pgdata"),
        "DRILL_CHECK": str(scratch / "restore-drill-check.sql"),
        "DRILL_NEWEST_MIGRATION_FILE": str(newest_migration(render, scratch)),
        "DRILL_SOCKET_DIR": str(scratch / "socket"),
        "DRILL_DATABASE": TENANT,
        "DRILL_TIMEOUT_SECONDS": "120",
    }
    script = scratch / "restore-drill.sh"
    assert drill["command"][-1].endswith("/" + script.name)
    try:
        return subprocess.run(
            as_db_owner(["sh", str(script)]), env=env, capture_output=True, text=True, timeout=180, cwd="/"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_the_drill_restores_the_latest_backup_and_its_checks_pass(setup, render):
    subprocess.run(
        as_db_owner(["pgbackrest", "backup", "--type=full"]), env=setup.local_env(render), check=True,
        capture_output=True, timeout=120, cwd="/",
    )
    result = run_drill(setup, render, "drill-good")
    assert result.returncode == 0, result.stdout + result.stderr
    newest = sorted(MIGRATIONS.glob("*.sql"))[-1].stem
    assert f"newest {newest}" in result.stderr  # psql's NOTICEs
    assert "400 rows in transactions" in result.stderr
    assert result.stdout.strip().endswith("restore drill: passed")


def test_the_drill_fails_when_the_restored_totals_disagree_with_the_transactions(setup, render):
    with setup.tenant.connect() as conn:
        conn.execute("ALTER TABLE transactions DISABLE TRIGGER USER")
        try:
            # A write the totals never saw, as a lost trigger or a torn page would leave them.
            conn.execute("UPDATE transactions SET amount = amount + 1 WHERE id = (SELECT min(id) FROM transactions)")
        finally:
            conn.execute("ALTER TABLE transactions ENABLE TRIGGER USER")
    try:
        # Archived at once: pgbackrest check switches the WAL segment and waits for it.
        subprocess.run(
            as_db_owner(["pgbackrest", "check"]), env=setup.local_env(render), check=True, capture_output=True,
            timeout=120, cwd="/",
        )
        result = run_drill(setup, render, "drill-bad")
        assert result.returncode != 0, result.stdout + result.stderr
        assert "daily_totals rows differ from a recomputation" in result.stderr
        assert "restore drill: FAILED" in result.stderr
    finally:
        with setup.tenant.connect() as conn:
            conn.execute("SELECT refresh_totals()")
            conn.execute("SELECT refresh_balances()")


def test_the_check_refuses_a_database_behind_the_apps_migrations(setup):
    check = (BASE / "restore-drill-check.sql").read_text()
    with setup.tenant.connect() as conn:
        conn.execute(check)  # current: passes, and changes nothing
        conn.execute("SET drill.newest_migration = '9999_from_the_future'")
        with pytest.raises(psycopg.errors.RaiseException, match="migration 9999_from_the_future is not applied"):
            conn.execute(check)
