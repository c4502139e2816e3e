"""objectives.py: each task's loss, scored outputs and served output layer, and training a network for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lib.datasets import BINARY, Schema, Splits
from lib.evaluation import TASK_METRICS
from lib.training.checkpoints import CheckpointStore
from lib.training.loop_test import RESUMABLE, SHORT, _kill_at, _Killed, _same, train
from lib.training.objectives import Objective
from tests.data import MULTICLASS, REGRESSION

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")


def test_binary_is_one_logit_with_binary_cross_entropy_and_a_sigmoid() -> None:
    objective = Objective.for_labels(BINARY, np.array([0, 1, 1]))
    outputs, targets = torch.tensor([[0.3], [-1.0], [2.0]]), objective.targets(np.array([1, 0, 0]), CPU)

    assert objective.n_outputs == 1 and targets.shape == (3, 1)
    assert objective.loss(outputs, targets) == pytest.approx(3 * float(nn.BCEWithLogitsLoss()(outputs, targets)))
    assert objective.correct(outputs, targets) == 2
    np.testing.assert_allclose(objective.scored(outputs), torch.sigmoid(outputs).squeeze(1).numpy(), rtol=1e-6)
    assert isinstance(objective.output_layer(), nn.Sigmoid)


def test_multiclass_is_a_logit_per_class_with_cross_entropy_and_a_softmax() -> None:
    objective = Objective.for_labels(MULTICLASS, np.array([0, 1, 2]))
    outputs = torch.tensor([[2.0, 0.1, 0.1], [0.0, 1.0, 3.0], [0.2, 0.1, 0.0]])
    targets = objective.targets(np.array([0, 2, 1]), CPU)

    assert objective.n_outputs == 3 and targets.dtype == torch.int64
    assert objective.loss(outputs, targets) == pytest.approx(3 * float(nn.CrossEntropyLoss()(outputs, targets)))
    assert objective.correct(outputs, targets) == 2
    scored = objective.scored(outputs)
    np.testing.assert_allclose(scored.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(scored, objective.output_layer()(outputs).numpy(), rtol=1e-6)


def test_regression_standardises_the_target_and_serves_it_in_its_own_units() -> None:
    labels = np.array([100.0, 200.0, 300.0])
    objective = Objective.for_labels(REGRESSION, labels)

    assert (objective.target_mean, objective.target_scale) == pytest.approx((200.0, labels.std()))
    targets = objective.targets(labels, CPU)
    np.testing.assert_allclose(targets.squeeze(1).numpy(), (labels - 200) / labels.std(), rtol=1e-6)
    outputs = torch.tensor([[0.0], [1.0], [-1.0]])
    assert objective.loss(outputs, targets) == pytest.approx(float(((outputs - targets) ** 2).sum()))
    np.testing.assert_allclose(objective.scored(outputs), [200.0, 200 + labels.std(), 200 - labels.std()], rtol=1e-6)
    served = objective.output_layer()(outputs).squeeze(1).numpy()
    np.testing.assert_allclose(served, objective.scored(outputs), rtol=1e-5)
    assert objective.correct(outputs, targets) == 0


def test_a_constant_regression_target_is_not_divided_by_zero() -> None:
    assert Objective.for_labels(REGRESSION, np.array([3.0, 3.0])).target_scale == 1.0


# --- training for each task -----------------------------------------------------------------------


def test_a_multiclass_network_learns_and_reports_the_multiclass_metrics(multiclass_splits: Splits) -> None:
    result = train({**SHORT, "epochs": 15}, multiclass_splits, CPU, 0, progress=False, schema=MULTICLASS)

    assert list(result.network(torch.zeros(2, 6)).shape) == [2, 3]
    assert set(result.test_metrics) == {f"test/{name}" for name in TASK_METRICS["multiclass"]}
    assert result.test_metrics["test/accuracy"] > 0.6 and result.test_metrics["test/roc_auc"] > 0.75
    assert result.test_output.shape == (len(multiclass_splits["test"].labels), 3)
    history = result.history
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/roc_auc"} <= set(history)
    assert history["val/loss"].iloc[-1] < history["val/loss"].iloc[0]
    assert history.loc[result.best_epoch - 1, "val/loss"] == result.val_metrics["val/log_loss"]


def test_a_regression_network_learns_the_target_in_its_own_units(regression_splits: Splits) -> None:
    result = train({**SHORT, "epochs": 30}, regression_splits, CPU, 0, progress=False, schema=REGRESSION)

    assert set(result.test_metrics) == {"test/rmse", "test/mae", "test/r2"}
    assert result.test_metrics["test/r2"] > 0.8
    assert abs(result.test_output.mean() - regression_splits["test"].labels.mean()) < 50  # not near 0: rescaled
    assert "train/accuracy" not in result.history and {"val/rmse", "val/r2"} <= set(result.history)
    assert result.history["val/rmse"].iloc[-1] < result.history["val/rmse"].iloc[0]


@pytest.mark.parametrize(("metric", "best"), [("rmse", min), ("r2", max), ("auto", min)])
def test_regression_keeps_the_epoch_best_by_the_selection_metric(regression_splits: Splits, metric: str, best) -> None:
    result = train({**SHORT, "selection_metric": metric}, regression_splits, CPU, 0, progress=False, schema=REGRESSION)

    column = result.history["val/r2" if metric == "r2" else "val/rmse"]
    assert column.iloc[result.best_epoch - 1] == best(column)


def test_a_selection_metric_that_does_not_suit_the_task_fails_before_training(regression_splits: Splits) -> None:
    with pytest.raises(Exception, match=r"^training.selection_metric: accuracy does not apply to task regression"):
        train({**SHORT, "selection_metric": "accuracy"}, regression_splits, CPU, 0, progress=False, schema=REGRESSION)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_a_resumed_run_of_each_task_ends_bit_identical(
    task: str, multiclass_splits: Splits, regression_splits: Splits, tmp_path: Path
) -> None:
    splits, schema = (multiclass_splits, MULTICLASS) if task == "multiclass" else (regression_splits, REGRESSION)
    uninterrupted = train(RESUMABLE, splits, CPU, 3, progress=False, schema=schema)
    with pytest.raises(_Killed):
        train(
            RESUMABLE,
            splits,
            CPU,
            3,
            _kill_at(4),
            progress=False,
            checkpoints=CheckpointStore(tmp_path, "k"),
            schema=schema,
        )
    torch.manual_seed(999)

    resumed = train(
        RESUMABLE, splits, CPU, 3, progress=False, checkpoints=CheckpointStore(tmp_path, "k"), schema=schema
    )

    assert _same(resumed, uninterrupted)
    np.testing.assert_array_equal(resumed.test_output, uninterrupted.test_output)


def test_schema_classes_set_the_output_width_even_when_train_lacks_a_class(multiclass_splits: Splits) -> None:
    four = Schema("multiclass", classes=("a", "b", "c", "d"))

    result = train(SHORT, multiclass_splits, CPU, 0, progress=False, schema=four)

    assert result.test_output.shape[1] == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_mixed_precision_on_cuda_trains_each_task(
    task: str, multiclass_splits: Splits, regression_splits: Splits, tmp_path: Path
) -> None:
    splits, schema = (multiclass_splits, MULTICLASS) if task == "multiclass" else (regression_splits, REGRESSION)
    values = {**SHORT, "device": "cuda", "mixed_precision": True, "epochs": 10}

    result = train(values, splits, torch.device("cuda"), 0, progress=False, schema=schema)

    assert np.isfinite(result.history[["train/loss", "val/loss"]].to_numpy()).all()
    assert result.history["train/loss"].iloc[-1] < result.history["train/loss"].iloc[0]
    assert np.isfinite(result.test_output).all()
