"""Local offboarding and what keeps a tenant's URL its own (issue 16, finding 1): scripts/offboard-tenant
--local stops a tenant of `make run`, a new tenant never gets a port a server still holds, and a local
start or `scripts/dev status` never takes another tenant's server for the one it expects. Against the
real stack of scripts/dev.py (PostgreSQL clusters archived with pgBackRest, gunicorns) on private
tenants, and real kubectl without a cluster."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import localstack
import pytest

from tests.conftest import ROOT
from tests.utils import login, new_username, register
from tests.utils.terminal import answering


def _consecutive_free_ports(count: int) -> int:
    """A port p such that p .. p + count - 1 are free (the first tenants' ports)."""
    while any(localstack.port_taken((port := localstack.free_port()) + offset) for offset in range(1, count)):
        pass
    return port


@pytest.fixture
def local(tmp_path) -> Iterator[Path]:
    """scripts/dev.py and offboard-tenant --local on private tenants: an empty tenants/ folder and a
    state folder of their own, the tenants' ports counted from a free one (and their PostgreSQL
    ports from another). Yields the tenants/ folder; everything started is stopped and every
    cluster deleted at the end."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed: run scripts/install")
    import dev
    import tenancy

    (tmp_path / "tenants").mkdir()
    first_app_port, first_pg_port = _consecutive_free_ports(6), _consecutive_free_ports(6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tenancy, "TENANTS_DIR", tmp_path / "tenants")
        patch.setattr(tenancy, "FIRST_LOCAL_PORT", first_app_port)
        patch.setattr(dev, "FIRST_APP_PORT", first_app_port)
        patch.setattr(dev, "STATE", tmp_path / "state")
        patch.setattr(dev, "PG_PORT", first_pg_port)
        try:
            yield tmp_path / "tenants"
        finally:
            dev.down()
            for state in (tmp_path / "state").glob("*/secrets"):
                stack = dev.stack(state.parent.name, dev.FIRST_APP_PORT)
                shutil.rmtree(stack.cluster.directory, ignore_errors=True)
                shutil.rmtree(stack.cluster.archive.directory, ignore_errors=True)


def onboard_locally(name: str) -> int:
    """Write tenants/NAME as scripts/onboard-tenant does for `make run`: its settings, and the port
    tenancy.local_ports gives a new tenant. Returns that port."""
    import tenancy

    port = tenancy.local_ports(name)[name]
    (tenancy.TENANTS_DIR / name).mkdir()
    (tenancy.TENANTS_DIR / name / "tenant.env").write_text("TENANT_CURRENCY=USD\nTENANT_TIMEZONE=UTC\n")
    (tenancy.TENANTS_DIR / name / "local.env").write_text(f"LOCAL_PORT={port}\n")
    return port


def offboard(capsys, *args: str) -> tuple[int, str, str]:
    """scripts/offboard-tenant in this process (so that it sees the private tenants): exit code, stdout, stderr."""
    import offboard_tenant

    capsys.readouterr()
    code = offboard_tenant.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that lives through the test, to stand in a pid file for a server `up` started."""
    process = subprocess.Popen(["sleep", "300"])
    yield process.pid
    process.kill()
    process.wait()


def dev_command(*args: str) -> subprocess.CompletedProcess:
    """scripts/dev.py in a process of its own, on the private tenants and ports of `local`."""
    import dev
    import tenancy

    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import dev, tenancy;"
        " tenancy.TENANTS_DIR, dev.STATE = Path(sys.argv[2]), Path(sys.argv[3]);"
        " tenancy.FIRST_LOCAL_PORT = dev.FIRST_APP_PORT = int(sys.argv[4]); dev.PG_PORT = int(sys.argv[5]);"
        " sys.argv = ['scripts/dev', *sys.argv[6:]]; sys.exit(dev.main())"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "scripts"), str(tenancy.TENANTS_DIR), str(dev.STATE),
         str(dev.FIRST_APP_PORT), str(dev.PG_PORT), *args],
        capture_output=True, text=True, timeout=300,
    )


def issuer(url: str) -> str:
    """The `iss` of a token the server at url signs for a new user: the tenant it serves."""
    with httpx.Client(base_url=url, timeout=30) as client:
        username = new_username()
        register(client, username)
        payload = login(client, username).split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- the reproduction of finding 1 ------------------------------------------------------------------


def test_an_offboarded_tenants_port_goes_to_a_new_tenant_that_answers_as_itself(local, capsys):
    import dev

    acme_port = onboard_locally("acme")
    dev.up()
    acme_pid, acme_url = dev.running("acme")
    assert acme_url == f"http://127.0.0.1:{acme_port}" and issuer(acme_url) == "acme"
    acme_cluster = dev.stack("acme", acme_port).cluster

    code, out, err = offboard(capsys, "acme", "--local", "--yes")
    assert code == 0, err
    assert not (local / "acme").exists()
    assert not alive(acme_pid) and not localstack.port_taken(acme_port)
    assert dev.running("acme") is None and not acme_cluster.is_running()
    # Its data is kept, and the output says where and how to delete it.
    assert (dev.STATE / "acme" / "secrets" / "acme.env").is_file() and (acme_cluster.data_dir / "PG_VERSION").exists()
    assert out.startswith("stopped acme's local server and PostgreSQL\nremoved tenants/acme\n")
    assert str(dev.STATE / "acme") in out and "scripts/offboard-tenant acme --local --delete-data" in out

    # acme's port is free again, so zeta gets it: and zeta, not acme, answers there.
    zeta_port = onboard_locally("zeta")
    assert zeta_port == acme_port
    result = dev_command("up")
    assert result.returncode == 0, result.stderr
    zeta_url = f"http://127.0.0.1:{zeta_port}"
    assert result.stdout.splitlines() == [f"zeta {zeta_url}"]
    assert issuer(zeta_url) == "zeta" and localstack.tenant_at(zeta_url) == "zeta"
    # Progress went to stderr, step by step.
    for step in ("zeta: PostgreSQL on port", "zeta: migrating", f"zeta: starting its server on port {zeta_port}"):
        assert step in result.stderr
    assert not alive(acme_pid)


def test_a_server_left_running_by_a_folder_removed_by_hand_keeps_its_port_and_is_offboarded(local, capsys):
    import dev

    acme_port = onboard_locally("acme")
    dev.up()
    acme_pid, acme_url = dev.running("acme")
    # What finding 1 did: the folder removed by hand, acme's gunicorn still serving.
    shutil.rmtree(local / "acme")
    status = dev_command("status")
    assert status.returncode == 1 and status.stdout == ""
    assert f"acme: its server (pid {acme_pid}) still runs at {acme_url}" in status.stderr
    assert "scripts/offboard-tenant acme --local" in status.stderr

    # The next tenant does not get the port acme's server holds, and answers as itself.
    zeta_port = onboard_locally("zeta")
    assert zeta_port != acme_port
    dev.up()
    assert issuer(f"http://127.0.0.1:{zeta_port}") == "zeta" and issuer(acme_url) == "acme"

    # offboard-tenant --local finds acme by what is left of it, stops it, and later deletes its data.
    code, out, err = offboard(capsys, "acme", "--local", "--yes")
    assert code == 0, err
    assert not alive(acme_pid) and not localstack.port_taken(acme_port)
    status = dev_command("status")
    assert (status.returncode, status.stdout, status.stderr) == (0, f"zeta http://127.0.0.1:{zeta_port}\n", "")

    acme_stack = dev.stack("acme", acme_port)
    data = [dev.STATE / "acme", acme_stack.cluster.directory, acme_stack.cluster.archive.directory]
    assert all(folder.exists() for folder in data)
    code, out, err = offboard(capsys, "acme", "--local", "--delete-data", "--yes")
    assert code == 0, err
    assert not any(folder.exists() for folder in data), data
    assert "deleted its local data" in out
    # Nothing of acme is left to offboard.
    code, out, err = offboard(capsys, "acme", "--local", "--yes")
    assert code == 2 and len(err.splitlines()) == 1 and "unknown tenant" in err


# --- another tenant's server on the port ------------------------------------------------------------


@pytest.fixture
def impostor() -> Iterator[Callable[[int], None]]:
    """A tiny HTTP server answering /health and /health/ready as tenant `intruder`, on a given port."""
    servers: list[ThreadingHTTPServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps({"status": "ready", "tenant": "intruder", "version": "0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    def serve(port: int) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_up_refuses_a_port_another_tenants_server_answers_on(local, impostor):
    import dev

    port = onboard_locally("acme")
    impostor(port)
    result = dev_command("up")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for part in (f"port {port}", "tenant acme", "tenant intruder's server", "scripts/dev down"):
        assert part in lines[0]
    assert dev.running("acme") is None and not dev.stack("acme", port).cluster.is_running()


def test_a_server_that_answers_as_another_tenant_is_never_taken_as_ready(tmp_path, impostor):
    # As when the gunicorn started cannot bind and retries while the port's holder answers.
    port = localstack.free_port()
    impostor(port)
    waiting = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(RuntimeError) as refused:
            localstack._wait_ready(f"http://127.0.0.1:{port}", "acme", waiting, tmp_path / "acme.log", timeout=10)
    finally:
        waiting.kill()
        waiting.wait()
    message = str(refused.value)
    assert all(part in message for part in (f"port {port}", "tenant intruder's server", "not as tenant acme"))


def test_start_server_refuses_a_taken_port_naming_who_holds_it(tmp_path, impostor):
    port = localstack.free_port()
    impostor(port)
    stack = localstack.Stack(tmp_path, 0)
    with pytest.raises(RuntimeError, match=rf"port {port} is taken by tenant intruder's server, so tenant acme's"):
        stack.start_server("acme", {"TENANT_ID": "acme"}, port)
    assert not (tmp_path / "logs" / f"acme-{port}.log").exists(), "gunicorn was started"


def test_a_server_whose_port_is_in_use_says_so(tmp_path, monkeypatch):
    """gunicorn really fails to bind (the check before it starts is bypassed, as in a race)."""
    monkeypatch.setattr(localstack, "port_taken", lambda port: False)
    env = {
        **os.environ, "TENANT_ID": "acme", "DATABASE_URL": "postgresql://acme_app:unused@127.0.0.1:1/acme",
        "JWT_SECRET": "a-signing-key-for-a-server-that-never-binds-0123456789",
    }
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(RuntimeError) as refused:
            localstack.Stack(tmp_path, 0).start_server("acme", env, port)
    assert f"tenant acme's server could not start: port {port} is in use" in str(refused.value)


# --- status -----------------------------------------------------------------------------------------


def test_status_with_nothing_running_says_so_and_exits_3(local):
    onboard_locally("acme")
    result = dev_command("status")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["no tenant is running locally; start them with `make up` (or `make run`)"]


def test_make_status_with_nothing_running_says_so_and_is_no_error(repo):
    shutil.copy2(ROOT / "Makefile", repo)
    for command in (["make", "--no-print-directory", "status"], [str(repo / "scripts" / "dev"), "status"]):
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=120)
        assert result.returncode == (0 if command[0] == "make" else 3), result.stderr
        assert result.stdout == ""
        assert result.stderr == "no tenant is running locally; start them with `make up` (or `make run`)\n"


def test_status_reports_a_server_that_answers_as_another_tenant(local, impostor, live_pid):
    import dev

    port = onboard_locally("acme")
    impostor(port)
    # A pid file of `up` whose process lives while another tenant answers at its URL.
    (dev.STATE / "run").mkdir(parents=True)
    (dev.STATE / "run" / "acme.pid").write_text(f"{live_pid} http://127.0.0.1:{port}\n")
    result = dev_command("status")
    assert result.returncode == 1 and result.stdout == ""
    assert f"acme: http://127.0.0.1:{port} answers as tenant intruder, not as acme" in result.stderr


# --- the ports a new tenant gets --------------------------------------------------------------------


def test_a_new_tenant_gets_no_port_that_is_named_served_bound_or_whose_postgresql_port_is(local, live_pid):
    import dev
    import tenancy

    first = tenancy.FIRST_LOCAL_PORT
    (local / "named").mkdir()
    (local / "named" / "tenant.env").write_text("TENANT_CURRENCY=USD\n")
    (local / "named" / "local.env").write_text(f"LOCAL_PORT={first}\n")
    assert tenancy.local_ports("new") == {"named": first, "new": first + 1}
    # A server `up` started for a tenant whose folder is gone holds first + 1.
    (dev.STATE / "run").mkdir(parents=True)
    (dev.STATE / "run" / "gone.pid").write_text(f"{live_pid} http://127.0.0.1:{first + 1}\n")
    assert tenancy.local_ports("new")["new"] == first + 2
    with socket.socket() as bound, socket.socket() as pg_bound:
        bound.bind(("127.0.0.1", first + 2))
        bound.listen()
        assert tenancy.local_ports("new")["new"] == first + 3
        pg_bound.bind(("127.0.0.1", dev.pg_port(first + 3)))
        pg_bound.listen()
        ports = tenancy.local_ports("new", "newer")
    assert ports == {"named": first, "new": first + 4, "newer": first + 5}


# --- offboarding without a cluster -----------------------------------------------------------------


@pytest.fixture
def repo(tmp_path) -> Path:
    """A copy of the scripts, manifests and tenants, to run the scripts in as a user does."""
    for folder in ("scripts", "kubernetes", "tenants"):
        shutil.copytree(ROOT / folder, tmp_path / "repo" / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "repo" / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path / "repo"


@pytest.mark.parametrize(("answer", "code"), [("acme\n", 0), ("yes\n", 1)])
def test_local_offboarding_on_a_terminal_asks_for_the_tenants_name(repo, answer, code):
    (repo / "tenants" / "acme").mkdir()
    (repo / "tenants" / "acme" / "tenant.env").write_text("TENANT_CURRENCY=USD\n")
    result = answering(answer, lambda terminal: subprocess.run(
        [str(repo / "scripts" / "offboard-tenant"), "acme", "--local"],
        stdin=terminal, capture_output=True, text=True, timeout=120,
    ))
    assert result.returncode == code, result.stderr
    assert "This will stop acme's local server and PostgreSQL and keep its local data" in result.stderr
    assert (repo / "tenants" / "acme").exists() == (code != 0)
    if code == 0:
        # Never started: nothing to stop, no data; only the folder goes.
        prompt, done = result.stdout.split(": ", 1)
        assert prompt == "Type the tenant's name (acme) to go on"
        assert done.splitlines()[:3] == [
            "acme was not running locally", "removed tenants/acme", "acme had no local data",
        ]


@pytest.fixture
def repo_without_cluster(repo, tmp_path, monkeypatch) -> Path:
    """A copy of the repository with a deployable tenant, acme, and a kubeconfig whose API server
    refuses connections."""
    (repo / "tenants" / "acme").mkdir()
    (repo / "tenants" / "acme" / "tenant.env").write_text("TENANT_CURRENCY=USD\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{localstack.free_port()}'}}}}]\n"
        "users: [{name: nobody, user: {}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: nobody}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBECTL", raising=False)
    return repo


def offboard_without_cluster(repo: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed (1.32 or newer)")
    return subprocess.run(
        [str(repo / "scripts" / "offboard-tenant"), "acme", *args, "--yes"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("args", [(), ("--delete-data",)])
def test_offboarding_without_a_reachable_cluster_is_one_line_pointing_to_local(repo_without_cluster, args):
    result = offboard_without_cluster(repo_without_cluster, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no Kubernetes cluster is reachable in context gone" in lines[0]
    assert "scripts/offboard-tenant acme --local" in lines[0]
    assert (repo_without_cluster / "tenants" / "acme" / "tenant.env").is_file()


def test_offboarding_without_a_current_context_is_one_line_pointing_to_local(repo_without_cluster, tmp_path,
                                                                              monkeypatch):
    (tmp_path / "empty-kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "empty-kubeconfig"))
    result = offboard_without_cluster(repo_without_cluster)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "kubectl has no current context" in lines[0] and "nothing was deleted" in lines[0]
    assert "scripts/offboard-tenant acme --local" in lines[0]
    assert (repo_without_cluster / "tenants" / "acme" / "tenant.env").is_file()
