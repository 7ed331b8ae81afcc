"""A tenant overlay rendered from a copy with optional components enabled, as an operator would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
KUBERNETES_DIR = ROOT / "kubernetes"
TENANTS_DIR = ROOT / "tenants"


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed: install kubectl 1.32 or newer, which bundles kustomize 5", pytrace=False)
    return path


def render_overlay(work: Path, tenant: str, snippet: dict | None) -> list[dict]:
    """The tenant's overlay, with `snippet` (components:, replacements:, ...) appended to its
    kustomization.yaml, rendered by `kubectl kustomize` from a copy under `work`."""
    copy = work / ("enabled" if snippet else "plain")
    if not (copy / "kubernetes").exists():
        shutil.copytree(KUBERNETES_DIR, copy / "kubernetes")
    overlay = copy / "tenants" / tenant
    shutil.copytree(TENANTS_DIR / tenant, overlay)
    if snippet:
        with (overlay / "kustomization.yaml").open("a") as kustomization:
            kustomization.write(yaml.safe_dump(snippet, sort_keys=False))
    result = subprocess.run(
        [kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {tenant}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
