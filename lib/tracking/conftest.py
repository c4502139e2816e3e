"""Fixtures for the tracking modules' tests: a clean environment, a fake git, a real local store."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.tracking import provenance, store
from lib.tracking.journal import ENV_MODE
from lib.tracking.provenance import ENV_BRANCH, ENV_PIPELINE_RUN_ID, pipeline_run_id
from lib.tracking.store import ENV_STRICT, ENV_URI

# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.

# Variables that steer run tags or HTTP requests; each test starts without them.
_ENVIRONMENT = (
    ENV_URI,
    ENV_PIPELINE_RUN_ID,
    ENV_BRANCH,
    "GITHUB_SHA",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "GITHUB_REF_TYPE",
    "RUNNER_NAME",
    "DVC_EXP_NAME",
    "DVC_ROOT",
    ENV_MODE,
    ENV_STRICT,
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No CI, proxy or tracking variables from the outer shell, no cached pipeline run id; runs journaled."""
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    pipeline_run_id.cache_clear()
    monkeypatch.setattr(store, "warned_unreachable", False)
    monkeypatch.setenv(ENV_MODE, "journal")
    yield
    pipeline_run_id.cache_clear()


@pytest.fixture
def fake_git(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, ...], str | None]:
    """Answers to `git` commands, keyed by their arguments; the real git is never run."""
    answers: dict[tuple[str, ...], str | None] = {
        ("rev-parse", "HEAD"): "c0ffee",
        ("rev-parse", "--abbrev-ref", "HEAD"): "feature/x",
        ("status",): "",
    }
    monkeypatch.setattr(provenance, "git", lambda *args: answers[args[:1] if args[0] == "status" else args])
    return answers


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_mlflow_uri: None) -> str:
    """A fresh SQLite MLflow store in tmp_path, with artifacts under tmp_path too. A process-wide URI that
    another test in this worker set would outrank the environment: it is cleared for the test."""
    from mlflow.tracking._tracking_service import utils

    utils._tracking_uri = None
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv(ENV_URI, uri)
    monkeypatch.setenv(ENV_PIPELINE_RUN_ID, "pipe-42")
    for name, value in store._HTTP_DEFAULTS.items():  # prepare() sets these; restore them after
        monkeypatch.setenv(name, value)
    return uri


@pytest.fixture
def restore_mlflow_uri() -> Iterator[None]:
    """use_local_store() sets MLflow's process-wide tracking URI, which outranks the environment: undo it."""
    from mlflow.tracking._tracking_service import utils

    saved = utils._tracking_uri
    yield
    utils._tracking_uri = saved
