"""Tests for lib/experiments.py: MLflow runs and `dvc exp show` output shaped into comparison tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

from lib import experiments

pytestmark = pytest.mark.unittest


def _run(
    run_id: str,
    stage: str,
    pipeline: str,
    start: int,
    metrics: dict[str, float],
    params: dict[str, str],
    parent: str | None = None,
) -> Run:
    tags = {"dvc.stage": stage, "pipeline_run_id": pipeline, "git.commit": f"{pipeline}0123456789"}
    if parent:
        tags["mlflow.parentRunId"] = parent
    return Run(
        RunInfo(run_id, "1", "me", "FINISHED", start, start + 10, "active", run_name=stage),
        RunData(
            metrics=[Metric(key, value, 0, 0) for key, value in metrics.items()],
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        ),
    )


@pytest.fixture
def runs() -> pd.DataFrame:
    """Two pipeline runs: the second re-ran only the network, with another learning rate."""
    return experiments.runs_to_frame(
        [
            _run("d2", "train_dnn_pytorch", "p2", 3000, {"test/roc_auc": 0.97}, {"train_dnn_pytorch.lr": "0.01"}),
            _run("c1", "train_standard_classifiers", "p1", 1000, {"test/roc_auc": 0.99}, {"seed": "42"}),
            _run("d1", "train_dnn_pytorch", "p1", 2000, {"test/roc_auc": 0.95}, {"train_dnn_pytorch.lr": "0.001"}),
            _run("k1", "train_standard_classifiers", "p1", 1100, {"val/roc_auc": 0.9}, {"C": "1.0"}, parent="c1"),
        ]
    )


def test_runs_filter_matches_every_tag_and_escapes_quotes() -> None:
    assert experiments.runs_filter() == ""
    assert experiments.runs_filter({"git.branch": "main"}, "abc") == (
        "tags.`git.branch` = 'main' and tags.`pipeline_run_id` = 'abc'"
    )
    assert experiments.runs_filter({"note": "it's"}) == "tags.`note` = 'it\\'s'"


def test_runs_to_frame_orders_by_start_and_prefixes_params_and_metrics(runs: pd.DataFrame) -> None:
    assert list(runs["run_id"]) == ["c1", "k1", "d1", "d2"]
    assert list(runs.columns[: len(experiments.RUN_COLUMNS)]) == list(experiments.RUN_COLUMNS)
    first = runs.iloc[0]
    assert (first["stage"], first["pipeline_run_id"]) == ("train_standard_classifiers", "p1")
    assert first["commit"] == "p101234"  # the first seven characters of git.commit
    assert first["metrics.test/roc_auc"] == 0.99 and first["params.seed"] == "42"
    assert runs.loc[runs["run_id"] == "k1", "parent_run_id"].item() == "c1"
    assert runs["start_time"].dt.tz is not None


def test_runs_to_frame_of_no_runs_has_the_identity_columns() -> None:
    assert list(experiments.runs_to_frame([]).columns) == list(experiments.RUN_COLUMNS)


def test_pipeline_table_puts_each_stage_metric_of_a_pipeline_run_in_one_row(runs: pd.DataFrame) -> None:
    table = experiments.pipeline_table(runs, ["test/roc_auc"])
    assert list(table.index) == ["p1", "p2"]
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


def test_history_frame_is_long_format() -> None:
    history = experiments.history_frame(
        {"r1": {"val/loss": [Metric("val/loss", 0.5, 0, 1), Metric("val/loss", 0.4, 0, 2)]}, "r2": {"val/loss": []}}
    )
    assert history.to_dict("records") == [
        {"run_id": "r1", "metric": "val/loss", "step": 1, "value": 0.5},
        {"run_id": "r1", "metric": "val/loss", "step": 2, "value": 0.4},
    ]


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


EXP_SHOW = [
    {
        "rev": "workspace",
        "name": None,
        "data": {"rev": "workspace", "timestamp": None, "params": {}, "metrics": {}},
        "experiments": None,
    },
    {
        "rev": "3891d53" + "0" * 33,
        "name": "main",
        "data": {
            "timestamp": "2026-11-22T06:10:29",
            "params": {"params.yaml": {"data": {"seed": 42, "train_dnn_pytorch": {"lr": 0.001, "hidden": [16]}}}},
            "metrics": {
                "metrics/dnn.json": {"data": {"test/roc_auc": 0.94}},
                "metrics/classifiers.json": {"data": {"test/roc_auc": 0.99, "selected": "knn"}},
            },
        },
        "experiments": [
            {
                "name": "lr-high",
                "revs": [
                    {
                        "rev": "0974f34" + "1" * 33,
                        "name": "lr-high",
                        "data": {
                            "timestamp": "2026-11-22T06:10:50",
                            "params": {"params.yaml": {"data": {"seed": 42, "train_dnn_pytorch": {"lr": 0.01}}}},
                            "metrics": {"metrics/dnn.json": {"data": {"test/roc_auc": 0.98}}},
                        },
                    }
                ],
            }
        ],
    },
]


def test_exp_show_frame_lists_commits_and_their_experiments() -> None:
    frame = experiments.exp_show_frame(EXP_SHOW)
    assert list(frame["rev"]) == ["workspace", "3891d53", "0974f34"]
    assert list(frame["kind"]) == ["workspace", "commit", "experiment"]
    experiment = frame.iloc[2]
    assert (experiment["name"], experiment["baseline"]) == ("lr-high", "3891d53")
    assert experiment["metrics.dnn/test/roc_auc"] == 0.98
    assert frame.iloc[1]["metrics.classifiers/selected"] == "knn"
    assert frame.iloc[1]["params.train_dnn_pytorch.hidden"] == "[16]"
    differing = experiments.differing_params(frame.iloc[1:], keep=["rev"])
    assert list(differing.columns) == ["rev", "params.train_dnn_pytorch.lr", "params.train_dnn_pytorch.hidden"]


def test_dvc_experiments_outside_a_repository_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(experiments.ReprolabError, match=r"dvc exp show in .* failed"):
        experiments.dvc_experiments(tmp_path)
