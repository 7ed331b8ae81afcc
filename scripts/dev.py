"""Run every tenant of tenants/ locally: for each, a PostgreSQL cluster of its own, archived with
pgBackRest into .local/dev/<tenant>/pgbackrest (as each tenant's database is in Kubernetes, so that
scripts/restore-tenant --local can restore it to a point in time), a gunicorn, the recurring
transactions' scheduler (`python -m service run-scheduled --every 60`, a CronJob in Kubernetes) and
the webhook dispatcher (`python -m service deliver-webhooks`, a Deployment in Kubernetes), which
may send to http:// and https:// URLs on this machine's loopback addresses (WEBHOOKS_ALLOW_LOOPBACK),
so that a developer can receive webhooks locally.

    scripts/dev run      start everything, print `<tenant> <base-url>` lines, stop on Ctrl-C
    scripts/dev up       the same, left running in the background
    scripts/dev down     stop everything `up` started
    scripts/dev status   print the lines of the tenants that run and answer as themselves

`run` and `up` say on stderr what they are doing (each tenant's PostgreSQL, backup, migration and
server); only the `<tenant> <base-url>` lines go to stdout, for scripts to read. A server that
answers as another tenant is never reported as ready. `status` says on stderr what is wrong (a
tenant not running, a server answering as another tenant, one whose tenants/ folder is gone) and
exits 0 when every tenant runs, 3 when none does (as `systemctl status`), 1 otherwise.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import localstack
import tenancy

STATE = tenancy.ROOT / ".local" / "dev"
# The first tenant's PostgreSQL port; each tenant's is this plus its app port's offset from the first's.
PG_PORT = int(os.environ.get("DEV_PG_PORT", "55432"))
FIRST_APP_PORT = tenancy.FIRST_LOCAL_PORT
# Seconds between two passes of a tenant's scheduler.
SCHEDULER_EVERY = 60
# `status`'s exit code when no tenant runs (LSB's "program is not running", as `systemctl status`).
NOT_RUNNING = 3


def pg_port(app_port: int) -> int:
    """The PostgreSQL port of the tenant served on app_port: as far from PG_PORT as app_port is from
    the first tenant's."""
    return PG_PORT + app_port - FIRST_APP_PORT


def stack(tenant: str, app_port: int) -> localstack.Stack:
    """The tenant's own cluster (on the port it runs on, if it runs), secrets, logs and archive."""
    tenant_stack = localstack.Stack(STATE / tenant, pg_port(app_port), archived=True)
    tenant_stack.cluster.port = tenant_stack.cluster.running_port() or tenant_stack.cluster.port
    # The retention the tenant has in Kubernetes (tenants/<tenant>/backup.env), if it says one.
    backup_settings = tenancy.read_env_file(tenancy.tenant_dir(tenant) / "backup.env")
    days = backup_settings.get("PGBACKREST_REPO1_RETENTION_FULL")
    tenant_stack.cluster.archive.retention_days = int(days) if days else None
    return tenant_stack


def _pid_file(tenant: str) -> Path:
    return STATE / "run" / f"{tenant}.pid"


def _scheduler_pid_file(tenant: str) -> Path:
    return STATE / "run" / "scheduler" / f"{tenant}.pid"


def _dispatcher_pid_file(tenant: str) -> Path:
    return STATE / "run" / "dispatcher" / f"{tenant}.pid"


def restoring_marker(tenant: str) -> Path:
    """Present while a script takes the tenant's server down on purpose (restore-tenant --local
    restores it, fleet upgrade --local restarts it): `run` leaves it alone, `status` says why."""
    return STATE / "run" / f"{tenant}.restoring"


@contextmanager
def down_on_purpose(tenant: str, why: str) -> Iterator[None]:
    """Mark the tenant's server as down on purpose (`why`, e.g. "scripts/fleet upgrade --local
    restarts it") while the block runs; the mark is removed afterwards, whatever happens."""
    marker = restoring_marker(tenant)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{why}\n")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def running(tenant: str) -> tuple[int, str] | None:
    """(pid, url) of a tenant's gunicorn started by `up`, if it is still alive."""
    try:
        pid_text, url = _pid_file(tenant).read_text().split()
        os.kill(int(pid_text), 0)
    except (OSError, ValueError):
        return None
    return int(pid_text), url


def serving() -> dict[str, tuple[int, str]]:
    """(pid, url) of every gunicorn `up` started that is still alive, by tenant, also of a tenant
    whose tenants/ folder has gone since (its server still holds its port)."""
    servers = {}
    for pid_file in sorted((STATE / "run").glob("*.pid")):
        alive = running(pid_file.stem)
        if alive:
            servers[pid_file.stem] = alive
    return servers


def scheduler_running(tenant: str) -> int | None:
    """The pid of a tenant's scheduler started by `up`, if it is still alive."""
    return _alive(_scheduler_pid_file(tenant))


def dispatcher_running(tenant: str) -> int | None:
    """The pid of a tenant's webhook dispatcher started by `up`, if it is still alive."""
    return _alive(_dispatcher_pid_file(tenant))


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def up() -> list[localstack.Server]:
    tenants = {t.name: t for t in tenancy.discover_tenants()}
    if not tenants:
        sys.exit("no tenants: tenants/<name>/tenant.env is missing")
    if not shutil.which("pgbackrest"):
        sys.exit("make run archives every tenant with pgBackRest, which is not installed:"
                 " `apt-get install pgbackrest` (scripts/install does it when run as root)")
    ports = tenancy.local_ports()
    stacks = {tenant: stack(tenant, port) for tenant, port in ports.items()}
    for tenant, port in ports.items():
        cluster = stacks[tenant].cluster
        if not cluster.is_running() and localstack.port_taken(cluster.port):
            sys.exit(
                f"port {cluster.port} of tenant {tenant}'s PostgreSQL is taken (another checkout's `make run`?):"
                f" choose a free range with DEV_PG_PORT, e.g. `DEV_PG_PORT={PG_PORT + 100} make run`"
            )
        if not running(tenant) and localstack.port_taken(port):
            sys.exit(
                f"port {port} of tenant {tenant} is taken by {localstack.port_user(port)} (another checkout's"
                f" `make run`, or a tenant offboarded by hand?): stop it (`scripts/dev down` where it was started)"
                f" or choose a free port with LOCAL_PORT in tenants/{tenant}/local.env"
            )
    try:
        servers = [
            server for tenant, port in ports.items() if (server := serve(stacks[tenant], tenants[tenant], port))
        ]
    except RuntimeError as exc:  # an archive that is not the cluster's, an interrupted restore
        sys.exit(f"make run: {exc}")
    status()
    return servers


def serve(tenant_stack: localstack.Stack, tenant: tenancy.Tenant, port: int) -> localstack.Server | None:
    """Start the tenant's cluster (its archive made, and backed up when it has no backup of the
    last day), migrate it and start its gunicorn and then its scheduler and webhook dispatcher in
    the background, unless they already run. A gunicorn that does not start, or that another
    tenant's server answers for, leaves neither behind. Each step is announced on stderr."""
    _progress(tenant.name, f"PostgreSQL on port {tenant_stack.cluster.port}")
    tenant_stack.cluster.start()
    assert tenant_stack.cluster.archive is not None
    _progress(tenant.name, "pgBackRest archive, and a backup when one is due")
    try:
        tenant_stack.cluster.archive.bootstrap()
    except RuntimeError:
        tenant_stack.cluster.stop()
        raise
    if alive := running(tenant.name):
        _progress(tenant.name, f"server already running at {alive[1]}")
        return None
    _progress(tenant.name, "migrating its database")
    env = tenant_stack.prepare(tenant)
    _progress(tenant.name, f"starting its server on port {port}")
    server = tenant_stack.start_server(tenant.name, env, port, detach=True)
    _pid_file(tenant.name).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(tenant.name).write_text(f"{server.process.pid} {server.url}\n")
    start_scheduler(tenant_stack, tenant.name, env)
    start_dispatcher(tenant_stack, tenant.name, env)
    return server


def _progress(tenant: str, step: str) -> None:
    """Say what is being done, on stderr: stdout is for the `<tenant> <url>` lines alone."""
    print(f"{tenant}: {step}", file=sys.stderr, flush=True)


def start_scheduler(tenant_stack: localstack.Stack, tenant: str, env: dict[str, str]) -> None:
    """Start the tenant's scheduler with its gunicorn's environment (the same DATABASE_URL and
    TENANT_TIMEZONE) but no signing key, which it does not need; it logs beside gunicorn."""
    env = {key: value for key, value in env.items() if key != "JWT_SECRET"}
    log_file = tenant_stack.directory / "logs" / f"{tenant}-scheduler.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [str(localstack.VENV_PYTHON), "-m", "service", "run-scheduled", "--every", str(SCHEDULER_EVERY)],
            cwd=tenancy.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _scheduler_pid_file(tenant).parent.mkdir(parents=True, exist_ok=True)
    _scheduler_pid_file(tenant).write_text(f"{process.pid}\n")


def start_dispatcher(tenant_stack: localstack.Stack, tenant: str, env: dict[str, str]) -> None:
    """Start the tenant's webhook dispatcher with its gunicorn's environment but no signing key; it
    logs to logs/<tenant>-dispatcher.log beside gunicorn's."""
    process = tenant_stack.start_dispatcher(tenant, env, detach=True)
    _dispatcher_pid_file(tenant).parent.mkdir(parents=True, exist_ok=True)
    _dispatcher_pid_file(tenant).write_text(f"{process.pid}\n")


def status() -> int:
    """Print `<tenant> <url>` for each tenant whose server runs and answers as itself (its /health
    names it), and one line on stderr for each tenant that does not, or whose server still runs
    after its tenants/ folder went. 0 when every tenant runs, NOT_RUNNING when none does, else 1."""
    tenants = {tenant.name for tenant in tenancy.discover_tenants()}
    servers = serving()
    if not servers:
        print("no tenant is running locally; start them with `make up` (or `make run`)", file=sys.stderr)
        return NOT_RUNNING
    problems = 0
    for name in sorted(tenants | set(servers)):
        problem = _server_problem(name, tenants, servers)
        if problem:
            print(problem, file=sys.stderr, flush=True)
            problems += 1
        else:
            print(f"{name} {servers[name][1]}", flush=True)
    return 1 if problems else 0


def _server_problem(name: str, tenants: set[str], servers: dict[str, tuple[int, str]]) -> str | None:
    """What is wrong with a tenant's local server; None when it runs and answers as itself."""
    if name not in servers:
        if restoring_marker(name).exists():
            return f"{name}: not running while {restoring_marker(name).read_text().strip() or 'a script restarts it'}"
        return f"{name}: not running; `make up` starts it"
    pid, url = servers[name]
    if name not in tenants:
        return (f"{name}: its server (pid {pid}) still runs at {url}, but tenants/{name} is gone:"
                f" `scripts/offboard-tenant {name} --local` stops it")
    answered = localstack.tenant_at(url)
    if answered == name:
        return None
    if answered:
        return (f"{name}: {url} answers as tenant {answered}, not as {name}: stop both with `scripts/dev down`,"
                " then `make up`")
    return f"{name}: its server (pid {pid}) does not answer at {url}; see .local/dev/{name}/logs"


def stop_server(tenant: str) -> bool:
    """Stop the tenant's scheduler, its webhook dispatcher (which finishes its sends in flight, 15 s
    at most) and its gunicorn (which finishes its requests first); whether the gunicorn was running."""
    _stop(scheduler_running(tenant))
    _scheduler_pid_file(tenant).unlink(missing_ok=True)
    _stop(dispatcher_running(tenant))
    _dispatcher_pid_file(tenant).unlink(missing_ok=True)
    alive = running(tenant)
    _stop(alive[0] if alive else None)
    _pid_file(tenant).unlink(missing_ok=True)
    return alive is not None


def _stop(pid: int | None) -> None:
    """SIGTERM, then wait up to 30 s for the process to exit."""
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if _exited(pid):
            break
        time.sleep(0.1)


def _exited(pid: int) -> bool:
    """Whether the process is gone. One this process started (`run` starts the servers it later
    stops) stays a zombie, which signal 0 still reaches, until it is reaped here."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
    except ChildProcessError:
        pass  # not our child: whoever started it reaps it
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def down() -> None:
    pid_files = [*(STATE / "run").glob("*.pid"), *(STATE / "run" / "scheduler").glob("*.pid"),
                 *(STATE / "run" / "dispatcher").glob("*.pid")]
    for tenant in sorted({pid_file.stem for pid_file in pid_files}):
        stop_server(tenant)
    # Every tenant's cluster that ran here, also one whose tenants/ folder has gone since.
    for tenant_dir in sorted(path.parent for path in STATE.glob("*/secrets")):
        stack(tenant_dir.name, FIRST_APP_PORT).cluster.stop()


def run() -> None:
    up()
    try:
        # Inside the try: a Ctrl-C as soon as this line shows still stops everything cleanly.
        print("Serving; press Ctrl-C to stop.", flush=True)
        while all(running(t.name) or restoring_marker(t.name).exists() for t in tenancy.discover_tenants()):
            time.sleep(1)
        print("a tenant's server stopped; see .local/dev/<tenant>/logs", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    command = parser.parse_args().command
    if command == "status":
        return status()
    {"run": run, "up": up, "down": down}[command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
