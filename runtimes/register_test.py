"""Tests for runtimes/register.py: a runtime becomes a candidate only when its goals pass and its commit is clean.

Registering in a real MLflow store is tested end to end in tests/results_to_runtime_test.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from runtimes import register

pytestmark = pytest.mark.unittest

GOALS = """
models:
  classifier:
    metrics: metrics/classifiers.json
    label: the selected classifier
    minimum: {test/roc_auc: 0.95}
  network:
    metrics: metrics/dnn.json
    label: the network
    minimum: {test/roc_auc: 0.95}
comparisons:
  - {model: network, baseline: classifier, max_shortfall: {test/roc_auc: 0.02}}
"""
INFO = {
    "artifact": "cancer-1.0.0-3f4a8c3",
    "git": {"commit": "3f4a8c3" + "0" * 33, "short": "3f4a8c3", "dirty": False},
    "metrics": {
        "metrics/classifiers.json": {"selected": "knn", "test/roc_auc": 0.99},
        "metrics/dnn.json": {"test/roc_auc": 0.98},
    },
}


@pytest.fixture
def goals_file(tmp_path: Path) -> Path:
    path = tmp_path / "goals.yaml"
    path.write_text(GOALS)
    return path


def test_a_runtime_that_meets_its_goals_from_a_clean_commit_may_register(goals_file: Path) -> None:
    register.check_registrable(INFO, goals_file, allow_dirty=False)


def test_unmet_goals_refuse_registration_naming_metric_value_and_goal(goals_file: Path) -> None:
    info = copy.deepcopy(INFO)
    info["metrics"]["metrics/dnn.json"]["test/roc_auc"] = 0.91
    with pytest.raises(register.RegistrationRefused) as refused:
        register.check_registrable(info, goals_file, allow_dirty=False)
    message = str(refused.value)
    assert message.startswith("cancer-1.0.0-3f4a8c3: goals not met: ")
    assert "test/roc_auc of the network is 0.91, below the goal 0.95" in message
    assert "more than the allowed margin 0.02" in message


def test_a_metrics_file_missing_from_the_runtime_fails_its_goals(goals_file: Path) -> None:
    info = copy.deepcopy(INFO)
    del info["metrics"]["metrics/dnn.json"]
    with pytest.raises(register.RegistrationRefused) as refused:
        register.check_registrable(info, goals_file, allow_dirty=False)
    assert str(refused.value) == (
        "cancer-1.0.0-3f4a8c3: goals not met: metrics/dnn.json is not recorded in the runtime; "
        "metrics/dnn.json is not recorded in the runtime"
    )


def test_a_runtime_from_uncommitted_changes_needs_allow_dirty(goals_file: Path) -> None:
    info = copy.deepcopy(INFO)
    info["git"]["dirty"] = True
    with pytest.raises(register.RegistrationRefused, match="built from uncommitted changes"):
        register.check_registrable(info, goals_file, allow_dirty=False)
    register.check_registrable(info, goals_file, allow_dirty=True)
