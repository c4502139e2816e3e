"""reproduction.py: the comparison of a re-run's outputs with the committed ones, and its verdict line."""

import json

import pytest

from lib.reproduction import TOLERANCE, Verdict, compare_text

pytestmark = pytest.mark.unittest

METRICS = {"best_epoch": 45, "selected": "logistic_regression", "test/roc_auc": 0.991733, "val/loss": 0.0655}
ROC = "fpr,tpr,threshold\n0.0,0.0,1.0\n0.1,0.9,0.5\n1.0,1.0,0.0\n"


def test_identical_outputs_say_so() -> None:
    assert Verdict().line() == "identical: every output has the committed bytes"


def test_metrics_within_the_tolerance_are_reproduced_and_the_largest_difference_is_given() -> None:
    verdict = Verdict(changed=["metrics/dnn.json", "models/dnn.pt"], unchecked=["models/dnn.pt"])
    moved = {**METRICS, "test/roc_auc": METRICS["test/roc_auc"] + TOLERANCE, "val/loss": 0.0655 - 4e-7}

    compare_text("metrics/dnn.json", json.dumps(METRICS), json.dumps(moved), verdict)

    assert verdict.failures == []
    assert verdict.largest == pytest.approx(TOLERANCE)
    assert verdict.line() == (
        "reproduced within 1e-06 (largest difference 1e-06); bytes differ in metrics/dnn.json, models/dnn.pt "
        "(judged by the metrics: models/dnn.pt)"
    )


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"test/roc_auc": 0.98}, "metrics/dnn.json test/roc_auc: committed 0.991733, now 0.98"),
        ({"best_epoch": 44}, "metrics/dnn.json best_epoch: committed 45, now 44"),
        ({"selected": "knn"}, "metrics/dnn.json selected: committed 'logistic_regression', now 'knn'"),
        ({"new/metric": 1.0}, "metrics/dnn.json new/metric: committed None, now 1.0"),
    ],
)
def test_a_real_difference_names_the_metric_and_both_values(change: dict, failure: str) -> None:
    verdict = Verdict(changed=["metrics/dnn.json"])

    compare_text("metrics/dnn.json", json.dumps(METRICS), json.dumps({**METRICS, **change}), verdict)

    assert verdict.failures == [failure]
    assert verdict.line() == f"not reproduced: {failure}"


def test_nested_metrics_and_lists_are_compared_value_by_value() -> None:
    verdict = Verdict()
    before = {"scale": {"mean": [1.0, 2.0]}, "nan": float("nan")}

    after = {"scale": {"mean": [1.0, 2.5]}, "nan": float("nan")}

    compare_text("p.json", json.dumps(before), json.dumps(after), verdict)

    assert verdict.failures == ["p.json scale/mean/1: committed 2.0, now 2.5"]


def test_plot_data_is_compared_cell_by_cell() -> None:
    close, far = Verdict(), Verdict()

    compare_text("roc.csv", ROC, ROC.replace("0.9,0.5", "0.9000004,0.5"), close)
    compare_text("roc.csv", ROC, ROC.replace("0.9,0.5", "0.8,0.5"), far)

    assert close.failures == [] and close.largest == pytest.approx(4e-7)
    assert far.failures == ["roc.csv 1/tpr: committed 0.9, now 0.8"]


def test_plot_data_of_another_shape_is_a_difference() -> None:
    verdict = Verdict()

    compare_text("roc.csv", ROC, "fpr,tpr,threshold\n0.0,0.0,1.0\n", verdict)

    assert verdict.failures == [
        "roc.csv: committed 3 rows ['fpr', 'tpr', 'threshold'], now 1 rows ['fpr', 'tpr', 'threshold']"
    ]
