"""Fixtures for pipeline-level tests: a throw-away project copy, a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import make_project_copy, running_mlflow_server, running_team_stack, shrunk_params


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project copy with the shrunk params, in tmp_path."""
    return make_project_copy(tmp_path / "project", shrunk_params())


@pytest.fixture(params=["sqlite", "postgresql"])
def mlflow_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1, once with a SQLite store in tmp_path and once on PostgreSQL with
    its artefacts on an S3 API server, as the team's; yields its URI."""
    if request.param == "sqlite":
        with running_mlflow_server(tmp_path / "mlflow-server") as uri:
            yield uri
    else:
        with running_team_stack(tmp_path) as (uri, _):
            yield uri
