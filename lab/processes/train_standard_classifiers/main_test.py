"""The stage's entry point for real on each task: processed splits and a schema written as prepare_data would,
then every declared output, the task's metrics and a task tag on the MLflow runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from lib.datasets import Splits
from tests.data import MULTICLASS, REGRESSION, write_processed
from tests.support import make_project_copy, run, shrunk_params

pytestmark = pytest.mark.integration

MODULE = "lab.processes.train_standard_classifiers.main"
MODELS = ["logistic_regression", "ridge", "knn", "random_forest"]


def _declared_outputs(project: Path) -> list[str]:
    stage = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train_standard_classifiers"]
    return [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for key in ("outs", "metrics", "plots")
        for entry in stage[key]
    ]


def _run_stage(tmp_path: Path, splits: Splits, schema: object) -> tuple[Path, str]:
    params = shrunk_params({"train_standard_classifiers": {"models": MODELS}})
    project = make_project_copy(tmp_path / "project", params)
    write_processed(splits, schema, project / "data/processed")
    done = run([sys.executable, "-m", MODULE], project, MLFLOW_TRACKING_URI=f"sqlite:///{project}/mlflow.db")
    assert done.returncode == 0, done.stderr
    return project, done.stdout + done.stderr


def _runs(project: Path) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("reprolab-example")
    return client.search_runs([experiment.experiment_id])


def test_multiclass_trains_classifiers_and_writes_the_multiclass_metrics_and_plots(
    tmp_path: Path, multiclass_splits: Splits
) -> None:
    project, output = _run_stage(tmp_path, multiclass_splits, MULTICLASS)

    assert all((project / path).is_file() for path in _declared_outputs(project))
    metrics = json.loads((project / "metrics/classifiers.json").read_text())
    assert metrics["selected_by"] == "val/f1_macro"
    names = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")
    assert {f"test/{name}" for name in names} <= set(metrics) and "test/f1" not in metrics
    assert 0.6 < metrics["test/accuracy"] <= 1 and 0.75 < metrics["test/roc_auc"] <= 1
    assert "skipping ridge: it has no classifier (task multiclass)" in output
    confusion = pd.read_csv(project / "plots/classifiers/confusion.csv")
    assert set(confusion["actual"]) == {"high", "low", "medium"}
    assert set(pd.read_csv(project / "plots/classifiers/roc.csv")["class"]) == {"high", "low", "medium"}
    assert pd.read_csv(project / "plots/classifiers/predictions.csv").empty
    runs = _runs(project)
    assert len(runs) == 4 and {run.data.tags["task"] for run in runs} == {"multiclass"}


def test_regression_trains_regressors_and_writes_the_regression_metrics_and_plots(
    tmp_path: Path, regression_splits: Splits
) -> None:
    project, output = _run_stage(tmp_path, regression_splits, REGRESSION)

    assert all((project / path).is_file() for path in _declared_outputs(project))
    metrics = json.loads((project / "metrics/classifiers.json").read_text())
    assert (metrics["selected"], metrics["selected_by"]) == ("ridge", "val/rmse")
    assert {"test/rmse", "test/mae", "test/r2", "cv/rmse_mean"} <= set(metrics)
    assert metrics["test/r2"] > 0.9 and 0 < metrics["test/mae"] <= metrics["test/rmse"] < 20
    assert "skipping logistic_regression: it has no regressor (task regression)" in output
    predictions = pd.read_csv(project / "plots/classifiers/predictions.csv")
    assert list(predictions.columns) == ["actual", "predicted", "residual"]
    assert len(predictions) == len(regression_splits["test"].labels)
    assert pd.read_csv(project / "plots/classifiers/confusion.csv").empty
    runs = _runs(project)
    assert len(runs) == 4 and {run.data.tags["task"] for run in runs} == {"regression"}
