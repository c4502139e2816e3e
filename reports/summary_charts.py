"""The key plots for a GitHub job summary, as Mermaid `xychart-beta` charts drawn from the plots' CSV files.

A job summary is GitHub-flavoured Markdown: it draws Mermaid diagrams, but shows no image given as a
`data:` URI or as a path in the repository (lab/docs/report.md). So the charts are drawn from the plot
data: the network's loss and accuracy per epoch, the ROC curves on test, the classifiers compared on val.

    python -m reports.summary_charts [--plots-dir plots] >>"$GITHUB_STEP_SUMMARY"
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
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
COLOUR_NAMES = ("blue", "orange", "green", "red")


def thinned(count: int, most: int = MAX_POINTS) -> np.ndarray:
    """At most `most` evenly spaced indices into `count` rows, the first and the last included."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(np.int64))


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
    legend = ", ".join(f"{name} {colour}" for name, colour in zip(series, COLOUR_NAMES, strict=False))
    theme = {"themeVariables": {"xyChart": {"plotColorPalette": ", ".join(COLOURS[: len(series)])}}}
    span = f" {_number(y_range[0])} --> {_number(y_range[1])}" if y_range else ""
    categories = ", ".join(f'"{value}"' for value in x)
    return "\n".join(
        [
            "```mermaid",
            f"%%{{init: {json.dumps(theme)}}}%%",
            "xychart-beta",
            f'  title "{title} ({legend})"'
            if len(series) > 1
            else f'  title "{": ".join(filter(None, [title, *series]))}"',
            f'  x-axis "{x_label}" [{categories}]',
            f'  y-axis "{y_label}"{span}',
            *(f"  {mark} [{', '.join(_number(value) for value in values)}]" for values in series.values()),
            "```",
        ]
    )


def training_curves(history: pd.DataFrame) -> list[str]:
    """Loss and accuracy per epoch, train and val (where the history has them), thinned to MAX_POINTS."""
    rows = history.iloc[thinned(len(history))] if len(history) else history
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
    """The ROC curve's true positive rate at each false positive rate of `fpr`: the highest it reaches at
    that rate or below (the curve is a staircase)."""
    order = np.argsort(roc["fpr"].to_numpy(), kind="stable")
    rates, best = roc["fpr"].to_numpy()[order], np.maximum.accumulate(roc["tpr"].to_numpy()[order])
    reached = np.searchsorted(rates, fpr, side="right") - 1
    return np.where(reached >= 0, best[np.clip(reached, 0, None)], 0.0)


def roc_chart(curves: Mapping[str, pd.DataFrame]) -> str | None:
    """The ROC curves on test in one chart (None when no curve has points)."""
    lines = {name: tpr_at(roc).tolist() for name, roc in curves.items() if len(roc)}
    if not lines:
        return None
    x = [_number(value) for value in FPR_GRID]
    return xychart("ROC on test", "false positive rate", x, "true positive rate", lines, y_range=(0, 1))


def comparison_chart(comparison: pd.DataFrame, metric: str = "val/roc_auc") -> str | None:
    """The classifiers' `metric` on val as bars (None without val scores)."""
    if metric not in comparison or comparison[metric].isna().any() or not len(comparison):
        return None
    names = comparison["classifier"].tolist()
    return xychart(
        f"Classifiers on val: {metric}", "classifier", names, metric, {"": comparison[metric].tolist()}, "bar"
    )


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def summary_charts(plots_dir: Path) -> str:
    """The Markdown section of key plots from the CSV files under `plots_dir`; says so when there are none."""
    charts: list[str] = []
    history = _csv(plots_dir / "dnn" / "history.csv")
    if history is not None:
        charts += training_curves(history)
    rocs = {
        name: _csv(plots_dir / folder / "roc.csv")
        for name, folder in (("network", "dnn"), ("classifier", "classifiers"))
    }
    charts.append(roc_chart({name: roc for name, roc in rocs.items() if roc is not None}))
    comparison = _csv(plots_dir / "classifiers" / "comparison.csv")
    if comparison is not None:
        charts.append(comparison_chart(comparison))
    drawn = [chart for chart in charts if chart]
    return "\n\n".join(["### Key plots", *(drawn or [f"No plot data under `{plots_dir}`."])]) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the key plots' section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"), help="the stages' plot folders")
    print(summary_charts(parser.parse_args(argv).plots_dir), end="")


if __name__ == "__main__":
    main()
