"""Each task end to end from a CSV a user would bring: the worked example table (string labels, a categorical
column, empty cells) through `dvc repro`, `make goals` with the task's goals file, `make runtime` and
`make serve`, then a request scored over HTTP with a missing value and an unseen category in it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pytest

from tests.support import add_goals_and_runtimes, make_project_copy, run, serving_runtime, shrunk_params

pytestmark = pytest.mark.integration


class Task(NamedTuple):
    """What a task's worked example holds, and what its pipeline must show."""

    target: str
    goals: str  # the shipped goals file for the task
    metrics: tuple[str, ...]  # test metrics each training stage reports for it
    number: str  # a numeric column to leave empty in the request
    category: str  # the categorical column to send an unseen value in


CLASSIFICATION = ("test/accuracy", "test/balanced_accuracy", "test/log_loss", "test/roc_auc")
MULTICLASS = (*CLASSIFICATION, "test/f1_macro")
REGRESSION = ("test/rmse", "test/mae", "test/r2")
TASKS = {
    "binary": Task("diagnosis", "goals/goals.yaml", CLASSIFICATION, "mean texture", "radius_band"),
    "multiclass": Task("species", "multiclass-goals.yaml", MULTICLASS, "petal width (cm)", "sepal_length_band"),
    "regression": Task("progression", "goals/examples/regression.yaml", REGRESSION, "bmi", "sex"),
}
# The shipped multiclass goals suit the wine data set; on iris's 30 test rows one wrong answer costs 0.03, and
# the shrunk network sees 90 rows. The same criteria with looser thresholds, written beside the project copy.
MULTICLASS_GOALS = """
models:
  classifier:
    metrics: metrics/classifiers.json
    label: the selected classifier
    minimum: {test/balanced_accuracy: 0.8, test/f1_macro: 0.8, test/roc_auc: 0.9}
    maximum: {test/log_loss: 0.6}
  network:
    metrics: metrics/dnn.json
    label: the network
    minimum: {test/balanced_accuracy: 0.6, test/f1_macro: 0.6}
comparisons:
  - {model: network, baseline: classifier, max_shortfall: {test/f1_macro: 0.35, test/log_loss: 0.6}}
"""
# One model per kind: logistic regression classifies, ridge regresses, the forest does both. The network gets
# ten epochs at a higher rate than params.yaml's: on these few rows that takes seconds and meets the shipped
# binary and regression goals.
MODELS = ["logistic_regression", "ridge", "random_forest"]
NETWORK = {"epochs": 10, "lr": 0.01, "batch_size": 32, "hidden_layers": [16]}


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _request(url: str, body: bytes | None = None) -> tuple[int, Any]:
    """(status, parsed JSON) of a GET, or of a JSON POST when `body` is given."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    return status, json.loads(text) if text.startswith(("{", "[")) else text


@pytest.fixture(scope="module", params=sorted(TASKS))
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project copy whose pipeline ran on the task's example CSV, with the goals judged and the runtime built."""
    task, spec = request.param, TASKS[request.param]
    overrides = {
        "prepare_data": {"source": f"data/raw/{task}.csv", "target": spec.target, "task": "auto"},
        "train_standard_classifiers": {"models": MODELS},
        "train_dnn_pytorch": NETWORK,
    }
    root = tmp_path_factory.mktemp(task)
    project = make_project_copy(root / "project", shrunk_params(overrides))
    (root / "multiclass-goals.yaml").write_text(MULTICLASS_GOALS)
    add_goals_and_runtimes(project)

    examples = _ok(run(["python", "-m", "lab.processes.prepare_data.examples", task, f"data/raw/{task}.csv"], project))
    repro = _ok(run(["dvc", "repro"], project))
    # -o: the environment is this one, no `pipenv sync` into the copy.
    goals_file = project / spec.goals if spec.goals.startswith("goals/") else root / spec.goals
    goals = run(["make", "-o", ".venv/.synced", "goals", f"GOALS={goals_file}"], project)
    runtime = _ok(run(["make", "-o", ".venv/.synced-run", "runtime"], project))
    return {
        "task": task,
        "project": project,
        "examples": examples.stdout,
        "repro": repro.stdout,
        "goals": goals,
        "runtime": runtime.stdout,
    }


def _metrics(project: Path, name: str) -> dict[str, Any]:
    return json.loads((project / "metrics" / f"{name}.json").read_text())


def test_the_task_is_inferred_from_the_csv_and_reported(pipeline: dict[str, Any]) -> None:
    task, project = pipeline["task"], pipeline["project"]
    assert f"use it: dvc exp run -S prepare_data.source=data/raw/{task}.csv" in pipeline["examples"]
    data = _metrics(project, "data")
    assert data["task"] == task
    assert f"prepare_data: task {task} (" in pipeline["repro"]


def test_each_training_stage_reports_the_task_metrics_on_test(pipeline: dict[str, Any]) -> None:
    task, project = pipeline["task"], pipeline["project"]
    for stage in ("classifiers", "dnn"):
        metrics = _metrics(project, stage)
        for name in TASKS[task].metrics:
            assert isinstance(metrics[name], float), (stage, name)
        if task == "regression":
            assert "test/accuracy" not in metrics
            assert metrics["test/rmse"] > 0 and metrics["test/mae"] > 0
        else:
            assert 0.5 < metrics["test/accuracy"] <= 1.0 and "test/rmse" not in metrics
    selected = _metrics(project, "classifiers")["selected"]
    assert selected in (["ridge", "random_forest"] if task == "regression" else MODELS[::2])


def test_the_task_goals_pass(pipeline: dict[str, Any]) -> None:
    goals = pipeline["goals"]
    assert goals.returncode == 0, goals.stdout[-3000:] + goals.stderr[-3000:]
    assert "FAIL" not in goals.stdout and " passed in " in goals.stdout
    judged = [line for line in goals.stdout.splitlines() if line.startswith("pass  ")]
    assert len(judged) >= 4 and all(" of the " in line for line in judged)


@pytest.fixture(scope="module")
def server(pipeline: dict[str, Any]) -> Iterator[str]:
    """`make serve` for the copy's runtime; yields its invocations URL."""
    with serving_runtime(pipeline["project"], pipeline["project"].parent / "server.log") as url:
        yield f"{url}/invocations"


def test_the_served_runtime_scores_raw_rows_with_a_gap_and_an_unseen_category(
    pipeline: dict[str, Any], server: str
) -> None:
    task, spec, project = pipeline["task"], TASKS[pipeline["task"]], pipeline["project"]
    assert "runtime: " in pipeline["runtime"]
    table = pd.read_csv(project / "data" / "raw" / f"{task}.csv")
    rows = table.drop(columns=[spec.target]).dropna().head(3).reset_index(drop=True).astype(object)
    rows.loc[0, spec.number] = None  # a missing value
    rows.loc[1, spec.category] = "never seen in training"  # an unseen category
    data = [[None if pd.isna(value) else value for value in row] for row in rows.to_numpy()]
    body = json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": data}}).encode()

    status, answer = _request(server, body)

    assert status == 200, answer
    predictions = pd.DataFrame(answer["predictions"])
    assert len(predictions) == 3
    if task == "regression":
        assert list(predictions.columns) == ["prediction"]
        assert all(isinstance(value, float) for value in predictions["prediction"])
        low, high = table[spec.target].min(), table[spec.target].max()
        assert predictions["prediction"].between(low - (high - low), high + (high - low)).all()
    else:
        classes = sorted(table[spec.target].unique())  # the names in the user's CSV, in sorted order
        probabilities = [f"probability_{name}" for name in classes]
        assert list(predictions.columns) == ["label", *probabilities]
        assert predictions[probabilities].sum(axis=1).round(9).eq(1.0).all()
        best = predictions[probabilities].idxmax(axis=1).str.removeprefix("probability_")
        assert predictions["label"].tolist() == best.tolist()
