"""results.py: which points ran, the ranking by the sweep's metric, and the Markdown table."""

import math

import pytest

from lib.errors import ReprolabError
from lib.experiments import exp_show_frame
from sweeps.grid import parse_sweep, points
from sweeps.results import experiment_states, markdown_table, ranking

pytestmark = pytest.mark.unittest

PARAMS = {"train_dnn_pytorch": {"lr": 0.001, "batch_size": 32}}


def revision(name: str, lr: float, auc: float | None, error: bool = False) -> dict:
    metrics = {} if auc is None else {"metrics/dnn.json": {"data": {"val/roc_auc": auc}}}
    data = {"params": {"params.yaml": {"data": {"train_dnn_pytorch": {"lr": lr}}}}, "metrics": metrics}
    return {
        "rev": f"{name:0<40}",
        "name": name,
        "error": {"msg": "Experiment run failed"} if error else None,
        "data": data,
    }


def records(*revisions: dict) -> list[dict]:
    experiments = [{"name": rev["name"], "revs": [rev]} for rev in revisions]
    return [
        {"rev": "workspace", "name": None, "data": {}, "experiments": None},
        {"rev": "a" * 40, "name": "main", "data": {}, "experiments": experiments},
    ]


def sweep_of(order: str = "max") -> object:
    grid = {"train_dnn_pytorch.lr": [0.001, 0.01, 0.1]}
    return parse_sweep({"metric": "dnn/val/roc_auc", "order": order, "params": grid}, "s.yaml", PARAMS, "s")


def test_states_tell_done_failed_and_missing_apart() -> None:
    found = records(revision("s-1", 0.001, 0.9), revision("s-2", 0.01, None, error=True), revision("x", 0.1, 0.5))

    assert experiment_states(found, ["s-1", "s-2", "s-3"]) == {"s-1": "done", "s-2": "failed", "s-3": "missing"}


@pytest.mark.parametrize(("order", "expected"), [("max", ["s-2", "s-1"]), ("min", ["s-1", "s-2"])])
def test_the_ranking_orders_the_sweeps_points_by_its_metric(order: str, expected: list[str]) -> None:
    sweep = sweep_of(order)
    frame = exp_show_frame(records(revision("s-1", 0.001, 0.90), revision("s-2", 0.01, 0.95), revision("o", 1, 1)))

    table = ranking(frame, sweep, points(sweep))

    assert list(table.columns) == ["rank", "experiment", "lr", "dnn/val/roc_auc"]
    assert table["experiment"].tolist() == expected
    assert table["rank"].tolist() == ["1", "2"]
    assert sorted(table["dnn/val/roc_auc"]) == [0.90, 0.95]


def test_a_point_without_the_metric_comes_last_unranked() -> None:
    sweep = sweep_of()
    frame = exp_show_frame(records(revision("s-1", 0.001, None), revision("s-2", 0.01, 0.5), revision("s-3", 0.1, 0.7)))
    frame.loc[frame["name"] == "s-1", "metrics.dnn/val/roc_auc"] = math.nan

    table = ranking(frame, sweep, points(sweep))

    assert table[["rank", "experiment"]].values.tolist() == [["1", "s-3"], ["2", "s-2"], ["-", "s-1"]]


def test_a_metric_no_experiment_has_is_an_error_listing_the_metrics() -> None:
    sweep = parse_sweep({"metric": "dnn/val/auc", "params": {"train_dnn_pytorch.lr": [0.001]}}, "s.yaml", PARAMS, "s")
    frame = exp_show_frame(records(revision("s-1", 0.001, 0.9)))

    with pytest.raises(ReprolabError, match=r"s.yaml: metric: no metric dnn/val/auc \(metrics: dnn/val/roc_auc\)"):
        ranking(frame, sweep, points(sweep))


def test_markdown_table_formats_floats_and_missing_values() -> None:
    sweep = sweep_of()
    frame = exp_show_frame(records(revision("s-1", 0.001, 0.912345)))

    text = markdown_table(ranking(frame, sweep, points(sweep)))

    assert text.splitlines() == [
        "| rank | experiment | lr | dnn/val/roc_auc |",
        "|---|---|---|---|",
        "| 1 | s-1 | 0.001 | 0.9123 |",
    ]
