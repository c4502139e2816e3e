"""The environment action (.github/actions/environment): an environment in the runner's cache that changed
after it was built is found, and built again before any job uses it.

Runs the action's install step on this machine for a lock with no packages (nothing to download): the
environment is then Python's own venv with pip, which is what the test tampers with.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.act_support import runner_env

pytestmark = pytest.mark.integration

ACTION = PROJ_ROOT / ".github" / "actions" / "environment" / "action.yml"
PIPFILE = '[[source]]\nurl = "https://pypi.org/simple"\nverify_ssl = true\nname = "pypi"\n'
LOCK = {
    "_meta": {
        "hash": {"sha256": "0" * 64},
        "pipfile-spec": 6,
        "requires": {},
        "sources": [{"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": True}],
    },
    "default": {},
    "develop": {},
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checkout as the action sees it: the Makefile (the pipenv version), the manifest script, a lock."""
    workspace = tmp_path / "workspace"
    (workspace / ".ci").mkdir(parents=True)
    shutil.copy2(PROJ_ROOT / "Makefile", workspace / "Makefile")
    shutil.copy2(PROJ_ROOT / ".ci" / "environment_manifest.py", workspace / ".ci" / "environment_manifest.py")
    (workspace / "Pipfile").write_text(PIPFILE)
    (workspace / "Pipfile.lock").write_text(json.dumps(LOCK, indent=4))
    return workspace


def install(workspace: Path) -> subprocess.CompletedProcess[str]:
    """The action's install step, on a CPU runner whose HOME (and cache) is beside `workspace`."""
    steps = yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"]
    script = steps[0]["run"]
    for name in ("github-path", "github-env"):
        (workspace.parent / name).write_text("")
    env = runner_env(workspace.parent / "home") | {
        "ALLOW_CPU_RUNNER": "true",
        "GITHUB_PATH": str(workspace.parent / "github-path"),
        "GITHUB_ENV": str(workspace.parent / "github-env"),
    }
    return subprocess.run(
        ["bash", "-c", script], cwd=workspace, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_a_changed_environment_is_found_and_built_again(workspace: Path) -> None:
    built = install(workspace)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "creating the environment" in built.stdout
    [venv] = (workspace.parent / "home" / ".cache" / "reprolab").glob("venv-*-cpu")
    assert (workspace / ".venv").resolve() == venv
    assert f"VIRTUAL_ENV={venv}\n" in (workspace.parent / "github-env").read_text()
    assert "PYTHONDONTWRITEBYTECODE=1\n" in (workspace.parent / "github-env").read_text()

    reused = install(workspace)
    assert reused.returncode == 0, reused.stdout + reused.stderr
    assert f"reusing the environment {venv}: every file as it was built" in reused.stdout

    # What a run could leave behind: a changed module, and a file Python runs at every start.
    [pip] = venv.glob("lib/python3*/site-packages/pip/__init__.py")
    original = pip.read_text()
    pip.write_text(original + "\nimport os  # changed\n")
    (pip.parent.parent / "sitecustomize.py").write_text("print('left by an earlier run')\n")

    rebuilt = install(workspace)

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"the environment {venv} changed after it was built: building it again" in rebuilt.stdout
    assert "sitecustomize.py" in rebuilt.stdout and "pip/__init__.py" in rebuilt.stdout
    assert "creating the environment" in rebuilt.stdout
    assert pip.read_text() == original
    assert not (pip.parent.parent / "sitecustomize.py").exists()
    again = install(workspace)
    assert f"reusing the environment {venv}: every file as it was built" in again.stdout
