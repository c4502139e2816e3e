"""search.py: the one ranked table of a search's points, and their MLflow runs read back by tag."""

import time
from pathlib import Path

import mlflow
import pytest

from sweeps.search import DONE, FAILED, MISSING, Result, link, ranked_table, run_links

pytestmark = pytest.mark.unittest


def rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines()]


@pytest.mark.parametrize(("maximize", "expected"), [(True, ["s-2", "s-1"]), (False, ["s-1", "s-2"])])
def test_the_points_are_ranked_by_the_metric(maximize: bool, expected: list[str]) -> None:
    results = [Result("s-1", {"net.lr": "0.001"}, 0.90), Result("s-2", {"net.lr": "0.01"}, 0.95)]

    table = rows(ranked_table(results, "dnn/val/roc_auc", maximize))

    assert table[0] == ["rank", "point", "lr", "dnn/val/roc_auc", "state", "MLflow"]
    assert [row[1] for row in table[2:]] == expected
    assert [row[0] for row in table[2:]] == ["1", "2"]


def test_points_without_a_value_come_last_unranked_with_their_state() -> None:
    results = [
        Result("s-1", {"net.lr": "0.1"}, None, FAILED),
        Result("s-2", {"net.lr": "1e-05"}, 0.5, DONE, "[train](http://mlflow/#/experiments/1/runs/abc)"),
        Result("s-3", {"net.lr": "0.3"}, None, MISSING),
        Result("s-4", {"net.lr": "0.2"}, 0.912345),
    ]

    table = rows(ranked_table(results, "m/x", maximize=True))

    assert table[2:] == [
        ["1", "s-4", "0.2", "0.9123", "done", ""],
        ["2", "s-2", "1e-05", "0.5000", "done", "[train](http://mlflow/#/experiments/1/runs/abc)"],
        ["-", "s-1", "0.1", "-", "failed", ""],
        ["-", "s-3", "0.3", "-", "missing", ""],
    ]


def test_run_links_group_the_runs_by_a_tag_linking_a_server_and_naming_local_runs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
        mlflow.set_experiment("e")
        ids = {}
        # p-2's train stage ran twice (a sweep run again under its name): only its latest run is linked
        points = (("p-1", "train"), ("p-1", "report"), ("p-2", "train"), ("q-1", "train"), ("p-2", "train"))
        for point, stage in points:
            time.sleep(0.005)  # start times a millisecond or more apart: the order is the runs' order
            with mlflow.start_run(tags={"point": point, "dvc.stage": stage}) as run:
                ids[point, stage] = run.info.run_id
                with mlflow.start_run(nested=True, tags={"point": point, "dvc.stage": "child"}):
                    pass

        local = run_links("e", uri, "tags.point LIKE 'p-%'", "point")
        nested = run_links("e", uri, "tags.`dvc.stage` = 'child'", "point", nested=True)
    finally:
        mlflow.set_tracking_uri(None)

    assert local == {"p-1": f"{ids['p-1', 'train'][:12]} {ids['p-1', 'report'][:12]}", "p-2": ids["p-2", "train"][:12]}
    assert set(nested) == {"p-1", "p-2", "q-1"}
    assert run_links("missing", uri, "", "point") == {}


def test_a_servers_runs_are_links_labelled_with_their_stage() -> None:
    run = {"run_id": "abc123", "experiment_id": "7", "tags.dvc.stage": "train_dnn_pytorch"}

    assert link("http://mlflow:5000/", run) == "[train_dnn_pytorch](http://mlflow:5000/#/experiments/7/runs/abc123)"
    assert link("https://m", {**run, "tags.dvc.stage": None}) == "[run](https://m/#/experiments/7/runs/abc123)"
    assert link("sqlite:///mlflow.db", run) == link(None, run) == "abc123"
