"""summary_charts.py: Mermaid charts of the plot data, for a GitHub job summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.summary_charts import MAX_POINTS, summary_charts, thinned, tpr_at

pytestmark = pytest.mark.unittest

HISTORY = {
    "epoch": [1, 2, 3],
    "train/loss": [0.6, 0.4, 0.3],
    "train/accuracy": [0.7, 0.8, 0.9],
    "val/loss": [0.65, 0.5, 0.45],
    "val/accuracy": [0.6, 0.75, 0.85],
    "val/roc_auc": [0.8, 0.9, 0.95],
}
ROC = {"fpr": [0, 0, 0.1, 0.5, 1], "tpr": [0, 0.5, 0.8, 0.95, 1], "threshold": [2, 0.9, 0.5, 0.2, 0]}


def write(plots: Path, name: str, data: dict) -> None:
    (plots / name).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(data).to_csv(plots / name, index=False)


def charts(text: str) -> list[list[str]]:
    """The mermaid blocks of `text`, each as its lines."""
    return [block.split("```")[0].strip().splitlines() for block in text.split("```mermaid\n")[1:]]


def test_the_training_curves_are_one_chart_per_metric_with_train_and_val(tmp_path: Path) -> None:
    write(tmp_path, "dnn/history.csv", HISTORY)

    loss, accuracy = charts(summary_charts(tmp_path))

    assert loss == [
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "#1f77b4, #ff7f0e"}}}}%%',
        "xychart-beta",
        '  title "Dense network loss (train blue, val orange)"',
        '  x-axis "epoch" ["1", "2", "3"]',
        '  y-axis "loss"',
        "  line [0.6, 0.4, 0.3]",
        "  line [0.65, 0.5, 0.45]",
    ]
    assert accuracy[2] == '  title "Dense network accuracy (train blue, val orange)"'
    assert accuracy[5:] == ["  line [0.7, 0.8, 0.9]", "  line [0.6, 0.75, 0.85]"]


def test_a_history_without_val_draws_train_alone(tmp_path: Path) -> None:
    write(tmp_path, "dnn/history.csv", {key: HISTORY[key] for key in ("epoch", "train/loss", "train/accuracy")})

    loss, _ = charts(summary_charts(tmp_path))

    assert loss[2] == '  title "Dense network loss: train"'
    assert loss[5:] == ["  line [0.6, 0.4, 0.3]"]


def test_a_long_history_is_thinned_keeping_the_first_and_last_epochs(tmp_path: Path) -> None:
    epochs = np.arange(1, 1001)
    write(tmp_path, "dnn/history.csv", {"epoch": epochs, "train/loss": 1 / epochs, "train/accuracy": epochs / 1000})

    loss, _ = charts(summary_charts(tmp_path))

    shown = loss[3].split("[")[1].rstrip("]").split(", ")
    assert len(shown) == MAX_POINTS
    assert shown[0] == '"1"' and shown[-1] == '"1000"'
    assert loss[5].count(",") == MAX_POINTS - 1
    assert list(thinned(5)) == [0, 1, 2, 3, 4]


def test_the_roc_curve_is_read_as_a_staircase_at_even_false_positive_rates() -> None:
    rates = tpr_at(pd.DataFrame(ROC), np.array([0, 0.05, 0.1, 0.3, 0.5, 0.99, 1]))

    assert rates.tolist() == [0.5, 0.5, 0.8, 0.8, 0.95, 0.95, 1.0]


def test_both_roc_curves_share_a_chart_and_the_classifiers_are_bars(tmp_path: Path) -> None:
    write(tmp_path, "dnn/roc.csv", ROC)
    write(tmp_path, "classifiers/roc.csv", {"fpr": [0, 1], "tpr": [1, 1], "threshold": [1, 0]})
    write(tmp_path, "classifiers/comparison.csv", {"classifier": ["knn", "random_forest"], "val/roc_auc": [0.9, 0.97]})

    roc, bars = charts(summary_charts(tmp_path))

    assert roc[2] == '  title "ROC on test (network blue, classifier orange)"'
    assert roc[3].startswith('  x-axis "false positive rate" ["0", "0.05", "0.1", ') and roc[3].endswith('"1"]')
    assert roc[4] == '  y-axis "true positive rate" 0 --> 1'
    assert roc[5].startswith("  line [0.5, 0.5, 0.8, 0.8, ") and roc[6] == "  line [" + ", ".join(["1"] * 21) + "]"
    assert bars[2:] == [
        '  title "Classifiers on val: val/roc_auc"',
        '  x-axis "classifier" ["knn", "random_forest"]',
        '  y-axis "val/roc_auc"',
        "  bar [0.9, 0.97]",
    ]


def test_without_plot_data_the_section_says_so(tmp_path: Path) -> None:
    write(tmp_path, "dnn/roc.csv", {"fpr": [], "tpr": [], "threshold": []})  # no test split: a header only

    assert summary_charts(tmp_path) == f"### Key plots\n\nNo plot data under `{tmp_path}`.\n"
