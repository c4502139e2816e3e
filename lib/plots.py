"""Plots a person looks at: CSV tables for `dvc plots` and matching PNG figures for MLflow and DVC.
Figures are saved without a timestamp or version stamp, so the same data gives the same PNG bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lib.datasets import BINARY, Schema, Split
from lib.evaluation import THRESHOLD, confusion_counts, roc_auc, roc_curve
from lib.outputs import Outputs


def roc_points(y_true: np.ndarray, probability: np.ndarray, max_points: int = 1_000) -> pd.DataFrame:
    """The ROC curve as (`fpr`, `tpr`, `threshold`) rows rounded to 6 decimals; above `max_points` rows, an
    evenly spaced subset (ends included) draws the same curve in a smaller file."""
    fpr, tpr, threshold = roc_curve(y_true, probability)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(np.int64))
        fpr, tpr, threshold = fpr[keep], tpr[keep], threshold[keep]
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": threshold}).round(6)


def _figure(width: float = 4.8, height: float = 4.0) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def confusion_figure(
    y_true: np.ndarray, y_pred: np.ndarray, title: str, classes: Sequence[str] = BINARY.classes
) -> Figure:
    """An N x N confusion matrix of class codes, counts in the cells, rows and columns named by `classes`."""
    counts = confusion_counts(y_true, y_pred, len(classes))
    size = max(4.8, 0.6 * len(classes) + 2)
    axes = _figure(size, size * 5 / 6).add_subplot()
    axes.imshow(counts, cmap="Blues")
    fontsize = 14 if len(classes) <= 4 else 9
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=fontsize)
    ticks = list(range(len(classes)))
    axes.set(xticks=ticks, yticks=ticks, xticklabels=list(classes), yticklabels=list(classes), title=title)
    axes.set(xlabel="predicted", ylabel="actual")
    if len(classes) > 4:
        axes.tick_params(axis="x", labelrotation=45)
    return axes.figure


def roc_figure(curves: Mapping[str, pd.DataFrame], aucs: Mapping[str, float], title: str) -> Figure:
    """ROC curves of several models on one set of axes, with their AUC in the legend."""
    axes = _figure().add_subplot()
    for name, points in curves.items():
        axes.plot(points["fpr"], points["tpr"], label=f"{name} (AUC {aucs[name]:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right", fontsize=8)
    return axes.figure


def training_curves_figure(history: pd.DataFrame, best_epoch: int) -> Figure:
    """Loss and accuracy (regression: RMSE) per epoch for train and val (those in the history), the kept epoch
    marked."""
    figure = _figure(9.0, 3.6)
    second = "accuracy" if any(f"{split}/accuracy" in history for split in ("train", "val")) else "rmse"
    for axes, metric in zip(figure.subplots(1, 2), ("loss", second), strict=True):
        for split in ("train", "val"):
            if f"{split}/{metric}" in history:
                axes.plot(history["epoch"], history[f"{split}/{metric}"], label=split)
        axes.axvline(best_epoch, color="grey", linestyle=":", label=f"kept (epoch {best_epoch})")
        axes.set(xlabel="epoch", ylabel=metric, title=metric)
        axes.legend(fontsize=8)
    return figure


def notice_figure(text: str, title: str) -> Figure:
    """A figure that only says `text`: the stand-in for a plot whose data does not exist."""
    axes = _figure().add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11)
    return axes.figure


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


def regression_figures(y_true: np.ndarray, prediction: np.ndarray, title: str) -> dict[str, Figure]:
    """Predicted against actual values (the diagonal is perfect), and the residuals against the predictions."""
    scatter = {"s": 8, "alpha": 0.5}
    versus = _figure().add_subplot()
    versus.scatter(y_true, prediction, **scatter)
    low, high = float(min(y_true.min(), prediction.min())), float(max(y_true.max(), prediction.max()))
    versus.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
    versus.set(xlabel="actual", ylabel="predicted", title=title)
    residuals = _figure().add_subplot()
    residuals.scatter(prediction, y_true - prediction, **scatter)
    residuals.axhline(0, linestyle="--", color="grey", linewidth=0.8)
    residuals.set(xlabel="predicted", ylabel="actual - predicted", title=title)
    return {"predicted_vs_actual": versus.figure, "residuals": residuals.figure}


def evaluation_plots(y_true: np.ndarray, output: np.ndarray, model_name: str, schema: Schema = BINARY) -> PlotSet:
    """One model's plots on test: a confusion table (class codes for binary, names for multiclass) and matrix
    and ROC curves (multiclass: each class against the rest), or for regression a predictions table."""
    title = f"{model_name} on test"
    if schema.task == "regression":
        table = pd.DataFrame({"actual": y_true, "predicted": output}, dtype="float64").round(6)
        table["residual"] = (table["actual"] - table["predicted"]).round(6)
        return PlotSet(tables={"predictions": table}, figures=regression_figures(y_true, output, title))
    actual = np.asarray(y_true).astype("int64")
    if schema.task == "binary":
        predicted = (np.asarray(output) >= THRESHOLD).astype("int64")
        confusion = pd.DataFrame({"actual": actual, "predicted": predicted})
        points = roc_points(y_true, output)
        roc = roc_figure({model_name: points}, {model_name: roc_auc(y_true, output)}, title)
    else:
        predicted, names = np.asarray(output).argmax(axis=1), np.array(schema.classes, dtype=object)
        confusion = pd.DataFrame({"actual": names[actual], "predicted": names[predicted]})
        curves = {name: roc_points(actual == code, output[:, code]) for code, name in enumerate(schema.classes)}
        aucs = {name: roc_auc(actual == code, output[:, code]) for code, name in enumerate(schema.classes)}
        points = pd.concat([curve.assign(**{"class": name}) for name, curve in curves.items()], ignore_index=True)
        points = points[["class", "fpr", "tpr", "threshold"]]
        roc = roc_figure(curves, aucs, f"{title}, each class against the rest")
    return PlotSet(
        tables={"confusion": confusion, "roc": points},
        figures={"confusion_matrix": confusion_figure(actual, predicted, title, schema.classes), "roc": roc},
    )


def _header_only(task: str, notice: Figure) -> PlotSet:
    """`evaluation_plots`' files for `task`: header-only tables (`dvc plots show` renders them), `notice` figures."""
    if task == "regression":
        tables = {"predictions": pd.DataFrame(columns=["actual", "predicted", "residual"])}
        return PlotSet(tables, dict.fromkeys(("predicted_vs_actual", "residuals"), notice))
    roc = ["fpr", "tpr", "threshold"] if task == "binary" else ["class", "fpr", "tpr", "threshold"]
    tables = {"confusion": pd.DataFrame(columns=["actual", "predicted"]), "roc": pd.DataFrame(columns=roc)}
    return PlotSet(tables, dict.fromkeys(("confusion_matrix", "roc"), notice))


def stage_plots(test: Split | None, output: np.ndarray | None, model_name: str, schema: Schema = BINARY) -> PlotSet:
    """Every plot file a training stage declares, whatever the task and split mode: `evaluation_plots` of the
    model's `output` on test (header-only files with a notice when there is no test split), and header-only
    files for the other kind of task."""
    if test is None:
        notice = notice_figure("no test split\n(prepare_data.split leaves it out)", f"{model_name} on test")
        plot_set = _header_only(schema.task, notice)
    else:
        plot_set = evaluation_plots(test.labels, output, model_name, schema)
    kind = "classification" if schema.task == "regression" else "regression"
    notice = notice_figure(f"a {kind} plot: the task is {schema.task}", model_name)
    other = _header_only("binary" if schema.task == "regression" else "regression", notice)
    return PlotSet(plot_set.tables | other.tables, plot_set.figures | other.figures)


def candidates_roc_figure(
    outputs: Mapping[str, np.ndarray | None], val: Split | None, schema: Schema, selected_by: str
) -> Figure:
    """Every candidate model on val in one figure: ROC curves (multiclass: all classes pooled, each against
    the rest), or for regression predicted against actual values; a notice without a val split."""
    title = "all classifiers on val"
    if val is None:
        return notice_figure(f"no val split: selected by {selected_by} on train", title)
    if schema.task == "regression":
        axes = _figure().add_subplot()
        for name, prediction in outputs.items():
            rmse = float(np.sqrt(np.mean((prediction - val.labels) ** 2)))
            axes.scatter(val.labels, prediction, s=8, alpha=0.5, label=f"{name} (RMSE {rmse:.3g})")
        axes.set(xlabel="actual", ylabel="predicted", title=title)
        axes.legend(fontsize=8)
        return axes.figure
    multiclass = schema.task == "multiclass"
    truth = (val.labels[:, None] == np.arange(schema.n_classes)).ravel() if multiclass else val.labels
    curves = {name: roc_points(truth, output.ravel()) for name, output in outputs.items()}
    aucs = {name: roc_auc(truth, output.ravel()) for name, output in outputs.items()}
    return roc_figure(curves, aucs, f"{title}, classes pooled" if multiclass else title)
