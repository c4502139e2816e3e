"""The report's tables from plain values; the report in a browser is tests/report_test.py."""

import pytest

from lib.report import goal_rows, goals_html, metrics_html, params_html

pytestmark = pytest.mark.unittest

GOALS = {
    "models": {
        "classifier": {"metrics": "metrics/classifiers.json", "label": "the classifier", "minimum": {"test/auc": 0.9}},
        "network": {"metrics": "metrics/dnn.json", "minimum": {"test/auc": 0.8}, "maximum": {"test/loss": 0.5}},
    },
    "comparisons": [{"model": "network", "baseline": "classifier", "max_shortfall": {"test/auc": 0.05}}],
}


def test_goal_rows_judge_bounds_comparisons_and_missing_values() -> None:
    metrics = {"metrics/classifiers.json": {"test/auc": 0.95}, "metrics/dnn.json": {"test/auc": 0.85}}
    assert goal_rows(GOALS, metrics) == [
        ("the classifier", "test/auc", 0.95, "≥ 0.9", True),
        ("network", "test/auc", 0.85, "≥ 0.8", True),
        ("network", "test/loss", None, "≤ 0.5", False),  # missing: not met
        ("network", "test/auc", 0.85, "at most 0.05 below the classifier (0.95)", False),
    ]
    metrics["metrics/dnn.json"] = {"test/auc": 0.9, "test/loss": 0.6}
    assert [met for *_, met in goal_rows(GOALS, metrics)] == [True, True, False, True]


def test_goals_table_and_a_goals_file_it_cannot_read() -> None:
    changes = {"metrics/classifiers.json": {"test/auc": {"new": 0.95}}, "metrics/dnn.json": {"test/auc": {"new": 0.85}}}
    table = goals_html("models:\n  network: {metrics: metrics/dnn.json, minimum: {test/auc: 0.9}}\n", changes)
    assert '<td>network</td><td>test/auc</td><td class="num">0.85</td><td>≥ 0.9</td><td class="fail">NOT MET' in table
    assert "could not be read" in goals_html("models:\n  network: {minimum: {}}\n", changes)
    assert "No goals/goals.yaml" in goals_html(None, changes)


def test_metrics_show_value_base_value_and_change() -> None:
    changes = {
        "metrics/dnn.json": {
            "test/loss": {"old": 0.5, "new": 0.25, "diff": -0.25},
            "epochs": {"old": 3, "new": 3, "diff": 0},
            "selected": {"old": None, "new": "knn"},
        }
    }
    page = metrics_html(changes, "0123456789abcdef")
    assert "<th>at 0123456</th>" in page
    assert '<td>test/loss</td><td class="num">0.25</td><td class="num">0.5</td><td class="changed">-0.25</td>' in page
    assert '<td>epochs</td><td class="num">3</td><td class="num">3</td><td class="same">+0</td>' in page
    assert "<td>selected</td><td>knn</td><td>–</td><td>–</td>" in page
    assert "No metrics." in metrics_html({}, None)


def test_params_changed_or_none() -> None:
    page = params_html({"params.yaml": {"train.lr": {"old": 0.1, "new": 0.01}}}, "0123456789")
    assert '<td>params.yaml: train.lr</td><td class="num">0.01</td><td class="num">0.1</td>' in page
    assert "None changed since 0123456." in params_html({}, "0123456789")
