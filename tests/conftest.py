"""Fixtures for pipeline-level tests: a throw-away project copy, a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import make_project_copy, running_mlflow_server, shrunk_params


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project copy with the shrunk params, in tmp_path."""
    return make_project_copy(tmp_path / "project", shrunk_params())


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with a SQLite store in tmp_path; yields its URI."""
    with running_mlflow_server(tmp_path / "mlflow-server") as uri:
        yield uri
