"""The GitHub workflows: linted with actionlint (and shellcheck), and checked for what each promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".venv" / "bin" / "actionlint"
DEPLOY_SCRIPTS = ROOT / ".github" / "deploy"


def _workflow(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _steps_text(workflow: dict) -> str:
    return "\n".join(
        str(step.get("run", "")) + str(step.get("uses", "")) + str(step.get("with", ""))
        for job in workflow["jobs"].values()
        for step in job["steps"]
    )


def test_actionlint_and_shellcheck_find_nothing():
    assert ACTIONLINT.exists(), "actionlint is missing: run scripts/install"
    assert shutil.which("shellcheck"), "shellcheck is missing: run scripts/install (as root) or apt-get install it"
    result = subprocess.run(
        [str(ACTIONLINT), "-color=false", "-shellcheck", shutil.which("shellcheck")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["ci.yml", "publish.yml", "deploy.yml", "e2e.yml"])
def test_workflow_exists_with_least_privilege(name):
    workflow = _workflow(name)
    assert "permissions" in workflow, f"{name} must set its token permissions"
    assert workflow["permissions"].get("contents") == "read"


def test_ci_lints_type_checks_and_tests_against_a_postgres_service_container():
    workflow = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    jobs = workflow["jobs"]
    assert {"lint", "test", "manifests"} <= set(jobs)
    lint = _steps_text({"jobs": {"lint": jobs["lint"]}})
    assert "make lint" in lint and "make typecheck" in lint
    test = jobs["test"]
    assert test["services"]["postgres"]["image"].startswith("postgres:1")
    assert test["env"]["TEST_POSTGRES_URL"].startswith("postgresql://")
    assert "make test" in _steps_text({"jobs": {"test": test}})
    assert "tests/ops/test_kubernetes.py" in _steps_text({"jobs": {"manifests": jobs["manifests"]}})


def test_publish_is_multi_arch_with_sbom_provenance_and_no_long_lived_keys():
    workflow = _workflow("publish.yml")
    text = (WORKFLOWS / "publish.yml").read_text()
    assert workflow["permissions"]["id-token"] == "write"
    build = next(
        step for step in workflow["jobs"]["image"]["steps"] if "build-push-action" in step.get("uses", "")
    )
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["sbom"] is True and build["with"]["provenance"]
    assert "role-to-assume" in text
    assert "AWS_ACCESS_KEY_ID" not in text and "aws-secret-access-key" not in text


def test_deploy_applies_one_or_all_tenants_behind_an_environment_gate():
    workflow = _workflow("deploy.yml")
    assert workflow["on"]["workflow_dispatch"]["inputs"]["tenant"]["default"] == "all"
    job = workflow["jobs"]["deploy"]
    assert job["environment"]
    text = _steps_text(workflow)
    # The steps run the scripts of .github/deploy/ (tests/ops/test_deploy_tenants.py runs them).
    assert '.github/deploy/choose-tenants.sh "$TENANT"' in text
    assert ".github/deploy/deploy-tenants.sh" in text
    scripts = text + "".join(path.read_text() for path in DEPLOY_SCRIPTS.glob("*.sh"))
    for expected in ("secrets.KUBECONFIG", "kubectl apply -k", "rollout status", "/health/ready", "LOCAL_ONLY",
                     "imagetools inspect", "GITHUB_STEP_SUMMARY", "::error::"):
        assert expected in scripts or expected in (WORKFLOWS / "deploy.yml").read_text(), expected


def test_deploy_chooses_tenants_before_it_touches_the_cluster_and_deploys_them_in_one_step():
    """The choice fails the job before any kubectl call; one step then takes every tenant, so
    one tenant's failure cannot stop the others at a step's boundary."""
    steps = _workflow("deploy.yml")["jobs"]["deploy"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    choose = next(i for i, run in enumerate(runs) if "choose-tenants.sh" in run)
    deploy = [i for i, run in enumerate(runs) if "deploy-tenants.sh" in run]
    assert deploy == [choose + 1] and choose == len(runs) - 2
    assert not any("kubectl" in run for run in runs), "every cluster call belongs to deploy-tenants.sh"


def test_e2e_onboards_on_kind_runs_postman_and_probes_cross_tenant_isolation():
    workflow = _workflow("e2e.yml")
    text = _steps_text(workflow)
    assert "helm/kind-action" in text and "kind load docker-image" in text
    assert "scripts/onboard-tenant e2e" in text and "--apply" in text
    assert "newman run tests/postman/finance.postman_collection.json" in text
    assert "postgres.finance-e2e.svc" in text and "Failed" in text
    # The scheduler's pass and the webhook dispatcher run on kind too.
    assert "--from=cronjob/finance-scheduler" in text and "deployment/finance-webhooks" in text
    kind = next(step for step in workflow["jobs"]["kind"]["steps"] if "kind-action" in step.get("uses", ""))
    assert (ROOT / kind["with"]["config"]).exists()


def test_every_file_the_workflows_run_exists():
    text = "\n".join(path.read_text() for path in WORKFLOWS.glob("*.yml"))
    for path in ("scripts/install", "scripts/onboard-tenant", "tests/postman/finance.postman_collection.json",
                 ".github/deploy/choose-tenants.sh", ".github/deploy/deploy-tenants.sh"):
        assert path in text
        assert (ROOT / path).exists(), path


def test_one_postgresql_release_everywhere():
    """Kubernetes, compose, CI's service container and the e2e probe run the same PostgreSQL, to the
    digest. Dependabot updates only compose's copy: its pull request fails here until the others follow."""
    base = yaml.safe_load((ROOT / "kubernetes" / "base" / "kustomization.yaml").read_text())
    postgres = next(image for image in base["images"] if image["name"] == "postgres")
    reference = f"postgres:{postgres['newTag']}@{postgres['digest']}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = {service["image"] for service in compose["services"].values() if "image" in service}
    assert {image for image in images if image.startswith("postgres:")} == {reference}
    assert _workflow("ci.yml")["jobs"]["test"]["services"]["postgres"]["image"] == reference
    e2e = (WORKFLOWS / "e2e.yml").read_text()
    assert e2e.count(reference) == 2 and e2e.count("postgres:") == 2
