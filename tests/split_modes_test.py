"""`prepare_data.split` end to end: prepare_data and the classifiers' entry points without val, and without test.

One project copy runs `train_test` first and then `train`, so the second run also shows that a split file
from an earlier mode does not survive.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support import make_project_copy, run, shrunk_params

pytestmark = pytest.mark.integration

PREPARE = "lab.processes.prepare_data.main"
CLASSIFIERS = "lab.processes.train_standard_classifiers.main"
CLASSIFIER_OUTS = (
    "models/classifier.pkl",
    "metrics/classifiers.json",
    "plots/classifiers/comparison.csv",
    "plots/classifiers/confusion.csv",
    "plots/classifiers/roc.csv",
    "plots/classifiers/confusion_matrix.png",
    "plots/classifiers/roc.png",
    "plots/classifiers/roc_val_all.png",
)


def _run_mode(project: Path, split: str) -> str:
    """Set `prepare_data.split`, run both entry points with their default paths; return their stdout."""
    params = shrunk_params({"prepare_data": {"split": split}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    output = ""
    for module in (PREPARE, CLASSIFIERS):
        done = run([sys.executable, "-m", module], project, MLFLOW_TRACKING_URI=f"sqlite:///{project}/mlflow.db")
        assert done.returncode == 0, done.stderr
        output += done.stdout
    return output


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_train_test_and_train_only_write_every_declared_output(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project", shrunk_params())
    processed = project / "data" / "processed"

    output = _run_mode(project, "train_test")

    assert sorted(p.name for p in processed.iterdir()) == ["schema.json", "test.parquet", "train.parquet"]
    assert set(_json(project / "metrics/data.json")) == {
        "task",
        "n_classes",
        "features",
        "train/rows",
        "train/positive_fraction",
        "test/rows",
        "test/positive_fraction",
    }
    metrics = _json(project / "metrics/classifiers.json")
    assert metrics["selected_by"] == "cv/roc_auc_mean"
    assert not [key for key in metrics if key.startswith("val/")]
    assert 0.9 < metrics["test/roc_auc"] <= 1
    assert "by cv/roc_auc_mean: cv/roc_auc_mean" in output
    comparison = pd.read_csv(project / "plots/classifiers/comparison.csv")
    assert comparison["val/roc_auc"].isna().all()  # no val split: the columns are there, empty
    assert comparison["selected"].sum() == 1
    assert len(pd.read_csv(project / "plots/classifiers/roc.csv")) > 2

    output = _run_mode(project, "train")

    assert sorted(p.name for p in processed.iterdir()) == ["schema.json", "train.parquet"]  # no test.parquet left
    assert _json(project / "metrics/data.json")["train/rows"] == 569
    metrics = _json(project / "metrics/classifiers.json")
    assert metrics["selected_by"] == "cv/roc_auc_mean"
    assert set(metrics) == {"selected", "selected_by", "cv/roc_auc_mean", "cv/roc_auc_std"}
    assert "no test split, so no test metrics" in output
    for path in CLASSIFIER_OUTS:
        assert (project / path).is_file(), path
    assert (project / "plots/classifiers/roc.csv").read_text() == "fpr,tpr,threshold\n"
    assert (project / "plots/classifiers/confusion.csv").read_text() == "actual,predicted\n"

    done = run(["dvc", "plots", "show", "--out", str(tmp_path / "html")], project)
    assert done.returncode == 0, done.stderr
    assert "could not find provided field" not in done.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    for shown in ('id = "ROC_on_test"', 'id = "Classifiers_on_val"', "classifiers_roc_val_all.png"):
        assert shown in html
