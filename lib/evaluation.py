"""Binary classification metrics under stable, hierarchical names (`val/accuracy`, `test/roc_auc`).

Computed with NumPy alone: scikit-learn's metric functions cost about 0.1 s a call in argument
validation, which dominates per-epoch scoring, and importing scikit-learn costs a stage that needs
nothing else from it more than a second. The unit tests check every value against scikit-learn.
"""

from __future__ import annotations

import numpy as np

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


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2x2 counts, rows actual 0/1, columns predicted 0/1."""
    return np.bincount(
        2 * np.asarray(y_true, dtype=np.int64) + np.asarray(y_pred, dtype=np.int64), minlength=4
    ).reshape(2, 2)


def binary_metrics(y_true: np.ndarray, probability: np.ndarray, prefix: str) -> dict[str, float]:
    """`<prefix>/<metric>` of class-1 probabilities against 0/1 labels."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probability = np.asarray(probability, dtype=np.float64)
    predicted = (probability >= THRESHOLD).astype(np.int64)
    (tn, fp), (fn, tp) = confusion_counts(y_true, predicted)
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
