"""evaluation.py: NumPy metrics that must equal scikit-learn's on the same inputs."""

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from lib.errors import ReprolabError
from lib.evaluation import (
    GREATER_IS_BETTER,
    METRICS,
    TASK_METRICS,
    binary_metrics,
    confusion_counts,
    multiclass_metrics,
    regression_metrics,
    roc_auc,
    roc_curve,
    selection_metric,
    task_metrics,
)

pytestmark = pytest.mark.unittest

SEEDS = (0, 1, 2, 3, 4)


def _labels_and_scores(seed: int, n: int = 200, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random 0/1 labels with both classes, and probabilities loosely tied to them.

    With `decimals`, scores are rounded so that many of them tie.
    """
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=n)
    y_true[:2] = (0, 1)
    score = np.clip(0.35 * y_true + rng.uniform(0, 0.65, size=n), 0, 1)
    if decimals is not None:
        score = np.round(score, decimals)
    return y_true, score


def _sklearn_metrics(y_true: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    predicted = (probability >= 0.5).astype(int)
    return {
        "accuracy": skm.accuracy_score(y_true, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, predicted),
        "f1": skm.f1_score(y_true, predicted, zero_division=0),
        "precision": skm.precision_score(y_true, predicted, zero_division=0),
        "recall": skm.recall_score(y_true, predicted, zero_division=0),
        "roc_auc": skm.roc_auc_score(y_true, probability),
        "log_loss": skm.log_loss(y_true, np.clip(probability, 1e-7, 1 - 1e-7), labels=[0, 1]),
    }


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_metrics_match_sklearn(seed: int, decimals: int | None) -> None:
    y_true, probability = _labels_and_scores(seed, decimals=decimals)

    ours = binary_metrics(y_true, probability, prefix="val")

    expected = {f"val/{name}": value for name, value in _sklearn_metrics(y_true, probability).items()}
    assert ours == pytest.approx(expected, abs=1e-6)


def test_a_probability_at_the_threshold_is_positive() -> None:
    scores = binary_metrics(np.array([1, 0]), np.array([0.5, 0.2]), prefix="val")

    assert scores["val/accuracy"] == 1.0
    assert scores["val/recall"] == 1.0


def test_binary_metrics_clip_certain_wrong_answers() -> None:
    y_true = np.array([1, 0, 1, 0])
    probability = np.array([0.0, 1.0, 1.0, 0.0])

    scores = binary_metrics(y_true, probability, prefix="val")

    assert scores["val/log_loss"] == pytest.approx(-math.log(1e-7) / 2, abs=1e-6)
    assert scores["val/log_loss"] == pytest.approx(skm.log_loss(y_true, np.clip(probability, 1e-7, 1 - 1e-7)), abs=1e-6)


def test_keys_are_prefix_slash_metric_in_a_stable_order() -> None:
    y_true, probability = _labels_and_scores(seed=5, n=20)

    scores = binary_metrics(y_true, probability, prefix="test")

    assert list(scores) == [f"test/{name}" for name in METRICS]
    assert all(type(value) is float for value in scores.values())


def test_values_are_rounded_to_six_decimals() -> None:
    y_true, probability = _labels_and_scores(seed=6, n=30)

    scores = binary_metrics(y_true, probability, prefix="val")

    assert all(value == round(value, 6) for value in scores.values())


def test_no_predicted_positives_gives_precision_zero_without_a_warning() -> None:
    y_true = np.array([0, 1, 1, 0, 1])
    probability = np.array([0.1, 0.2, 0.3, 0.4, 0.45])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = binary_metrics(y_true, probability, prefix="val")

    assert scores["val/precision"] == 0.0
    assert scores["val/recall"] == 0.0
    assert scores["val/f1"] == 0.0
    assert scores["val/accuracy"] == 0.4
    assert scores["val/balanced_accuracy"] == 0.5


@pytest.mark.parametrize("label", [0, 1])
def test_a_single_class_gives_roc_auc_nan(label: int) -> None:
    y_true = np.full(6, label)
    probability = np.linspace(0.1, 0.9, 6)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = binary_metrics(y_true, probability, prefix="val")

    assert math.isnan(roc_auc(y_true, probability))
    assert math.isnan(scores["val/roc_auc"])
    assert scores["val/accuracy"] == pytest.approx(skm.accuracy_score(y_true, probability >= 0.5))


@pytest.mark.parametrize("decimals", [None, 1, 0])
@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn_with_ties(seed: int, decimals: int | None) -> None:
    y_true, score = _labels_and_scores(seed, decimals=decimals)

    assert roc_auc(y_true, score) == pytest.approx(skm.roc_auc_score(y_true, score), abs=1e-12)


def test_roc_auc_of_perfect_and_reversed_scores() -> None:
    y_true = np.array([0, 0, 1, 1])

    assert roc_auc(y_true, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y_true, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(y_true, np.full(4, 0.5)) == 0.5


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("seed", SEEDS)
def test_roc_curve_matches_sklearn(seed: int, decimals: int | None) -> None:
    y_true, score = _labels_and_scores(seed, decimals=decimals)

    fpr, tpr, thresholds = roc_curve(y_true, score)

    sk_fpr, sk_tpr, sk_thresholds = skm.roc_curve(y_true, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    # scikit-learn opens with +inf as the threshold above every score; ours opens with 1.0.
    assert thresholds[0] == 1.0
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:], atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_counts_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=50)
    y_pred = rng.integers(0, 2, size=50)

    counts = confusion_counts(y_true, y_pred)

    np.testing.assert_array_equal(counts, skm.confusion_matrix(y_true, y_pred, labels=[0, 1]))


def test_confusion_counts_are_2x2_when_a_class_is_absent() -> None:
    counts = confusion_counts(np.array([1, 1, 1]), np.array([1, 0, 1]))

    np.testing.assert_array_equal(counts, [[0, 0], [1, 2]])


# --- multiclass and regression -------------------------------------------------------------------


def _multiclass(seed: int, n: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, size=n)
    y_true[:k] = np.arange(k)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y_true]
    probability = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probability


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_metrics_match_sklearn(seed: int) -> None:
    y_true, probability = _multiclass(seed)
    predicted = probability.argmax(axis=1)

    ours = multiclass_metrics(y_true, probability, prefix="test")

    assert list(ours) == [f"test/{name}" for name in TASK_METRICS["multiclass"]]
    assert ours == pytest.approx(
        {
            "test/accuracy": skm.accuracy_score(y_true, predicted),
            "test/balanced_accuracy": skm.balanced_accuracy_score(y_true, predicted),
            "test/f1_macro": skm.f1_score(y_true, predicted, average="macro"),
            "test/log_loss": skm.log_loss(y_true, probability),
            "test/roc_auc": skm.roc_auc_score(y_true, probability, multi_class="ovr"),
        },
        abs=1e-6,
    )


def test_multiclass_roc_auc_is_nan_when_a_class_is_absent() -> None:
    probability = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])

    scores = multiclass_metrics(np.array([0, 1, 0]), probability, prefix="val")

    assert math.isnan(scores["val/roc_auc"])
    assert scores["val/accuracy"] == 1.0 and scores["val/f1_macro"] == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(50, 10, size=200)
    prediction = y_true + rng.normal(0, 3, size=200)

    ours = regression_metrics(y_true, prediction, prefix="val")

    assert ours == pytest.approx(
        {
            "val/rmse": skm.root_mean_squared_error(y_true, prediction),
            "val/mae": skm.mean_absolute_error(y_true, prediction),
            "val/r2": skm.r2_score(y_true, prediction),
        },
        abs=1e-6,
    )


def test_task_metrics_dispatch_on_the_task() -> None:
    y_true, probability = _labels_and_scores(seed=1)

    assert task_metrics("binary", y_true, probability, "val") == binary_metrics(y_true, probability, "val")
    assert set(task_metrics("regression", y_true, probability, "val")) == {"val/rmse", "val/mae", "val/r2"}


def test_every_metric_has_a_direction() -> None:
    assert {name for names in TASK_METRICS.values() for name in names} <= set(GREATER_IS_BETTER)


@pytest.mark.parametrize(
    ("task", "metric", "resolved"),
    [
        ("binary", "auto", "roc_auc"),
        ("multiclass", "auto", "f1_macro"),
        ("regression", "auto", "rmse"),
        ("regression", "r2", "r2"),
    ],
)
def test_selection_metric_resolves_auto_per_task(task: str, metric: str, resolved: str) -> None:
    assert selection_metric(task, metric, "stage.selection_metric") == resolved


def test_selection_metric_that_does_not_suit_the_task_is_an_error_naming_the_key() -> None:
    with pytest.raises(ReprolabError, match=r"^stage.selection_metric: roc_auc does not apply to task regression; "):
        selection_metric("regression", "roc_auc", "stage.selection_metric")


def test_a_confusion_matrix_has_a_row_and_column_per_class() -> None:
    counts = confusion_counts(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), n_classes=3)

    np.testing.assert_array_equal(counts, skm.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1]))
