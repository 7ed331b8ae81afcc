"""A private PostgreSQL cluster and one gunicorn per tenant, for local runs and the test suite.

Everything lives under one folder (`.local/dev` for `scripts/dev`, `.local/test` for pytest):
the cluster's data, its socket, generated secrets, logs and pid files. Tenants and their env
files are tenancy's (the same for every script).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from pgbackrest_info import Backup, backups_of
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from tenancy import ROOT, Tenant, read_env_file
from tenancy import discover_tenants as discover_tenants  # where the test suite finds it

VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN_CONF = ROOT / "service" / "gunicorn.conf.py"
SUPERUSER = "postgres"
IS_ROOT = os.geteuid() == 0


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port.

    SO_REUSEADDR, as servers set it: connections of a server stopped a moment ago linger in
    TIME_WAIT for a minute and would make a port look taken that a server can bind."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server binaries; installs Debian's package when missing."""
    for attempt in range(2):
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"),
            key=lambda path: int(re.sub(r"\D", "", path.parent.parent.name) or 0),
        )
        if found:
            return found[-1].parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).resolve().parent
        if attempt == 0 and IS_ROOT and shutil.which("apt-get"):
            print("PostgreSQL server not found; installing it with apt-get", file=sys.stderr)
            apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-q"], check=True, env=apt_env)
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "postgresql", "postgresql-contrib"],
                check=True, env=apt_env,
            )
    sys.exit("PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package")


def cluster_directory(preferred: Path) -> Path:
    """The preferred folder, unless the postgres user cannot reach it or its socket path is too long.

    Then a folder under /tmp named after the preferred one, so each checkout keeps its own.
    """
    socket_path_length = len(str(preferred / "socket" / ".s.PGSQL.65535"))
    reachable = True
    if IS_ROOT:
        ancestor = preferred
        while not ancestor.exists():
            ancestor = ancestor.parent
        probe = ["runuser", "-u", "postgres", "--", "test", "-x", str(ancestor)]
        reachable = subprocess.run(probe, check=False, cwd="/").returncode == 0
    if reachable and socket_path_length < 100:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]  # noqa: S324 - a name, not security
    return Path(tempfile.gettempdir()) / f"finance-pg-{digest}"


def _as_db_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if IS_ROOT else command


class _Databases:
    """Per-tenant roles and databases, on any server a superuser can reach."""

    host = "127.0.0.1"
    port: int

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        raise NotImplementedError

    def client_env(self) -> dict[str, str]:
        """The libpq variables (and PATH) that make psql or pg_dump connect as the superuser."""
        raise NotImplementedError

    def ensure_database(self, name: str, password: str) -> str:
        """Create (or update) a role and a database it owns that no other role may connect to.

        The role is what kubernetes/base/postgres-init.sh makes of the app's role: it may log in
        and owns its database and schema public (so it migrates them), and has no other power.
        """
        role = f"{name}_app"
        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
                ).format(sql.SQL(verb), sql.Identifier(role), sql.Literal(password))
            )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(role)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        with self.connect(name) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        return f"postgresql://{role}:{password}@{self.host}:{self.port}/{name}"


# The most time an acknowledged write may wait to leave the server for the archive: an idle
# server still switches to a new WAL segment, and archives the last one, after this many seconds.
ARCHIVE_TIMEOUT_SECONDS = 60


@dataclass
class Archive:
    """pgBackRest for one cluster: continuous WAL archiving and backups into a repository on the
    filesystem, and point-in-time restores from it (the same tool the tenants' PostgreSQL uses).

    Everything lives under `directory`: pgbackrest.conf, the repository, logs and locks.
    """

    directory: Path
    stanza: str = "finance"
    # Days of point-in-time recovery to keep (pgBackRest's time retention, as the tenants' settings
    # give it in Kubernetes); None: the two newest full backups.
    retention_days: int | None = None

    @property
    def config(self) -> Path:
        return self.directory / "pgbackrest.conf"

    def postgres_options(self) -> str:
        """The server settings that archive every WAL segment with pgBackRest."""
        return (
            " -c wal_level=replica -c archive_mode=on"
            f" -c archive_timeout={ARCHIVE_TIMEOUT_SECONDS}"
            f" -c archive_command='pgbackrest --config={self.config} --stanza={self.stanza} archive-push %p'"
        )

    def write_config(self, cluster: Cluster) -> None:
        for folder in ("repo", "log", "lock"):
            (self.directory / folder).mkdir(parents=True, exist_ok=True)
        retention = (
            f"repo1-retention-full-type=time\nrepo1-retention-full={self.retention_days}\n"
            if self.retention_days else "repo1-retention-full=2\n"
        )
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.directory / 'repo'}\n"
            f"{retention}"
            f"log-path={self.directory / 'log'}\n"
            f"lock-path={self.directory / 'lock'}\n"
            "log-level-console=warn\n"
            "start-fast=y\n"
            f"[{self.stanza}]\n"
            f"pg1-path={cluster.data_dir}\n"
            f"pg1-port={cluster.port}\n"
            f"pg1-socket-path={cluster.socket_dir}\n"
            f"pg1-user={SUPERUSER}\n"
        )
        if IS_ROOT:
            for path in (self.directory, *self.directory.rglob("*")):
                shutil.chown(path, "postgres", "postgres")

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess:
        """`pgbackrest <command>` for this stanza, as the server's owner."""
        return subprocess.run(
            _as_db_owner(["pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", command, *args]),
            check=True, capture_output=True, text=True, cwd="/",
        )

    def info(self) -> dict:
        """The stanza as `pgbackrest info` reports it (backups, archived WAL), {} before stanza-create."""
        stanzas = json.loads(self.run("info", "--output=json").stdout or "[]")
        return stanzas[0] if stanzas and stanzas[0].get("db") else {}

    def backups(self) -> list[Backup]:
        """The repository's backups, oldest first."""
        return backups_of(self.info())

    def bootstrap(self) -> Backup | None:
        """Make the stanza (idempotent), and back up as the tenants' CronJobs do, when one is due:
        a full backup when the newest is a week old (or there is none), else an incremental one
        when the newest backup is a day old. Each backup expires what the retention no longer
        needs. Returns the backup taken, if any."""
        try:
            self.run("stanza-create")
        except subprocess.CalledProcessError as exc:
            if "do not match the database" not in exc.stderr + exc.stdout:
                raise
            raise RuntimeError(
                f"the archive in {self.directory} belongs to another cluster: this one's data directory was lost"
                " or made anew. Restore the archive's state with `scripts/restore-tenant <tenant> --local --latest`,"
                " or move the archive away to start with an empty database"
            ) from None
        backups, now = self.backups(), datetime.now(UTC)
        fulls = [backup for backup in backups if backup.type == "full"]
        if not fulls or now - fulls[-1].stopped >= timedelta(days=7):
            self.run("backup", "--type=full")
        elif now - backups[-1].stopped >= timedelta(days=1):
            self.run("backup", "--type=incr")
        else:
            return None
        return self.backups()[-1]

    def restore(self, cluster: Cluster, *, to_time: datetime | None = None, backup: str | None = None) -> None:
        """Replace the cluster's data with the repository's: as it was at `to_time` (an aware
        instant) or at the end of the archived WAL, from `backup` (a label) or the one pgBackRest
        picks. All or nothing until the restored server is promoted: the data directory being
        replaced is kept aside (data.replaced) and put back (and started, if it ran) when a step
        fails. Once promoted, the restored server writes a new timeline into the repository, so it
        stays (a rollback then would leave a timeline that later restores follow).

        The cluster is stopped first (a server that was killed may linger as a zombie that pg_ctl
        cannot stop: its data is set aside all the same)."""
        aside = cluster.replaced_dir
        if aside.exists():
            raise RuntimeError(f"an earlier restore was interrupted: {aside} {RESTORE_INTERRUPTED}")
        was_running = cluster.is_running()
        cluster.stop("fast", check=False)
        if cluster.data_dir.exists():
            cluster.data_dir.rename(aside)
        try:
            cluster.data_dir.mkdir(mode=0o700)
            if IS_ROOT:
                shutil.chown(cluster.data_dir, "postgres", "postgres")
            # Without a target, recovery replays every archived segment and then takes writes.
            target = (
                ["--type=time", f"--target={to_time.isoformat(sep=' ')}", "--target-action=promote"] if to_time else []
            )
            chosen = [f"--set={backup}"] if backup else []
            self.run("restore", *target, *chosen)
            try:
                cluster.start(restoring=True)
            except subprocess.CalledProcessError:
                raise RuntimeError(f"the restored server stopped during recovery; see {cluster.log_file}") from None
            cluster.wait_promoted()
        except BaseException as exc:
            cluster.stop("immediate", check=False)
            shutil.rmtree(cluster.data_dir, ignore_errors=True)
            if aside.exists():
                aside.rename(cluster.data_dir)
                if was_running:
                    cluster.start()
            if isinstance(exc, subprocess.CalledProcessError | RuntimeError):
                detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
                raise RuntimeError(f"{detail}; the database is as it was") from exc
            raise
        shutil.rmtree(aside, ignore_errors=True)
        with cluster.connect() as conn:
            # Promotion starts a spread checkpoint, and until it ends (minutes, with the default
            # checkpoint_timeout) archive_timeout switches no segment: measured on PostgreSQL 15,
            # nothing written after a restore left for the archive. Finish it now.
            conn.execute("CHECKPOINT")


# What to do when data.replaced is found: the restore that made it did not finish.
RESTORE_INTERRUPTED = (
    "holds the data directory as it was before that restore, and data/ what the restore got to:"
    " keep the one you want as data/ (move data.replaced back to data to undo the restore) and"
    " remove the other, then start again"
)


@dataclass
class Cluster(_Databases):
    """A PostgreSQL cluster in a folder of its own, listening on 127.0.0.1 and a private socket.

    With an Archive, it archives its WAL with pgBackRest from its first start on.
    """

    directory: Path
    port: int
    bin_dir: Path = field(default_factory=postgres_bin_dir)
    archive: Archive | None = None

    def __post_init__(self) -> None:
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log_file = self.directory / "postgresql.log"
        # Where Archive.restore keeps the data directory it replaces until the restore is done.
        self.replaced_dir = self.directory / "data.replaced"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = _as_db_owner([str(self.bin_dir / tool), *args])
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd="/")

    def initialize(self) -> None:
        """Create the cluster once: local socket trusted, TCP with passwords only."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        for path in (self.directory, self.data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        if IS_ROOT:
            shutil.chown(self.directory, "postgres", "postgres")
            shutil.chown(self.data_dir, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self.socket_dir.chmod(0o700)
        self._pg(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )

    def is_running(self) -> bool:
        return self._pg("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def running_port(self) -> int | None:
        """The port the running server listens on (postmaster.pid's fourth line), if it runs."""
        if not self.is_running():
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def start(self, *, restoring: bool = False) -> None:
        """Start the server (initialising the cluster the first time); refused while a restore that
        did not finish left data.replaced behind, unless it is that restore starting it."""
        if self.replaced_dir.exists() and not restoring:
            raise RuntimeError(f"an earlier restore was interrupted: {self.replaced_dir} {RESTORE_INTERRUPTED}")
        self.initialize()
        if self.is_running():
            return
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir}"
            " -c fsync=on -c max_connections=200"
        )
        if self.archive:
            self.archive.write_config(self)
            options += self.archive.postgres_options()
        self._pg(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        if self.is_running():
            self._pg("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=check)

    def wait_promoted(self, timeout: float = 300) -> None:
        """Wait until the restored server has replayed the archive to its target and been promoted
        to take writes; raise if it stops on the way (a target the archive does not reach)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise RuntimeError(f"the restored server stopped during recovery; see {self.log_file}")
            try:
                with self.connect() as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return
            except psycopg.OperationalError:
                pass  # still starting up, or stopping
            if time.monotonic() > deadline:
                raise RuntimeError(f"the restore did not finish within {timeout:.0f} s; see {self.log_file}")
            time.sleep(0.1)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """Connect as the superuser through the private socket."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True
        )

    def client_env(self) -> dict[str, str]:
        return {
            "PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": SUPERUSER,
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }


def tenant_at(url: str, timeout: float = 2) -> str | None:
    """The tenant the server at `url` says it is (its /health names it); None when nothing answers
    there or what answers is not this service."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310
            tenant = json.loads(response.read()).get("tenant")
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, AttributeError):
        return None
    return tenant if isinstance(tenant, str) else None


def port_user(port: int) -> str:
    """Who holds a port, for an error message: a tenant's server when this service answers there."""
    other = tenant_at(f"http://127.0.0.1:{port}")
    return f"tenant {other}'s server" if other else "another program"


# What gunicorn logs when it cannot bind its port (it retries for 5 s, then exits with code 1).
PORT_IN_USE = "Connection in use"


def _wait_ready(
    url: str, tenant: str, process: subprocess.Popen, log_file: Path, log_start: int = 0, timeout: float = 60
) -> None:
    """Wait until the server at `url` is ready and says it is `tenant`. Raise when the process exits
    (saying so when its port was in use) or when another tenant's server answers on the port: a
    server that cannot bind keeps retrying for a few seconds while the one holding the port answers,
    and that one must never be taken for this tenant's (issue 16). `log_start`: where this start's
    lines begin in the log, which earlier starts appended to."""
    port = url.rpartition(":")[2]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = log_file.read_bytes()[log_start:].decode(errors="replace").splitlines()
            if any(PORT_IN_USE in line for line in lines):
                raise RuntimeError(
                    f"tenant {tenant}'s server could not start: port {port} is in use by {port_user(int(port))};"
                    " stop that (`scripts/dev down`) or free the port"
                )
            tail = "\n".join(lines[-20:])
            raise RuntimeError(f"{url} exited with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as response:  # noqa: S310
                answered = json.loads(response.read()).get("tenant") if response.status == 200 else None
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, AttributeError):
            answered = None
        else:
            if answered == tenant:
                return
            holder = f"tenant {answered}'s server" if isinstance(answered, str) else "another program"
            raise RuntimeError(
                f"port {port} answers as {holder}, not as tenant {tenant}: stop it (`scripts/dev down`, in the"
                f" checkout that started it) or free the port, then start {tenant} again"
            )
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready within {timeout:.0f} s; see {log_file}")


@dataclass
class Server:
    """One running gunicorn of a tenant."""

    tenant: str
    url: str
    process: subprocess.Popen
    env: dict[str, str]
    # Where the master serves the workers' Prometheus metrics ("" when they are off).
    metrics_url: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ExternalServer(_Databases):
    """A PostgreSQL server run by someone else (a CI service container), given a superuser URL."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        info = conninfo_to_dict(admin_url)
        self.host, self.port = info.get("host", "127.0.0.1"), int(info.get("port", 5432))

    def start(self) -> None:
        with self.connect():
            pass

    def stop(self, mode: str = "fast") -> None:
        """Nothing to stop: the server is not ours."""

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.admin_url, dbname=dbname, autocommit=True)

    def client_env(self) -> dict[str, str]:
        info = conninfo_to_dict(self.admin_url)
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": str(info.get("user", SUPERUSER))}
        if info.get("password"):
            env["PGPASSWORD"] = str(info["password"])
        return {**env, "PATH": os.environ.get("PATH", "")}


@dataclass
class Stack:
    """A database server plus each tenant's database, secrets, migrations and gunicorn.

    The server is a private cluster under `directory`, or an ExternalServer when one is given.
    """

    directory: Path
    pg_port: int = 0
    external: ExternalServer | None = None
    # Archive the private cluster with pgBackRest into a repository in `directory`/pgbackrest.
    archived: bool = False

    def __post_init__(self) -> None:
        archive = Archive(cluster_directory(self.directory / "pgbackrest")) if self.archived else None
        self.cluster: Cluster | ExternalServer = self.external or Cluster(
            cluster_directory(self.directory / "postgresql"), self.pg_port, archive=archive
        )

    def secrets_for(self, tenant: str) -> dict[str, str]:
        """The tenant's generated database password and signing key, created on first use."""
        path = self.directory / "secrets" / f"{tenant}.env"
        values = read_env_file(path)
        if not values:
            path.parent.mkdir(parents=True, exist_ok=True)
            values = {"DB_PASSWORD": secrets.token_urlsafe(24), "JWT_SECRET": secrets.token_urlsafe(48)}
            path.touch(mode=0o600)
            path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
        return values

    def prepare(self, tenant: Tenant) -> dict[str, str]:
        """Create the tenant's database and role, migrate it, and return the app's environment."""
        tenant_secrets = self.secrets_for(tenant.name)
        database_url = self.cluster.ensure_database(tenant.name, tenant_secrets["DB_PASSWORD"])
        env = {
            **os.environ,
            **tenant.settings,
            "TENANT_ID": tenant.name,
            "DATABASE_URL": database_url,
            "JWT_SECRET": tenant_secrets["JWT_SECRET"],
            "PYTHONUNBUFFERED": "1",
            # Webhooks may go to this machine (a developer's receiver, the test suite's): never
            # set in Kubernetes or docker-compose (tests/ops/test_kubernetes.py).
            "WEBHOOKS_ALLOW_LOOPBACK": "true",
        }
        subprocess.run(
            [str(VENV_PYTHON), "-m", "service", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True
        )
        return env

    def start_server(
        self, tenant: str, env: dict[str, str], port: int, *, detach: bool = False, wait_ready: bool = True,
        metrics_port: int | None = None,
    ) -> Server:
        """Start gunicorn with the production config on 127.0.0.1:port and (unless told not to)
        wait until it is ready and answers as its tenant (env's TENANT_ID). A port that something
        already listens on is refused before anything starts, naming who holds it.

        Its metrics are served on 127.0.0.1:metrics_port (a free port unless given; 0: off), from
        a multiprocess directory of its own, `metrics/<tenant>-<port>` of the stack's folder.
        """
        while metrics_port is None or metrics_port == port:
            metrics_port = free_port()
        metrics_dir = self.directory / "metrics" / f"{tenant}-{port}"
        env = {
            **env, "HOST": "127.0.0.1", "PORT": str(port),
            "METRICS_PORT": str(metrics_port), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        log_dir = self.directory / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / f"{tenant}-{port}.log"
        if port_taken(port):
            raise RuntimeError(
                f"port {port} is taken by {port_user(port)}, so tenant {tenant}'s server cannot start there:"
                " stop that (`scripts/dev down`, in the checkout that started it) or free the port"
            )
        log_start = log_file.stat().st_size if log_file.exists() else 0
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [str(VENV_PYTHON), "-m", "gunicorn", "-c", str(GUNICORN_CONF), "service:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach,
            )
        url = f"http://127.0.0.1:{port}"
        server = Server(tenant, url, process, env, f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else "")
        if not wait_ready:
            return server
        try:
            _wait_ready(url, env.get("TENANT_ID", tenant), process, log_file, log_start)
        except RuntimeError:
            server.stop()
            raise
        return server

    def start_dispatcher(self, tenant: str, env: dict[str, str], *, every: float = 1.0, detach: bool = False,
                         log_file: Path | None = None) -> subprocess.Popen:
        """Start the tenant's webhook dispatcher (`python -m service deliver-webhooks --every`) with
        its gunicorn's environment but no signing key, which it does not need; it logs to
        `log_file` (logs/<tenant>-dispatcher.log of the stack's folder unless given)."""
        env = {key: value for key, value in env.items() if key != "JWT_SECRET"}
        if log_file is None:
            log_file = self.directory / "logs" / f"{tenant}-dispatcher.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            return subprocess.Popen(
                [str(VENV_PYTHON), "-m", "service", "deliver-webhooks", "--every", str(every)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach,
            )


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signal a process this one started, wait for it to exit (killing it after `timeout` s), reap it."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
