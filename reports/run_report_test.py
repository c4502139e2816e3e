"""The report's tables from plain values; the whole report, in a browser, is tests/report_test.py."""

import html
import re

import pytest

from reports.run_report import goals_html, metrics_html, params_html

pytestmark = pytest.mark.unittest

GOALS = """
models:
  classifier: {metrics: metrics/classifiers.json, label: the classifier, minimum: {test/auc: 0.9}}
  network: {metrics: metrics/dnn.json, label: the network, minimum: {test/auc: 0.8}, maximum: {test/loss: 0.5}}
comparisons:
  - {model: network, baseline: classifier, max_shortfall: {test/auc: 0.05}}
"""


def test_goals_are_judged_as_make_goals_judges_them() -> None:
    changes = {
        "metrics/classifiers.json": {"test/auc": {"new": 0.95}, "selected": {"new": "knn"}},
        "metrics/dnn.json": {"test/auc": {"new": 0.85, "old": 0.7}, "test/loss": {"new": 0.4}},
    }
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"(pass|fail)\">", html.unescape(goals_html(GOALS, changes)))
    assert rows == [
        ("test/auc of the classifier (knn) is 0.95, at or above the goal 0.9", "pass"),
        ("test/auc of the network is 0.85, at or above the goal 0.8", "pass"),
        ("test/loss of the network is 0.4, at or below the goal 0.5", "pass"),
        (
            "test/auc of the network is 0.85, 0.1 below the classifier (knn)'s 0.95: more than the allowed margin 0.05",
            "fail",
        ),
    ]
    del changes["metrics/dnn.json"]
    assert goals_html(GOALS, changes).count("no metrics/dnn.json in this revision") == 3


def test_a_goals_file_that_cannot_be_judged_is_one_line() -> None:
    assert "No goals/goals.yaml" in goals_html(None, {})
    assert '<p class="fail">goals/goals.yaml: ' in goals_html("models: {network: {minimum: {}}}", {})
    no_test = {"metrics/classifiers.json": {"val/auc": {"new": 0.9}}, "metrics/dnn.json": {"val/auc": {"new": 0.9}}}
    assert "the goals need a test split" in goals_html(GOALS, no_test)


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
