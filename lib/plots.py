"""Plots a person looks at: CSV tables for `dvc plots` and matching PNG figures for MLflow and DVC.

Figures are drawn with matplotlib's Agg backend and saved without a timestamp or version stamp, so the
same data gives the same PNG bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lib.evaluation import THRESHOLD, confusion_counts, roc_auc, roc_curve
from lib.outputs import Outputs


def roc_points(y_true: np.ndarray, probability: np.ndarray, max_points: int = 1_000) -> pd.DataFrame:
    """The ROC curve as (`fpr`, `tpr`, `threshold`) rows rounded to 6 decimals, at most `max_points`.

    Above `max_points` an evenly spaced subset (ends included) draws the same curve in a smaller file.
    """
    fpr, tpr, threshold = roc_curve(y_true, probability)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(np.int64))
        fpr, tpr, threshold = fpr[keep], tpr[keep], threshold[keep]
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": threshold}).round(6)


def _figure(width: float = 4.8, height: float = 4.0) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, title: str) -> Figure:
    """A 2x2 confusion matrix with counts in the cells."""
    counts = confusion_counts(y_true, y_pred)
    figure = _figure()
    axes = figure.add_subplot()
    axes.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=14)
    classes = ["0", "1"]
    axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=classes, yticklabels=classes, title=title)
    axes.set(xlabel="predicted", ylabel="actual")
    return figure


def roc_figure(curves: Mapping[str, pd.DataFrame], aucs: Mapping[str, float], title: str) -> Figure:
    """ROC curves of several models on one set of axes, with their AUC in the legend."""
    figure = _figure()
    axes = figure.add_subplot()
    for name, points in curves.items():
        axes.plot(points["fpr"], points["tpr"], label=f"{name} (AUC {aucs[name]:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right", fontsize=8)
    return figure


def training_curves_figure(history: pd.DataFrame, best_epoch: int) -> Figure:
    """Loss and accuracy per epoch for train and val (when the history has val), the kept epoch marked."""
    figure = _figure(9.0, 3.6)
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for split in ("train", "val"):
            if f"{split}/{metric}" in history:
                axes.plot(history["epoch"], history[f"{split}/{metric}"], label=split)
        axes.axvline(best_epoch, color="grey", linestyle=":", label=f"kept (epoch {best_epoch})")
        axes.set(xlabel="epoch", ylabel=metric, title=metric)
        axes.legend(fontsize=8)
    return figure


def notice_figure(text: str, title: str) -> Figure:
    """A figure that only says `text`: the stand-in for a plot whose data does not exist."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11)
    return figure


def save_png(figure: Figure, path: Path) -> None:
    """Save `figure` as a PNG with no metadata that changes between runs."""
    figure.savefig(path, format="png", metadata={"Software": None})


@dataclass
class PlotSet:
    """A stage's plots: tables for `dvc plots` (`<name>.csv`) and figures (`<name>.png`), one folder."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)

    def write(self, outputs: Outputs, folder: Path) -> list[Path]:
        """Stage every table and figure under `folder`; return the PNG paths (to log them)."""
        for name, table in self.tables.items():
            table.to_csv(outputs.path(folder / f"{name}.csv"), index=False)
        for name, figure in self.figures.items():
            save_png(figure, outputs.path(folder / f"{name}.png"))
        return [folder / f"{name}.png" for name in self.figures]


def evaluation_plots(y_true: np.ndarray, probability: np.ndarray, model_name: str, split: str = "test") -> PlotSet:
    """Confusion matrix (one `actual`, `predicted` row per sample) and ROC curve of one model on one split."""
    predicted = (probability >= THRESHOLD).astype("int64")
    points = roc_points(y_true, probability)
    title = f"{model_name} on {split}"
    confusion = pd.DataFrame({"actual": y_true.astype("int64"), "predicted": predicted})
    return PlotSet(
        tables={"confusion": confusion, "roc": points},
        figures={
            "confusion_matrix": confusion_figure(y_true, predicted, title),
            "roc": roc_figure({model_name: points}, {model_name: roc_auc(y_true, probability)}, title),
        },
    )


def missing_split_plots(model_name: str, split: str = "test") -> PlotSet:
    """`evaluation_plots`' files for a missing split: header-only tables (`dvc plots show` renders them), notices."""
    notice = notice_figure(f"no {split} split\n(prepare_data.split leaves it out)", f"{model_name} on {split}")
    return PlotSet(
        tables={
            "confusion": pd.DataFrame({"actual": [], "predicted": []}, dtype="int64"),
            "roc": pd.DataFrame({"fpr": [], "tpr": [], "threshold": []}, dtype="float64"),
        },
        figures={"confusion_matrix": notice, "roc": notice},
    )
