"""Tests for lib/experiments.py: MLflow runs and DVC's experiments, read by the tools, as comparison tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from lib import experiments

pytestmark = pytest.mark.unittest


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A local MLflow store with two pipeline runs (the second re-ran only the network) and a nested run."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    ids = {}
    for name, stage, pipeline, start, metrics, params, parent in [
        ("d2", "train_dnn_pytorch", "p2", 3000, {"test/roc_auc": 0.97}, {"train_dnn_pytorch.lr": "0.01"}, None),
        ("c1", "train_standard_classifiers", "p1", 1000, {"test/roc_auc": 0.99}, {"seed": "42"}, None),
        ("d1", "train_dnn_pytorch", "p1", 2000, {"test/roc_auc": 0.95}, {"train_dnn_pytorch.lr": "0.001"}, None),
        ("k1", "train_standard_classifiers", "p1", 1100, {"val/roc_auc": 0.9}, {"C": "1.0"}, "c1"),
    ]:
        tags = {"dvc.stage": stage, "pipeline_run_id": pipeline, "git.commit": f"{pipeline}0123456789"}
        tags.update({"mlflow.parentRunId": ids[parent]} if parent else {})
        run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=name)
        ids[name] = run.info.run_id
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run.info.run_id, key, value, step=0)
        for step in (1, 2):
            client.log_metric(run.info.run_id, "val/loss", 1.0 / step, step=step)
        client.set_terminated(run.info.run_id, end_time=start + 10)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def runs(store: str) -> pd.DataFrame:
    return experiments.runs_frame("e", store, nested=True)


def test_runs_filter_matches_every_tag_and_escapes_quotes() -> None:
    assert experiments.runs_filter() == ""
    assert experiments.runs_filter({"git.branch": "main"}, "abc") == (
        "tags.`git.branch` = 'main' and tags.`pipeline_run_id` = 'abc'"
    )
    assert experiments.runs_filter({"note": "it's"}) == "tags.`note` = 'it\\'s'"


def test_runs_frame_orders_by_start_and_prefixes_params_and_metrics(runs: pd.DataFrame, store: str) -> None:
    assert list(runs["run_name"]) == ["c1", "k1", "d1", "d2"]
    assert list(runs.columns[: len(experiments.RUN_COLUMNS)]) == list(experiments.RUN_COLUMNS)
    first = runs.iloc[0]
    assert (first["stage"], first["pipeline_run_id"]) == ("train_standard_classifiers", "p1")
    assert first["commit"] == "p101234"  # the first seven characters of git.commit
    assert first["metrics.test/roc_auc"] == 0.99 and first["params.seed"] == "42"
    assert runs.loc[runs["run_name"] == "k1", "parent_run_id"].item() == first["run_id"]
    assert runs["start_time"].dt.tz is not None
    assert list(experiments.runs_frame("e", store)["run_name"]) == ["c1", "d1", "d2"]  # stage runs only
    assert list(experiments.runs_frame("e", store, pipeline_run_id="p2")["run_name"]) == ["d2"]
    with pytest.raises(experiments.ReprolabError, match="no experiment 'other' \\(run the pipeline first\\)"):
        experiments.runs_frame("other", store)
    mlflow.MlflowClient(store).create_experiment("empty")
    assert list(experiments.runs_frame("empty", store).columns) == list(experiments.RUN_COLUMNS)


def test_pipeline_table_puts_each_stage_metric_of_a_pipeline_run_in_one_row(runs: pd.DataFrame) -> None:
    table = experiments.pipeline_table(runs, ["test/roc_auc"])
    assert list(table.index) == ["p1", "p2"]
    assert table.loc["p1", "commit"] == "p101234"
    assert table.loc["p1", "train_standard_classifiers/test/roc_auc"] == 0.99
    assert table.loc["p1", "train_dnn_pytorch/test/roc_auc"] == 0.95
    assert math.isnan(table.loc["p2", "train_standard_classifiers/test/roc_auc"])  # not re-run: no run, no value
    assert "val/roc_auc" not in " ".join(table.columns)  # nested runs are not stage runs


def test_differing_params_keeps_only_params_that_change(runs: pd.DataFrame) -> None:
    network = runs[runs["stage"] == "train_dnn_pytorch"]
    assert list(experiments.differing_params(network, keep=["run_id"]).columns) == [
        "run_id",
        "params.train_dnn_pytorch.lr",
    ]
    # Across stages a param set in some runs and missing in others differs too.
    assert "params.seed" in experiments.differing_params(runs).columns


def test_metric_histories_are_long_format_from_the_first_epoch(runs: pd.DataFrame, store: str) -> None:
    first = runs["run_id"].iloc[0]

    history = experiments.metric_histories([first], ["val/loss", "test/roc_auc"], store)

    assert history.to_dict("records") == [
        {"run_id": first, "metric": "val/loss", "step": 1, "value": 1.0},
        {"run_id": first, "metric": "val/loss", "step": 2, "value": 0.5},
    ]  # the summary at step 0 is left out


def test_curves_figure_draws_one_panel_per_metric_and_one_line_per_run() -> None:
    history = pd.DataFrame(
        [
            {"run_id": run, "metric": metric, "step": step, "value": 0.1 * step}
            for run in ("r1", "r2")
            for metric in ("train/loss", "val/loss")
            for step in (1, 2, 3)
        ]
    )
    figure = experiments.curves_figure(history, {"r1": "first"})
    assert [axes.get_title() for axes in figure.axes] == ["train/loss", "val/loss"]
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["first", "r2"]


def _write(root: Path, lr: float, auc: float) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 42, "train_dnn_pytorch": {"lr": lr, "hidden": [16]}}))
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics/dnn.json").write_text(json.dumps({"test/roc_auc": auc}))
    (root / "metrics/classifiers.json").write_text(json.dumps({"test/roc_auc": 0.99, "selected": "knn"}))


def test_dvc_experiments_lists_commits_and_their_experiments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dvc.repo import Repo

    from lib.git import git

    for name, value in (("NAME", "test"), ("EMAIL", "test@example.invalid")):
        monkeypatch.setenv(f"GIT_AUTHOR_{name}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{name}", value)
    monkeypatch.chdir(tmp_path)  # DVC's git backends look at the working directory's repository too
    git("init", "-q", "-b", "main", cwd=tmp_path)
    Repo.init(tmp_path).close()
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: 'true'\n    params: [seed, train_dnn_pytorch]\n"
        "metrics: [metrics/dnn.json, metrics/classifiers.json]\n"
    )
    (tmp_path / "params.yaml").write_text("seed: 42\ntrain_dnn_pytorch: {lr: 0.001, hidden: [16]}\n")
    git("add", "-A", cwd=tmp_path)
    git("commit", "-qm", "before the first results", cwd=tmp_path)
    _write(tmp_path, 0.001, 0.94)
    git("add", "-A", cwd=tmp_path)
    git("commit", "-qm", "one", cwd=tmp_path)
    _write(tmp_path, 0.01, 0.98)
    with Repo(tmp_path) as repo:
        repo.experiments.save(name="lr-high")

    frame = experiments.dvc_experiments(tmp_path)

    commit = git("rev-parse", "--short=7", "HEAD", cwd=tmp_path)
    assert list(frame["rev"])[:2] == ["workspace", commit]
    assert list(frame["kind"]) == ["baseline", "baseline", "branch_base", "baseline"]
    assert list(frame["name"])[1:3] == ["main", "lr-high"] and pd.isna(frame.iloc[3]["name"])  # a branch's name
    assert math.isnan(frame.iloc[3]["metrics.dnn/test/roc_auc"])  # no metrics file yet: DVC's "!" is missing
    assert frame["metrics.dnn/test/roc_auc"].dtype == float
    experiment = frame.iloc[2]
    assert (experiment["name"], experiment["baseline"]) == ("lr-high", commit)
    assert experiment["metrics.dnn/test/roc_auc"] == 0.98
    assert frame.iloc[1]["metrics.classifiers/test/roc_auc"] == 0.99
    assert frame.iloc[1]["metrics.selected"] == "knn"  # a name only one metrics file has: DVC leaves the file out
    assert frame.iloc[1]["params.train_dnn_pytorch.hidden"] == "[16]"
    differing = experiments.differing_params(frame.iloc[1:3], keep=["rev"])
    assert list(differing.columns) == ["rev", "params.train_dnn_pytorch.lr"]  # the rows with results
    assert experiments.metric_column(frame, "dnn/test/roc_auc") == "metrics.dnn/test/roc_auc"
    assert experiments.metric_column(frame, "classifiers/selected") == "metrics.selected"
    with pytest.raises(experiments.ReprolabError, match=r"no metric dnn/val/auc \(metrics: classifiers/test/roc_auc, "):
        experiments.metric_column(frame, "dnn/val/auc")


def test_dvc_experiments_outside_a_repository_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(experiments.ReprolabError, match=r"dvc exp show in .* failed"):
        experiments.dvc_experiments(tmp_path)
