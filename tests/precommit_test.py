"""The quality gates: every hook in .pre-commit-config.yaml installs without GitHub, and the secrets scan works."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.support import VENV_BIN, run

CONFIG = ".pre-commit-config.yaml"
BASELINE = ".secrets.baseline"
GATES = {
    "ruff",
    "ruff-format",
    "check-yaml",
    "check-toml",
    "check-json",
    "end-of-file-fixer",
    "trailing-whitespace",
    "check-added-large-files",
    "check-merge-conflict",
    "detect-secrets",
    "nbstripout",
    "actionlint",
    "zizmor",
    "dvc-pre-commit",
    "dvc-pre-push",
    "dvc-post-checkout",
}
# AWS's documented example key pair, put together at run time so that this file holds no secret.
EXAMPLE_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
EXAMPLE_KEY_BODY = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def scan_repo(tmp_path: Path) -> Path:
    """A git repo in tmp_path holding only the project's pre-commit config and secrets baseline."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for name in (CONFIG, BASELINE):
        shutil.copy2(PROJ_ROOT / name, repo / name)
    return repo


def detect_secrets(repo: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    """Stage `text` as file `name` in `repo` and run the detect-secrets hook on it, as a commit would."""
    (repo / name).write_text(text, encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    return run([str(VENV_BIN / "pre-commit"), "run", "detect-secrets", "--files", name], cwd=repo)


@pytest.mark.unittest
def test_config_runs_every_gate_from_local_hooks_only() -> None:
    config = yaml.safe_load((PROJ_ROOT / CONFIG).read_text(encoding="utf-8"))
    assert {repo["repo"] for repo in config["repos"]} == {"local"}, "a remote hook repo needs GitHub to install"
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    missing = GATES - {hook["id"] for hook in hooks}
    assert not missing, f"hooks missing: {sorted(missing)}"
    unpinned = [dep for hook in hooks for dep in hook.get("additional_dependencies", []) if "==" not in dep]
    assert not unpinned, f"pin these to one version: {unpinned}"
    assert config["default_install_hook_types"] == ["pre-commit", "pre-push", "post-checkout"]
    stages = {hook["id"]: hook.get("stages") for hook in hooks if hook["id"].startswith("dvc-")}
    assert stages == {
        "dvc-pre-commit": ["pre-commit"],
        "dvc-pre-push": ["pre-push"],
        "dvc-post-checkout": ["post-checkout"],
    }
    audits = {hook["id"]: re.compile(hook["files"]) for hook in hooks if hook["id"] in {"actionlint", "zizmor"}}
    for path in (".github/workflows/experiments.yml", ".github/actions/environment/action.yml"):
        assert all(pattern.search(path) for pattern in audits.values()), f"{path} is not audited"


@pytest.mark.integration
def test_secrets_scan_rejects_an_aws_key_and_names_the_file(scan_repo: Path) -> None:
    leak = f"[default]\naws_access_key_id = {EXAMPLE_KEY_ID}\naws_secret_access_key = {EXAMPLE_KEY_BODY}\n"

    result = detect_secrets(scan_repo, "credentials.ini", leak)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "AWS Access Key" in output and "credentials.ini:2" in output, output


@pytest.mark.integration
def test_secrets_scan_passes_a_clean_file(scan_repo: Path) -> None:
    result = detect_secrets(scan_repo, "settings.ini", "[default]\nregion = eu-west-1\n")

    assert result.returncode == 0, result.stdout + result.stderr
