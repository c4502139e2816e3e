"""The goals (goals/): criteria judged right, and `pytest goals` failing with metric, value and threshold.

These tests live here, not in goals/, because `pytest goals` (make goals) judges the real outputs and
the normal test paths leave goals/ out; here they run in every `make test`.
"""

from __future__ import annotations

import json
import sys
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


def _judge(directory: Path, goals_file: Path) -> dict[str, criteria.Outcome]:
    goals = criteria.read_goals(goals_file)
    return {outcome.id: outcome for outcome in criteria.evaluate(goals, criteria.read_metrics(directory, goals))}


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
    assert list(outcomes) == criteria.criteria_ids(criteria.read_goals(goals_file))
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


@pytest.mark.unittest
def test_summary_markdown_is_a_table_with_a_verdict(tmp_path: Path, goals_file: Path) -> None:
    outcomes = list(_judge(_outputs(tmp_path, BAD), goals_file).values())
    summary = criteria.summary_markdown(outcomes, tmp_path)
    assert summary.startswith("### Goals: 3 of 7 failed\n")
    assert "| **FAIL** | `network:test/roc_auc>=` | 0.91 | 0.95 | test/roc_auc of the network is 0.91" in summary


def _pytest_goals(outputs: Path, goals_file: Path, summary: Path) -> tuple[int, str]:
    done = run(
        [sys.executable, "-m", "pytest", "goals", "--outputs-dir", str(outputs), "--goals-file", str(goals_file)],
        PROJ_ROOT,
        GITHUB_STEP_SUMMARY=str(summary),
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.integration
def test_pytest_goals_passes_on_good_outputs_and_writes_the_job_summary(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_outputs(tmp_path / "good", GOOD), goals_file, tmp_path / "summary.md")
    assert code == 0, output
    assert "7 passed" in output
    assert "pass  test/accuracy of the network is 0.95614, at or above the goal 0.93" in output
    assert (tmp_path / "summary.md").read_text().startswith("### Goals: all passed\n")


@pytest.mark.integration
def test_pytest_goals_fails_on_bad_outputs_naming_metric_value_and_threshold(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_outputs(tmp_path / "bad", BAD), goals_file, tmp_path / "summary.md")
    assert code == 1, output
    assert "3 failed, 4 passed" in output
    assert "test/roc_auc of the network is 0.91, below the goal 0.95" in output
    assert "test/log_loss of the network is 0.31, above the goal 0.3" in output
    assert "FAILED goals/model_goals_test.py::test_goal_is_met[network:test/roc_auc>=]" in output
    assert "Traceback" not in output  # the message is the whole story
    assert "**FAIL**" in (tmp_path / "summary.md").read_text()


NO_TEST_SPLIT = {
    "classifiers": {"selected": "logistic_regression", "selected_by": "cv/roc_auc_mean", "cv/roc_auc_mean": 0.99},
    "dnn": {"best_epoch": 45, "val/accuracy": 0.95},
}


@pytest.mark.unittest
def test_outputs_without_a_test_split_say_the_goals_need_one(tmp_path: Path, goals_file: Path) -> None:
    directory = _outputs(tmp_path, NO_TEST_SPLIT)
    goals = criteria.read_goals(goals_file)

    reason = criteria.missing_test_split(goals, criteria.read_metrics(directory, goals))
    outcomes = _judge(directory, goals_file)

    assert reason == (
        "the goals need a test split, and metrics/classifiers.json holds no test metrics: set prepare_data.split "
        "to train_test or train_val_test, then run the pipeline (make run)"
    )
    assert outcomes["network:test/accuracy>="].message.startswith(
        "the goals need a test split, and metrics/dnn.json holds no test metrics"
    )
    assert not any(outcome.passed for outcome in outcomes.values())
    assert criteria.missing_test_split(goals, criteria.read_metrics(_outputs(tmp_path / "good", GOOD), goals)) is None


@pytest.mark.integration
def test_pytest_goals_without_a_test_split_stops_with_one_line(tmp_path: Path, goals_file: Path) -> None:
    code, output = _pytest_goals(_outputs(tmp_path / "train-only", NO_TEST_SPLIT), goals_file, tmp_path / "s.md")

    assert code != 0
    assert output.strip().splitlines() == [
        "ERROR: the goals need a test split, and metrics/classifiers.json holds no test metrics: "
        "set prepare_data.split to train_test or train_val_test, then run the pipeline (make run)"
    ]
