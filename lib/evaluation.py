"""Binary, multiclass and regression metrics under stable, hierarchical names (`val/accuracy`, `test/roc_auc`).
NumPy alone, checked against scikit-learn by the tests: its metric functions are several times slower a call
(per-epoch scoring), and importing it costs a stage that needs nothing else from it seconds."""

from __future__ import annotations

import numpy as np

from lib.errors import ReprolabError

METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
THRESHOLD = 0.5  # a probability at or above it predicts class 1
_EPS = 1e-7


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, from (0, 0) to (1, 1), highest threshold first."""
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    ordered_score, ordered_true = score[order], np.asarray(y_true)[order] == 1
    last_of_each = np.r_[np.flatnonzero(np.diff(ordered_score)), len(ordered_score) - 1]
    tps = np.cumsum(ordered_true)[last_of_each]
    fps = (last_of_each + 1) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    thresholds = np.r_[1.0, ordered_score[last_of_each]]
    return fpr, tpr, thresholds


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (tied scores count half); NaN unless both classes are present."""
    if len(np.unique(y_true)) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, score)
    return float(np.trapezoid(tpr, fpr))


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """n_classes x n_classes counts, rows the actual class codes, columns the predicted ones."""
    codes = n_classes * np.asarray(y_true, dtype=np.int64) + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(codes, minlength=n_classes**2).reshape(n_classes, n_classes)


def binary_metrics(y_true: np.ndarray, probability: np.ndarray, prefix: str) -> dict[str, float]:
    """`<prefix>/<metric>` of class-1 probabilities against 0/1 labels."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probability = np.asarray(probability, dtype=np.float64)
    (tn, fp), (fn, tp) = confusion_counts(y_true, probability >= THRESHOLD)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    clipped = np.clip(probability, _EPS, 1 - _EPS)
    values = {
        "accuracy": (tp + tn) / len(y_true),
        "balanced_accuracy": (recall + _ratio(tn, tn + fp)) / 2,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "precision": precision,
        "recall": recall,
        "roc_auc": roc_auc(y_true, probability),
        "log_loss": -np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped)),
    }
    return {f"{prefix}/{name}": round(float(value), 6) for name, value in values.items()}


# The metrics each task reports, in file order; binary keeps `METRICS`.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": METRICS,
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}
# Whether a higher value of a metric (or loss) is better; selection and goal comparisons read it.
GREATER_IS_BETTER: dict[str, bool] = dict.fromkeys(
    ("accuracy", "balanced_accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc", "r2"), True
) | dict.fromkeys(("log_loss", "loss", "rmse", "mae"), False)
# What `selection_metric: auto` means for each task.
AUTO_SELECTION: dict[str, str] = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}


def multiclass_metrics(y_true: np.ndarray, probability: np.ndarray, prefix: str) -> dict[str, float]:
    """`<prefix>/<metric>` of an (n, K) probability table against label codes 0..K-1; macro averages run over the
    classes in the labels or predictions, as scikit-learn's do; ROC AUC is NaN unless every class is present."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probability = np.asarray(probability, dtype=np.float64)
    n_classes = probability.shape[1]
    counts = confusion_counts(y_true, probability.argmax(axis=1), n_classes)
    hits, actual, called = np.diag(counts), counts.sum(axis=1), counts.sum(axis=0)
    present, seen = actual > 0, (actual + called) > 0
    recall = np.divide(hits, actual, out=np.zeros(n_classes), where=present)
    precision = np.divide(hits, called, out=np.zeros(n_classes), where=called > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_classes), where=precision + recall > 0)
    normalised = probability / probability.sum(axis=1, keepdims=True)
    picked = np.clip(normalised[np.arange(len(y_true)), y_true], _EPS, 1)
    aucs = [roc_auc(y_true == k, probability[:, k]) for k in range(n_classes)] if present.all() else [np.nan]
    values = {
        "accuracy": hits.sum() / len(y_true),
        "balanced_accuracy": recall[present].mean(),
        "f1_macro": f1[seen].mean(),
        "log_loss": -np.mean(np.log(picked)),
        "roc_auc": np.mean(aucs),
    }
    return {f"{prefix}/{name}": round(float(value), 6) for name, value in values.items()}


def regression_metrics(y_true: np.ndarray, prediction: np.ndarray, prefix: str) -> dict[str, float]:
    """`<prefix>/rmse`, `mae` and `r2` of predictions against true values (R² is NaN for a constant target)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    error = np.asarray(prediction, dtype=np.float64) - y_true
    total = np.sum((y_true - y_true.mean()) ** 2)
    values = {
        "rmse": np.sqrt(np.mean(error**2)),
        "mae": np.mean(np.abs(error)),
        "r2": 1 - np.sum(error**2) / total if total else np.nan,
    }
    return {f"{prefix}/{name}": round(float(value), 6) for name, value in values.items()}


def task_metrics(task: str, y_true: np.ndarray, output: np.ndarray, prefix: str) -> dict[str, float]:
    """The task's metrics of a model's output: class-1 probabilities (binary), an (n, K) probability
    table (multiclass) or predicted values (regression)."""
    score = {"binary": binary_metrics, "multiclass": multiclass_metrics, "regression": regression_metrics}[task]
    return score(y_true, output, prefix)


def selection_metric(task: str, metric: str, key: str, also: tuple[str, ...] = ()) -> str:
    """`metric` resolved for `task` (`auto` is `AUTO_SELECTION`'s); an error names `key` when it is neither
    one of the task's metrics nor in `also`."""
    resolved = AUTO_SELECTION[task] if metric == "auto" else metric
    allowed = (*TASK_METRICS[task], *also)
    if resolved not in allowed:
        raise ReprolabError(f"{key}: {metric} does not apply to task {task}; use auto or one of {', '.join(allowed)}")
    return resolved
