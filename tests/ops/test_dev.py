"""The local run (`make run`, scripts/dev): a taken port is one clear line, not a traceback; each tenant's
scheduler runs beside its gunicorn, with its environment, and stops with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import localstack
import pytest

from tests.conftest import ROOT
from tests.utils.private_dev import stop_and_remove, two_free_ports

# What the scheduler's log says after each pass (`python -m service run-scheduled`).
SCHEDULER_PASS_DONE = "scheduled run done"


@pytest.fixture
def taken_port():
    """A port something else listens on, as a second checkout's PostgreSQL would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_postgresql_port_is_one_line_naming_dev_pg_port(taken_port):
    # tenant1 (LOCAL_PORT 8001) is the first tenant: its PostgreSQL port is DEV_PG_PORT itself.
    dev_cluster = localstack.Cluster(
        localstack.cluster_directory(ROOT / ".local" / "dev" / "tenant1" / "postgresql"), 0
    )
    if dev_cluster.is_running():
        pytest.skip("this checkout's own `make run` cluster is running; the check applies before it starts")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev.py"), "up"],
        env={**os.environ, "DEV_PG_PORT": str(taken_port)}, capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(taken_port) in lines[0] and "DEV_PG_PORT" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not dev_cluster.is_running()


def test_without_pgbackrest_make_run_says_what_to_install(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev.py"), "up"],
        env={**os.environ, "PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "make run archives every tenant with pgBackRest, which is not installed:"
        " `apt-get install pgbackrest` (scripts/install does it when run as root)"
    ]


@pytest.mark.parametrize("line", ['TENANT_TIMEZONE="Europe/Berlin"', "TENANT_TIMEZONE=Europe/Berlin # Berlin"])
def test_an_env_value_kustomize_would_read_otherwise_is_refused(tmp_path, line):
    import tenancy

    env_file = tmp_path / "tenant.env"
    env_file.write_text(f"# the tenant's settings\nTENANT_CURRENCY=EUR\n{line}\n")
    with pytest.raises(tenancy.UsageError, match="TENANT_TIMEZONE"):
        tenancy.read_env_file(env_file)
    env_file.write_text("# the tenant's settings\nTENANT_CURRENCY=EUR\nTENANT_TIMEZONE=Europe/Berlin\n")
    assert tenancy.read_env_file(env_file) == {"TENANT_CURRENCY": "EUR", "TENANT_TIMEZONE": "Europe/Berlin"}


# --- the scheduler of each tenant -------------------------------------------------------------------


@pytest.fixture
def private_dev(tmp_path) -> Iterator[Callable[[dict[str, str]], None]]:
    """scripts/dev.py on private tenants (a tenants/ folder and a state folder of their own, free
    ports), given as {name: tenant.env text}; everything it started is stopped at the end."""
    import dev
    import tenancy

    names: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        def make(tenants: dict[str, str]) -> None:
            app_port, pg_port = two_free_ports(), two_free_ports()
            for offset, (name, tenant_env) in enumerate(sorted(tenants.items())):
                (tmp_path / "tenants" / name).mkdir(parents=True)
                (tmp_path / "tenants" / name / "tenant.env").write_text(tenant_env)
                (tmp_path / "tenants" / name / "local.env").write_text(f"LOCAL_PORT={app_port + offset}\n")
                names.append(name)
            patch.setattr(tenancy, "TENANTS_DIR", tmp_path / "tenants")
            patch.setattr(dev, "STATE", tmp_path / "state")
            patch.setattr(dev, "PG_PORT", pg_port - (app_port - dev.FIRST_APP_PORT))

        try:
            yield make
        finally:
            stop_and_remove(names)


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def _schedulers(tenant: str, command: bytes = b"run-scheduled") -> list[int]:
    """Every process running `service run-scheduled` (or another command) with the tenant's TENANT_ID."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            scheduler = command in (proc / "cmdline").read_bytes()
            if scheduler and _environ(int(proc.name)).get("TENANT_ID") == tenant:
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
    return found


def _dispatchers(tenant: str) -> list[int]:
    return _schedulers(tenant, b"deliver-webhooks")


def test_up_runs_a_scheduler_per_tenant_with_its_gunicorns_environment_and_down_stops_it(private_dev):
    import dev

    zones = {"sched-kathmandu": "Asia/Kathmandu", "sched-st-johns": "America/St_Johns"}
    private_dev({name: f"TENANT_CURRENCY=USD\nTENANT_TIMEZONE={zone}\n" for name, zone in zones.items()})
    dev.up()
    schedulers, dispatchers = {}, {}
    for tenant, zone in zones.items():
        pid = dev.scheduler_running(tenant)
        assert pid and _schedulers(tenant) == [pid], f"{tenant}: one scheduler, the one up started"
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        assert cmdline == [str(localstack.VENV_PYTHON), "-m", "service", "run-scheduled", "--every", "60"]
        # Its gunicorn's database and calendar, without the signing key it does not need.
        env, gunicorn_env = _environ(pid), _environ(dev.running(tenant)[0])
        for key in ("TENANT_ID", "DATABASE_URL", "TENANT_TIMEZONE", "LOG_LEVEL"):
            assert env.get(key) == gunicorn_env.get(key), key
        assert env["TENANT_ID"] == tenant and env["TENANT_TIMEZONE"] == zone
        assert "JWT_SECRET" in gunicorn_env and "JWT_SECRET" not in env
        schedulers[tenant] = pid
        # And one webhook dispatcher, with the same environment, loopback receivers allowed.
        dispatcher = dev.dispatcher_running(tenant)
        assert dispatcher and _dispatchers(tenant) == [dispatcher], f"{tenant}: one dispatcher, the one up started"
        cmdline = Path(f"/proc/{dispatcher}/cmdline").read_bytes().decode().split("\0")[:-1]
        assert cmdline[:4] == [str(localstack.VENV_PYTHON), "-m", "service", "deliver-webhooks"]
        dispatcher_env = _environ(dispatcher)
        for key in ("TENANT_ID", "DATABASE_URL", "TENANT_CURRENCY", "LOG_LEVEL"):
            assert dispatcher_env.get(key) == gunicorn_env.get(key), key
        assert dispatcher_env["WEBHOOKS_ALLOW_LOOPBACK"] == "true" and "JWT_SECRET" not in dispatcher_env
        dispatchers[tenant] = dispatcher
    assert len(set(_environ(pid)["DATABASE_URL"] for pid in schedulers.values())) == 2

    # Its log, beside gunicorn's, shows a finished pass and no secret.
    for tenant in schedulers:
        text = _log_once_it_says(dev.STATE / tenant / "logs" / f"{tenant}-scheduler.log", SCHEDULER_PASS_DONE)
        for secret in localstack.read_env_file(dev.STATE / tenant / "secrets" / f"{tenant}.env").values():
            assert secret not in text
        # The dispatcher starts beside it and may log its first line a little later.
        _log_once_it_says(dev.STATE / tenant / "logs" / f"{tenant}-dispatcher.log", '"webhook dispatcher started"')

    started = time.monotonic()
    dev.down()
    assert time.monotonic() - started < 15, "down waited for a scheduler that ignored SIGTERM"
    for tenant, pid in schedulers.items():
        # Gone and reaped: a zombie of this process would still answer signal 0.
        for process in (pid, dispatchers[tenant]):
            with pytest.raises(ProcessLookupError):
                os.kill(process, 0)
        assert not _schedulers(tenant) and dev.scheduler_running(tenant) is None
        assert not _dispatchers(tenant) and dev.dispatcher_running(tenant) is None


def _log_once_it_says(log: Path, line: str, seconds: float = 30) -> str:
    """The log's text once it contains `line`, failing with its tail after `seconds`."""
    deadline = time.monotonic() + seconds
    while line not in (text := log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert line in text, f"{log.name}: {text[-2000:]}"
    return text


def test_a_tenant_whose_server_does_not_start_leaves_no_scheduler_behind(private_dev):
    import dev

    # The migration takes this setting; the server refuses it (JWT_TTL_SECONDS is at least 60).
    private_dev({"sched-broken": "TENANT_CURRENCY=USD\nTENANT_TIMEZONE=UTC\nJWT_TTL_SECONDS=1\n"})
    with pytest.raises(SystemExit, match="JWT_TTL_SECONDS"):
        dev.up()
    assert dev.running("sched-broken") is None
    assert dev.scheduler_running("sched-broken") is None and not _schedulers("sched-broken")
    assert dev.dispatcher_running("sched-broken") is None and not _dispatchers("sched-broken")


def test_ctrl_c_of_run_stops_the_scheduler_with_the_server_at_once(private_dev):
    import dev
    import tenancy

    private_dev({"sched-ctrl-c": "TENANT_CURRENCY=USD\nTENANT_TIMEZONE=UTC\n"})
    # `scripts/dev run` on the private tenants, with SIGINT raising KeyboardInterrupt as in a terminal.
    code = (
        "import signal, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import dev, tenancy;"
        " signal.signal(signal.SIGINT, signal.default_int_handler);"
        " tenancy.TENANTS_DIR, dev.STATE, dev.PG_PORT = Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]);"
        " dev.run()"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT / "scripts"), str(tenancy.TENANTS_DIR), str(dev.STATE), str(dev.PG_PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output = ""
        for line in run.stdout:
            output += line
            if line.startswith("Serving"):
                break
        server, scheduler = dev.running("sched-ctrl-c"), dev.scheduler_running("sched-ctrl-c")
        dispatcher = dev.dispatcher_running("sched-ctrl-c")
        assert server and scheduler and dispatcher, output
        started = time.monotonic()
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=30) == 0
        assert time.monotonic() - started < 15, "run waited for a scheduler that ignored SIGTERM"
    finally:
        run.kill()
        run.wait()
    # Stopped and reaped by `run` itself before it exited.
    for pid in (server[0], scheduler, dispatcher):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not _schedulers("sched-ctrl-c") and not _dispatchers("sched-ctrl-c")
