"""The goals (goals/): criteria judged right, and `pytest goals` failing with metric, value and threshold.

These tests live here, not in goals/, because `pytest goals` (make goals) judges the real outputs and
the normal test paths leave goals/ out; here they run in every `make test`.
"""

from __future__ import annotations

import json
import sys
from contextlib import chdir
from pathlib import Path

import pytest

from goals import criteria
from lib.paths import PROJ_ROOT
from tests.support import run

GOALS = """
models:
  classifier:
    metrics: metrics/classifiers.json
    label: the selected classifier
    minimum: {test/accuracy: 0.95, test/roc_auc: 0.97}
  network:
    metrics: metrics/dnn.json
    label: the network
    minimum: {test/accuracy: 0.93, test/roc_auc: 0.95}
    maximum: {test/log_loss: 0.3}
comparisons:
  - model: network
    baseline: classifier
    max_shortfall: {test/accuracy: 0.05, test/roc_auc: 0.02}
"""
GOOD = {
    "classifiers": {"selected": "logistic_regression", "test/accuracy": 0.982456, "test/roc_auc": 0.99504},
    "dnn": {"best_epoch": 45, "test/accuracy": 0.95614, "test/roc_auc": 0.991733, "test/log_loss": 0.095294},
}
BAD = {
    "classifiers": {"selected": "logistic_regression", "test/accuracy": 0.982456, "test/roc_auc": 0.99504},
    "dnn": {"best_epoch": 3, "test/accuracy": 0.94, "test/roc_auc": 0.91, "test/log_loss": 0.31},
}
# The two stages that write the metrics the goals read, as in the project's dvc.yaml.
PIPELINE = """
stages:
  train_standard_classifiers:
    cmd: python -m train_classifiers
    params: [train_standard_classifiers]
    metrics: [{metrics/classifiers.json: {cache: false}}]
  train_dnn_pytorch:
    cmd: python -m train_network
    params: [train_dnn_pytorch]
    metrics: [{metrics/dnn.json: {cache: false}}]
"""
PARAMS = "train_standard_classifiers: {cv_folds: 5}\ntrain_dnn_pytorch: {epochs: 50}\n"


@pytest.fixture
def goals_file(tmp_path: Path) -> Path:
    path = tmp_path / "goals.yaml"
    path.write_text(GOALS)
    return path


def _outputs(directory: Path, metrics: dict[str, dict]) -> Path:
    (directory / "metrics").mkdir(parents=True)
    for name, values in metrics.items():
        (directory / "metrics" / f"{name}.json").write_text(json.dumps(values))
    return directory


def _pipeline(directory: Path, metrics: dict[str, dict]) -> Path:
    """A DVC project whose dvc.lock records `metrics`, as after a `dvc repro` that wrote them."""
    from dvc.repo import Repo

    _outputs(directory, metrics)
    (directory / "dvc.yaml").write_text(PIPELINE)
    (directory / "params.yaml").write_text(PARAMS)
    with chdir(directory), Repo.init(".", no_scm=True) as repo:
        repo.commit(force=True)
    return directory


def _judge(directory: Path, goals_file: Path) -> dict[str, criteria.Outcome]:
    goals = criteria.read_goals(goals_file)
    metrics = criteria.read_metrics(directory, goals)
    return {outcome.id: outcome for outcome in criteria.judge(goals, metrics)}


@pytest.mark.unittest
def test_the_committed_goals_file_is_valid_and_covers_both_models() -> None:
    goals = criteria.read_goals()
    assert set(goals.models) == {"classifier", "network"}
    for model in goals.models.values():
        assert {"test/accuracy", "test/roc_auc"} <= set(model.minimum)
    assert goals.comparisons[0].model == "network" and goals.comparisons[0].baseline == "classifier"


@pytest.mark.unittest
def test_good_metrics_pass_every_criterion(tmp_path: Path, goals_file: Path) -> None:
    outcomes = _judge(_outputs(tmp_path, GOOD), goals_file)
    assert list(outcomes) == [
        "classifier:test/accuracy>=",
        "classifier:test/roc_auc>=",
        "network:test/accuracy>=",
        "network:test/roc_auc>=",
        "network:test/log_loss<=",
        "network-vs-classifier:test/accuracy",
        "network-vs-classifier:test/roc_auc",
    ]
    assert all(outcome.passed for outcome in outcomes.values())
    assert (
        outcomes["network:test/roc_auc>="].message
        == "test/roc_auc of the network is 0.991733, at or above the goal 0.95"
    )


@pytest.mark.unittest
def test_a_failure_names_the_metric_its_value_and_the_goal(tmp_path: Path, goals_file: Path) -> None:
    outcomes = _judge(_outputs(tmp_path, BAD), goals_file)
    failed = {key: outcome.message for key, outcome in outcomes.items() if not outcome.passed}
    assert failed == {
        "network:test/roc_auc>=": "test/roc_auc of the network is 0.91, below the goal 0.95",
        "network:test/log_loss<=": "test/log_loss of the network is 0.31, above the goal 0.3",
        "network-vs-classifier:test/roc_auc": (
            "test/roc_auc of the network is 0.91, 0.08504 below the selected classifier (logistic_regression)'s "
            "0.99504: more than the allowed margin 0.02"
        ),
    }
    assert outcomes["network:test/accuracy>="].passed  # 0.94 >= 0.93
    assert outcomes["network-vs-classifier:test/accuracy"].passed  # 0.042 short, within 0.05


@pytest.mark.unittest
def test_missing_outputs_fail_with_what_to_do(tmp_path: Path, goals_file: Path) -> None:
    directory = _outputs(tmp_path, {"classifiers": {"test/accuracy": 0.99}})
    outcomes = _judge(directory, goals_file)
    assert outcomes["network:test/accuracy>="].message == (
        f"metrics/dnn.json not found under {directory}: run the pipeline first (make run)"
    )
    assert outcomes["classifier:test/roc_auc>="].message.startswith("test/roc_auc is not a number in")
    assert not any(outcome.passed for key, outcome in outcomes.items() if key != "classifier:test/accuracy>=")


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: {}\n", "models: "),
        ("models:\n  m: {metrics: m.json, label: m, minimum: {a: high}}\n", r"models.m.minimum.a: "),
        ("models:\n  m: {metrics: m.json, label: m, threshold: 1}\n", "models.m.threshold: Extra inputs"),
        (
            "models: {m: {metrics: m.json, label: m}}\ncomparisons: [{model: m, baseline: x, max_shortfall: {a: 1}}]\n",
            "'x' is not one of the models",
        ),
        ("models: [\n", "not valid YAML"),
    ],
)
def test_a_bad_goals_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "goals.yaml").write_text(text)
    with pytest.raises(criteria.GoalsError, match=message):
        criteria.read_goals(tmp_path / "goals.yaml")


def _pytest_goals(outputs: Path, goals_file: Path, summary: Path) -> tuple[int, str]:
    done = run(
        [sys.executable, "-m", "pytest", "goals", "--outputs-dir", str(outputs), "--goals-file", str(goals_file)],
        PROJ_ROOT,
        GITHUB_STEP_SUMMARY=str(summary),
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.integration
def test_pytest_goals_passes_on_good_outputs_and_writes_the_job_summary(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_pipeline(tmp_path / "good", GOOD), goals_file, tmp_path / "summary.md")
    assert code == 0, output
    assert "7 passed" in output
    assert "pass  test/accuracy of the network is 0.95614, at or above the goal 0.93" in output
    assert (tmp_path / "summary.md").read_text().startswith("### Goals: all passed\n")


@pytest.mark.integration
def test_pytest_goals_fails_on_bad_outputs_naming_metric_value_and_threshold(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_pipeline(tmp_path / "bad", BAD), goals_file, tmp_path / "summary.md")
    assert code == 1, output
    assert "3 failed, 4 passed" in output
    assert "test/roc_auc of the network is 0.91, below the goal 0.95" in output
    assert "test/log_loss of the network is 0.31, above the goal 0.3" in output
    assert "FAILED goals/model_goals_test.py::test_goal_is_met[network:test/roc_auc>=]" in output
    assert "Traceback" not in output  # the message is the whole story
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### Goals: 3 of 7 failed\n")
    assert "| **FAIL** | `network:test/roc_auc>=` | 0.91 | 0.95 | test/roc_auc of the network is 0.91" in summary
    assert "| pass | `network:test/accuracy>=` | 0.94 | 0.93 | test/accuracy of the network is 0.94" in summary


NO_TEST_SPLIT = {
    "classifiers": {"selected": "logistic_regression", "selected_by": "cv/roc_auc_mean", "cv/roc_auc_mean": 0.99},
    "dnn": {"best_epoch": 45, "val/accuracy": 0.95},
}


@pytest.mark.unittest
def test_outputs_without_a_test_split_say_the_goals_need_one(tmp_path: Path, goals_file: Path) -> None:
    with pytest.raises(criteria.NoTestSplit) as refused:
        _judge(_outputs(tmp_path, NO_TEST_SPLIT), goals_file)
    assert str(refused.value) == (
        "the goals need a test split, and metrics/classifiers.json holds no test metrics: set prepare_data.split "
        "to train_test or train_val_test, then run the pipeline (make run)"
    )
    network_only = {"classifiers": GOOD["classifiers"], "dnn": NO_TEST_SPLIT["dnn"]}
    with pytest.raises(criteria.NoTestSplit, match=r"the goals need a test split, and metrics/dnn\.json holds no test"):
        _judge(_outputs(tmp_path / "network-only", network_only), goals_file)
    assert all(outcome.passed for outcome in _judge(_outputs(tmp_path / "good", GOOD), goals_file).values())


@pytest.mark.integration
def test_pytest_goals_without_a_test_split_stops_with_one_line(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_pipeline(tmp_path / "train-only", NO_TEST_SPLIT), goals_file, tmp_path / "s.md")

    assert code != 0
    assert output.strip().splitlines() == [
        "ERROR: the goals need a test split, and metrics/classifiers.json holds no test metrics: "
        "set prepare_data.split to train_test or train_val_test, then run the pipeline (make run)"
    ]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda project: (project / "params.yaml").write_text(PARAMS.replace("epochs: 50", "epochs: 3")),
            "params.yaml train_dnn_pytorch modified",
        ),
        (lambda project: (project / "metrics" / "dnn.json").unlink(), "metrics/dnn.json deleted"),
    ],
    ids=["param-changed-after-the-run", "output-deleted"],
)
def test_pytest_goals_refuses_outputs_that_are_not_current_naming_the_stage(
    tmp_path: Path, goals_file: Path, change, why: str
) -> None:
    project = _pipeline(tmp_path / "stale", GOOD)
    change(project)  # as after a `dvc repro` that failed in train_dnn_pytorch, or a lost output

    code, output = _pytest_goals(project, goals_file, tmp_path / "s.md")

    assert code != 0
    assert output.strip().splitlines() == [
        "ERROR: the outputs are not the ones dvc.lock, params and data describe: "
        f"stage train_dnn_pytorch ({why}): run `dvc repro` (a stage that failed must succeed), "
        "or `dvc pull` for missing outputs"
    ]
    assert not (tmp_path / "s.md").exists()


@pytest.mark.integration
def test_pytest_goals_refuses_a_folder_that_is_not_a_pipeline(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_outputs(tmp_path / "loose", GOOD), goals_file, tmp_path / "s.md")
    assert code != 0
    assert output.strip().splitlines() == [
        f"ERROR: {tmp_path / 'loose'} is not a DVC project: no pipeline says what its outputs should be"
    ]


@pytest.mark.integration
def test_pytest_goals_with_a_bad_goals_file_stops_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "goals.yaml").write_text("models: {}\n")
    code, output = _pytest_goals(_pipeline(tmp_path / "good", GOOD), tmp_path / "goals.yaml", tmp_path / "s.md")
    assert code != 0
    assert output.strip().splitlines()[0].startswith(f"ERROR: {tmp_path / 'goals.yaml'}: models: ")


REGRESSION_GOALS = """
models:
  regressor: {metrics: metrics/classifiers.json, label: the selected regressor, maximum: {test/rmse: 60}}
  network: {metrics: metrics/dnn.json, label: the network, minimum: {test/r2: 0.3}}
comparisons:
  - {model: network, baseline: regressor, max_shortfall: {test/rmse: 5, test/r2: 0.1}}
"""


@pytest.mark.unittest
def test_a_comparison_of_a_lower_is_better_metric_counts_a_higher_value_as_the_shortfall(tmp_path: Path) -> None:
    (tmp_path / "goals.yaml").write_text(REGRESSION_GOALS)
    metrics = {
        "classifiers": {"selected": "ridge", "test/rmse": 52.0, "test/r2": 0.48},
        "dnn": {"test/rmse": 58.5, "test/r2": 0.41},
    }

    outcomes = _judge(_outputs(tmp_path / "out", metrics), tmp_path / "goals.yaml")

    assert outcomes["network-vs-regressor:test/rmse"].message == (
        "test/rmse of the network is 58.5, 6.5 above the selected regressor (ridge)'s 52: "
        "more than the allowed margin 5"
    )
    assert not outcomes["network-vs-regressor:test/rmse"].passed
    assert outcomes["network-vs-regressor:test/r2"].passed  # 0.07 below, within 0.1
    assert outcomes["regressor:test/rmse<="].passed and outcomes["network:test/r2>="].passed


@pytest.mark.unittest
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_example_goals_of_each_task_are_valid_and_judge_that_tasks_metrics(task: str, tmp_path: Path) -> None:
    from lib.evaluation import TASK_METRICS

    path = PROJ_ROOT / "goals" / "examples" / f"{task}.yaml"
    goals = criteria.read_goals(path)

    named = {
        metric.removeprefix("test/") for model in goals.models.values() for metric in [*model.minimum, *model.maximum]
    }
    assert named and named <= set(TASK_METRICS[task])
    perfect = {"rmse": 0.0, "mae": 0.0, "log_loss": 0.0}
    values = {f"test/{name}": perfect.get(name, 1.0) for name in TASK_METRICS[task]}
    outcomes = _judge(_outputs(tmp_path, {"classifiers": values, "dnn": values}), path)
    assert all(outcome.passed for outcome in outcomes.values())
