"""What the stage writes and prints, computed from a training result: the plots and the summary line.

Every declared output exists whatever splits there are: without a test split the confusion and ROC
tables are header-only and their figures say "no test split", so `dvc plots show` still renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.processes.train_dnn_pytorch.densenet import Splits, TrainResult
    from lib.plots import PlotSet

MODEL_NAME = "dense network"


def plot_set(result: TrainResult, splits: Splits) -> PlotSet:
    """The history, the training curves, and the test split's confusion matrix and ROC (or stand-ins)."""
    from lib import plots

    if result.test_probability is None:
        plot_set = plots.missing_split_plots(MODEL_NAME)
    else:
        plot_set = plots.evaluation_plots(splits["test"][1], result.test_probability, MODEL_NAME)
    plot_set.tables["history"] = result.history
    plot_set.figures["training_curves"] = plots.training_curves_figure(result.history, result.best_epoch)
    return plot_set


def summary_line(result: TrainResult, epochs: int, device: str) -> str:
    """The one line the stage prints when done."""
    parts = [f"kept epoch {result.best_epoch}/{epochs} on {device}"]
    if result.val_metrics:
        parts.append(f"val/loss {result.val_metrics['val/log_loss']:.4f}")
    else:
        parts[0] = f"kept the last epoch ({epochs}, no val split) on {device}"
    if result.test_metrics:
        parts.append(f"test/accuracy {result.test_metrics['test/accuracy']:.4f}")
    else:
        parts.append("no test split, so no test metrics")
    return ", ".join(parts)
