"""Stand-ins for running the workflows under `act` on this machine, shared by the workflow tests.

A bare git repository plays GitHub, and a small local action clones from it in place of
actions/checkout; another copies artifacts into a folder in place of actions/upload-artifact. The
runner's environment cache is seeded with the project's own .venv and its manifest, so the environment
action (.github/actions/environment) finds it unchanged and installs nothing.
moto's S3 server (the DVC remote) and a local `mlflow server` come from tests.support.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from lib.paths import PROJ_ROOT
from tests.support import S3_KEYS, VENV_BIN

BUCKET = "reprolab-test"
REMOTE_URL = f"s3://{BUCKET}/storage"
# Besides the pipeline (make_project_copy), what a launch needs: the Makefile (make launch, make goals),
# the lock the runner's environment is keyed on, and pytest's settings.
LAUNCH_FILES = ("Makefile", "Pipfile", "Pipfile.lock", "pytest.ini", "conftest.py")
MANIFEST = PROJ_ROOT / ".ci" / "environment_manifest.py"  # what the environment action checks against
CHECKOUT = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8"
# Stands in for actions/checkout: clone the tagged commit, with every branch and tag, from the bare
# repository that plays GitHub.
CHECKOUT_ACTION = """\
name: checkout from a local bare repository
inputs:
  fetch-depth:
    default: "1"
  persist-credentials:
    default: "true"
runs:
  using: composite
  steps:
    - shell: bash
      env:
        REMOTE: {remote}
      run: |
        set -euo pipefail
        cd "$GITHUB_WORKSPACE"
        find . -mindepth 1 -delete
        git init --quiet .
        git remote add origin "$REMOTE"
        git fetch --quiet origin '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'
        git checkout --quiet --detach "$GITHUB_SHA"
"""

UPLOAD = "actions/upload-artifact@330a01c490aca151604b8cf639adc76d48f6c5d4"
# Stands in for actions/upload-artifact, whose artifact service act lacks offline: the files go to a
# folder per artifact under the runner's `artifacts` folder, and its file:// URL is the artifact-url.
UPLOAD_ACTION = """\
name: upload-artifact into a local folder
inputs:
  name:
    default: artifact
  path:
    required: true
  if-no-files-found:
    default: warn
  include-hidden-files:
    default: "false"
outputs:
  artifact-url:
    value: ${{ steps.copy.outputs.artifact-url }}
runs:
  using: composite
  steps:
    - id: copy
      shell: bash
      env:
        NAME: ${{ inputs.name }}
        SOURCE: ${{ inputs.path }}
        STORE: STORE_DIR
      run: |
        set -euo pipefail
        mkdir -p "$STORE/$NAME"
        if [[ -d "$SOURCE" ]]; then cp -R "$SOURCE"/. "$STORE/$NAME/"; else cp "$SOURCE" "$STORE/$NAME/"; fi
        [[ -n "$(ls -A "$STORE/$NAME")" ]] || { echo "::error::no files at $SOURCE"; exit 1; }
        echo "artifact-url=file://$STORE/$NAME" >>"$GITHUB_OUTPUT"
"""


def git(*args: str, cwd: Path) -> str:
    """Run git in `cwd`; returns its output, stripped. A failure raises."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def publish(clone: Path, root: Path) -> Path:
    """A bare repository under `root` that plays GitHub, with the clone's main branch pushed to it."""
    remote = root / "github.git"
    git("init", "--quiet", "--bare", "-b", "main", str(remote), cwd=root)
    git("remote", "add", "origin", str(remote), cwd=clone)
    git("push", "--quiet", "-u", "origin", "main", cwd=clone)
    return remote


def seed_runner(root: Path, clone: Path, remote: Path) -> None:
    """The runner's side: actions/checkout's stand-in cloning from `remote`, actions/upload-artifact's
    storing under `root`/artifacts, and the environment cache seeded. The environment action's key for this
    lock on the CPU path names the project's own .venv, and the manifest beside it lists the .venv's files
    as they are, so nothing is installed."""
    (root / "checkout").mkdir()
    (root / "checkout" / "action.yml").write_text(CHECKOUT_ACTION.format(remote=remote))
    (root / "upload-artifact").mkdir()
    (root / "upload-artifact" / "action.yml").write_text(UPLOAD_ACTION.replace("STORE_DIR", str(root / "artifacts")))
    lock = hashlib.sha256((clone / "Pipfile.lock").read_bytes()).hexdigest()[:16]
    cache = root / "home" / ".cache" / "reprolab"
    cache.mkdir(parents=True)
    (cache / f"venv-{lock}-cpu").symlink_to(VENV_BIN.parent, target_is_directory=True)
    with (cache / f"venv-{lock}-cpu.manifest").open("w") as manifest:
        subprocess.run([sys.executable, "-I", MANIFEST, cache / f"venv-{lock}-cpu"], stdout=manifest, check=True)


def runner_env(home: Path) -> dict[str, str]:
    """The runner's environment: this one without the project's venv, CI or tracking variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "GITHUB_", "REPROLAB_", "DVC_", "AWS_", "RUNNER_", "ACT"))
        and key not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    paths = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(path for path in paths if path and Path(path).resolve() != VENV_BIN.resolve())
    env.update(HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
    return env


def start_act(
    root: Path, clone: Path, workflow: str, tag: str, run_id: str, message: str, variables: dict[str, str]
) -> subprocess.Popen[str]:
    """Start `workflow` with act for a push of `tag` (on the bare remote's commit), as GitHub would on a
    self-hosted GPU runner; `variables` are the repository variables. Runs started side by side are
    runners of one machine: they share its HOME (and the environment cache in it). act's log goes to
    act-<run_id>/act.log."""
    remote = root / "github.git"
    sha = git("rev-parse", f"{tag}^{{commit}}", cwd=remote)
    event = root / f"event-{tag}.json"
    event.write_text(
        json.dumps(
            {
                "ref": f"refs/tags/{tag}",
                "base_ref": None,
                "before": "0" * 40,
                "after": sha,
                "created": True,
                "deleted": False,
                "forced": False,
                "head_commit": {"id": sha, "message": message},
                "repository": {"name": "reprolab", "full_name": "team/reprolab", "default_branch": "main"},
            }
        )
    )
    workdir = root / f"act-{run_id}"  # act reads .actrc, .env, .secrets and .vars from here: none
    workdir.mkdir()
    args = [
        str(VENV_BIN / "act"),
        "push",
        "--eventpath", str(event),
        "--workflows", str(clone / workflow),
        "--directory", str(clone),
        # Every job on this machine, no Docker; actions/checkout is the local stand-in; nothing fetched.
        "-P", "ubuntu-latest=-self-hosted",
        "-P", "self-hosted=-self-hosted",
        "-P", "gpu=-self-hosted",
        "--local-repository", f"{CHECKOUT}={root / 'checkout'}",
        "--local-repository", f"{UPLOAD}={root / 'upload-artifact'}",
        "--no-skip-checkout",
        "--action-offline-mode",
        "--pull=false",
        "--no-cache-server",
        "--action-cache-path", str(workdir / "act-cache"),
        "--env", f"GITHUB_RUN_ID={run_id}",
        *[arg for key, value in variables.items() for arg in ("--var", f"{key}={value}")],
        *[arg for key, value in S3_KEYS.items() for arg in ("--secret", f"{key}={value}")],
    ]  # fmt: skip
    with (workdir / "act.log").open("w") as log:  # to read when a test fails
        return subprocess.Popen(
            args, cwd=workdir, env=runner_env(root / "home"), stdout=log, stderr=subprocess.STDOUT, text=True
        )


def run_act(
    root: Path, clone: Path, workflow: str, tag: str, run_id: str, message: str, variables: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """start_act, and wait for it (10 minutes at most); act's output is the result's stdout."""
    return finish_act(start_act(root, clone, workflow, tag, run_id, message, variables), root / f"act-{run_id}")


def finish_act(process: subprocess.Popen[str], workdir: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Wait for an act process from start_act; its log in `workdir` becomes the result's stdout."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    output = (workdir / "act.log").read_text()
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")
