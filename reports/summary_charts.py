"""The key plots for a GitHub job summary, as Mermaid `xychart-beta` charts drawn from the plots' CSV files.

A job summary shows no `data:` image nor a repository path, but draws Mermaid (lab/docs/report.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

MAX_POINTS = 60  # per line: a long history is thinned to evenly spaced epochs, the first and last kept
FPR_GRID = np.linspace(0, 1, 21)  # xychart spaces a line's values evenly: the ROC curve is read at these
COLOURS = {"blue": "#1f77b4", "orange": "#ff7f0e", "green": "#2ca02c", "red": "#d62728"}  # by name, for the title


def thinned(count: int) -> np.ndarray:
    """At most MAX_POINTS evenly spaced indices into `count` rows, the first and the last included."""
    return np.unique(np.linspace(0, count - 1, min(count, MAX_POINTS)).round().astype(np.int64))


def _number(value: float) -> str:
    return f"{float(value):.4g}"


def xychart(
    title: str,
    x_label: str,
    x: Sequence[object],
    y_label: str,
    series: Mapping[str, Sequence[float]],
    mark: str = "line",
    y_range: tuple[float, float] | None = None,
) -> str:
    """A Markdown `mermaid` block: one `mark` (line or bar) per entry of `series` over the categories `x`.
    xychart has no legend, so the title names each series' colour."""
    legend = ", ".join(f"{name} {colour}" for name, colour in zip(series, COLOURS, strict=False))
    title = f"{title} ({legend})" if len(series) > 1 else ": ".join(filter(None, [title, *series]))
    theme = {"themeVariables": {"xyChart": {"plotColorPalette": ", ".join([*COLOURS.values()][: len(series)])}}}
    span = f" {_number(y_range[0])} --> {_number(y_range[1])}" if y_range else ""
    categories = ", ".join(f'"{value}"' for value in x)
    return "\n".join(
        [
            "```mermaid",
            f"%%{{init: {json.dumps(theme)}}}%%",
            "xychart-beta",
            f'  title "{title}"',
            f'  x-axis "{x_label}" [{categories}]',
            f'  y-axis "{y_label}"{span}',
            *(f"  {mark} [{', '.join(_number(value) for value in values)}]" for values in series.values()),
            "```",
        ]
    )


def training_curves(history: pd.DataFrame) -> list[str]:
    """Loss and accuracy per epoch, train and val (where the history has them), thinned to MAX_POINTS."""
    rows = history.iloc[thinned(len(history))]
    charts = []
    for metric in ("loss", "accuracy"):
        lines = {
            split: rows[f"{split}/{metric}"].tolist()
            for split in ("train", "val")
            if f"{split}/{metric}" in rows and rows[f"{split}/{metric}"].notna().all()
        }
        if lines and len(rows):
            epochs = rows["epoch"].astype(int).tolist()
            charts.append(xychart(f"Dense network {metric}", "epoch", epochs, metric, lines))
    return charts


def tpr_at(roc: pd.DataFrame, fpr: np.ndarray = FPR_GRID) -> np.ndarray:
    """The ROC curve's true positive rate at each false positive rate of `fpr`: the highest it reaches at that
    rate or below (the curve is a staircase)."""
    best = roc.groupby("fpr")["tpr"].max().cummax()
    return best.reindex(fpr, method="ffill").fillna(0.0).to_numpy()


def summary_charts(plots_dir: Path) -> str:
    """The Markdown section of key plots from the CSV files under `plots_dir`; says so when there are none."""

    def read(path: str) -> pd.DataFrame:
        return pd.read_csv(plots_dir / path) if (plots_dir / path).is_file() else pd.DataFrame()

    charts = training_curves(read("dnn/history.csv"))
    rocs = {name: read(f"{folder}/roc.csv") for name, folder in (("network", "dnn"), ("classifier", "classifiers"))}
    if lines := {name: tpr_at(roc).tolist() for name, roc in rocs.items() if len(roc)}:
        x = [_number(value) for value in FPR_GRID]
        charts.append(xychart("ROC on test", "false positive rate", x, "true positive rate", lines, y_range=(0, 1)))
    comparison, metric = read("classifiers/comparison.csv"), "val/roc_auc"
    if len(comparison) and metric in comparison and comparison[metric].notna().all():
        names, scores = comparison["classifier"].tolist(), {"": comparison[metric].tolist()}
        charts.append(xychart(f"Classifiers on val: {metric}", "classifier", names, metric, scores, "bar"))
    return "\n\n".join(["### Key plots", *(charts or [f"No plot data under `{plots_dir}`."])]) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the key plots' section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"), help="the stages' plot folders")
    print(summary_charts(parser.parse_args(argv).plots_dir), end="")


if __name__ == "__main__":
    main()
