"""Fixtures for pipeline-level tests: a throw-away copy of the project with a shrunk params file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from lib.paths import PROJ_ROOT

VENV_BIN = Path(sys.executable).parent
# What a project copy needs to run the pipeline: code, pipeline definition, params, DVC config.
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", ".gitignore")
PROJECT_DIRS = ("lab", "lib")

SHRUNK = {
    "train_standard_classifiers": {
        "models": ["logistic_regression", "naive_bayes", "random_forest"],
        "cv_folds": 3,
        "hyperparams": {"random_forest": {"n_estimators": 10, "max_depth": 4}},
    },
    "train_dnn_pytorch": {"epochs": 3, "hidden_layers": [8], "batch_size": 64},
}


def shrunk_params(overrides: dict | None = None) -> dict:
    """The project's real params.yaml with SHRUNK (and `overrides`) merged into its sections."""
    params = yaml.safe_load((PROJ_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for source in (SHRUNK, overrides or {}):
        for section, values in source.items():
            if isinstance(values, dict):
                params[section] = {**params[section], **values}
            else:
                params[section] = values
    return params


def clean_env(**extra: str) -> dict[str, str]:
    """This environment with the project's venv first on PATH and no tracking or CI variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "GITHUB_", "REPROLAB_", "DVC_")) and k != "RUNNER_NAME"
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # tests never reach the network
    env.update(extra)
    return env


def run(args: Sequence[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd` with `clean_env`, capturing text output."""
    return subprocess.run(
        list(args), cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def make_project_copy(destination: Path, params: dict) -> Path:
    """Copy the project's code and pipeline into `destination`, as a git repo with one commit."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJ_ROOT / name, target)
    for name in PROJECT_DIRS:
        shutil.copytree(
            PROJ_ROOT / name,
            destination / name,
            ignore=shutil.ignore_patterns("__pycache__", "*_test.py", "conftest.py"),
        )
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=destination, check=True, capture_output=True)
    return destination


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project copy with the shrunk params, in tmp_path."""
    return make_project_copy(tmp_path / "project", shrunk_params())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with a SQLite store in tmp_path; yields its URI."""
    import time
    import urllib.request

    port = free_port()
    root = tmp_path / "mlflow-server"
    root.mkdir()
    process = subprocess.Popen(
        [
            str(VENV_BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=root,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("w"),
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"mlflow server did not start: {log}") from None
                time.sleep(0.5)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
