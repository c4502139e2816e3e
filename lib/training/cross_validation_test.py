"""cross_validation.py: seeded stratified folds of train, one network per fold, per-fold and summary metrics,
and the folds' scores kept in the checkpoints so that a resumed run skips them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from lib.datasets import Split, Splits
from lib.errors import ReprolabError
from lib.evaluation import METRICS, TASK_METRICS
from lib.training import loop
from lib.training.checkpoints import CheckpointStore
from lib.training.cross_validation import cross_validate_and_fit, fold_metrics, fold_splits, summary
from lib.training.loop import BuildNetwork, TrainResult
from lib.training.params import TrainingParams
from tests.data import MULTICLASS, REGRESSION

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")


def _network(n_features: int, n_outputs: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, n_outputs))


def _rows(split: Split) -> set[float]:
    """Row identities: the fixture's features are continuous, so f0 tells rows apart."""
    return set(split.features["f0"].tolist())


def test_folds_partition_train_stratified_and_seeded(splits: Splits) -> None:
    train = splits["train"]

    folds = fold_splits(train, 4, seed=1)

    assert len(folds) == 4
    held = [_rows(fold["val"]) for fold in folds]
    assert set().union(*held) == _rows(train) and sum(len(h) for h in held) == len(train.labels)
    for fold, rows in zip(folds, held, strict=True):
        assert _rows(fold["train"]) == _rows(train) - rows
        assert set(fold) == {"train", "val"}
        assert abs(fold["val"].labels.mean() - train.labels.mean()) < 0.05  # stratified
    assert [_rows(f["val"]) for f in fold_splits(train, 4, seed=1)] == held
    assert [_rows(f["val"]) for f in fold_splits(train, 4, seed=2)] != held


def test_too_few_rows_of_a_class_for_the_folds_is_an_error_naming_the_key() -> None:
    features = pd.DataFrame({"f0": np.arange(10, dtype=np.float64)})
    labels = np.array([0] * 8 + [1] * 2)

    with pytest.raises(ReprolabError, match=r"train_dnn_pytorch.cv_folds: 3 folds need .* the smaller class has 2"):
        fold_splits(Split(features, labels), 3, seed=0, key="train_dnn_pytorch.cv_folds")


def test_cross_validation_trains_one_network_per_fold_and_scores_it_on_the_held_out_fold(
    splits: Splits, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[Splits] = []

    def fake_train(
        params: TrainingParams, build: BuildNetwork, fold: Splits, device: torch.device, seed: int, *_: Any, **__: Any
    ) -> TrainResult:
        seen.append(fold)
        # a score that identifies the held-out rows: their share of positives, and their count
        positives = float(fold["val"].labels.mean())
        metrics = {f"val/{name}": positives for name in METRICS} | {"val/log_loss": float(len(fold["val"].labels))}
        return TrainResult(None, pd.DataFrame(), 1, metrics, {}, None)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "fit", fake_train)
    params = TrainingParams(epochs=1, cv_folds=3)
    scores, _ = cross_validate_and_fit(
        params, _network, splits, CPU, 7, CheckpointStore(tmp_path, "k"), log=lambda _: None
    )

    expected_folds = fold_splits(splits["train"], 3, seed=7)
    assert [_rows(f["val"]) for f in seen[:-1]] == [_rows(f["val"]) for f in expected_folds]
    assert seen[-1] is splits  # then the final network, on all of train
    held_sizes = [len(f["val"].labels) for f in expected_folds]
    positive_shares = [float(f["val"].labels.mean()) for f in expected_folds]
    assert [s["val/log_loss"] for s in scores] == held_sizes
    assert [s["val/roc_auc"] for s in scores] == positive_shares

    totals = summary(scores)
    assert totals["cv/folds"] == 3
    assert totals["cv/roc_auc_mean"] == round(float(np.mean(positive_shares)), 6)
    assert totals["cv/roc_auc_std"] == round(float(np.std(positive_shares)), 6)
    assert totals["cv/log_loss_mean"] == round(float(np.mean(held_sizes)), 6)
    assert set(totals) == {"cv/folds"} | {f"cv/{m}_{s}" for m in METRICS for s in ("mean", "std")}

    per_fold = fold_metrics(scores)
    assert per_fold["cv/fold_2/roc_auc"] == positive_shares[1]
    assert per_fold["cv/fold_3/log_loss"] == held_sizes[2]
    assert len(per_fold) == 3 * len(METRICS)


def test_cross_validation_with_the_real_network_gives_a_score_per_fold(
    splits: Splits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = TrainingParams(epochs=2, batch_size=32, device="cpu", cv_folds=2)
    lines: list[str] = []

    scores, _ = cross_validate_and_fit(
        params, _network, splits, CPU, 0, CheckpointStore(tmp_path, "k"), log=lines.append
    )

    assert len(scores) == 2 and all(set(s) == {f"val/{m}" for m in METRICS} for s in scores)
    assert [line.split(":")[0] for line in lines] == ["cv fold 1/2", "cv fold 2/2"]
    # Outside a terminal each fold's epochs are progress lines too, named after the fold.
    progress = [line.split(": train/loss")[0] for line in capsys.readouterr().err.splitlines()]
    folds = [f"training: cv fold {fold}/2: epoch {epoch}/2" for fold in (1, 2) for epoch in (1, 2)]
    assert progress == [*folds, "training: epoch 1/2", "training: epoch 2/2"]


class _Killed(Exception):
    pass


def test_cross_validate_and_fit_keeps_the_folds_scores_so_a_resumed_run_skips_the_folds(
    splits: Splits, tmp_path: Path
) -> None:
    params = TrainingParams(epochs=4, batch_size=32, device="cpu", cv_folds=2)
    uninterrupted = cross_validate_and_fit(params, _network, splits, CPU, 0, CheckpointStore(tmp_path / "a", "k"))
    lines: list[str] = []

    def kill_at_3(epoch: int, _: dict[str, float]) -> None:
        if epoch == 3:
            raise _Killed

    with pytest.raises(_Killed):
        cross_validate_and_fit(params, _network, splits, CPU, 0, CheckpointStore(tmp_path, "k"), on_epoch=kill_at_3)
    scores, result = cross_validate_and_fit(
        params, _network, splits, CPU, 0, CheckpointStore(tmp_path, "k", log=lines.append), log=lines.append
    )

    assert [line.split(" (")[0] for line in lines] == [f"resuming from checkpoint {tmp_path / 'epoch-0002.pt'}"]
    assert scores == uninterrupted[0] and len(scores) == 2
    assert result.history.equals(uninterrupted[1].history)
    assert result.test_metrics == uninterrupted[1].test_metrics


def test_without_folds_cross_validate_and_fit_trains_the_final_network_alone(splits: Splits, tmp_path: Path) -> None:
    lines: list[str] = []

    scores, result = cross_validate_and_fit(
        TrainingParams(epochs=2, device="cpu"),
        _network,
        splits,
        CPU,
        0,
        CheckpointStore(tmp_path, "k"),
        log=lines.append,
    )

    assert (scores, lines, len(result.history)) == ([], [], 2)


def test_regression_folds_are_plain_seeded_folds_of_train(regression_splits: Splits) -> None:
    from sklearn.model_selection import KFold

    train = regression_splits["train"]

    folds = fold_splits(train, 3, seed=5, schema=REGRESSION)

    expected = [held for _, held in KFold(3, shuffle=True, random_state=5).split(train.features)]
    for fold, held in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(fold["val"].labels, train.labels[held])
    assert sum(len(fold["val"].labels) for fold in folds) == len(train.labels)


def test_too_few_rows_of_one_of_several_classes_names_the_class() -> None:
    few = Split(pd.DataFrame({"f0": np.arange(12, dtype=np.float64)}), np.array([0] * 5 + [1] * 5 + [2] * 2))

    with pytest.raises(
        ReprolabError, match=r"^cv_folds: 3 folds need at least 3 rows of each class in train, class 'medium' has 2$"
    ):
        fold_splits(few, 3, seed=0, schema=MULTICLASS)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_cross_validation_of_each_task_summarises_the_tasks_metrics(
    task: str, multiclass_splits: Splits, regression_splits: Splits, tmp_path: Path
) -> None:
    splits, schema = (multiclass_splits, MULTICLASS) if task == "multiclass" else (regression_splits, REGRESSION)
    params = TrainingParams(epochs=2, batch_size=32, cv_folds=2, device="cpu")

    scores, _ = cross_validate_and_fit(
        params, _network, splits, CPU, 0, CheckpointStore(tmp_path, "k"), log=lambda _: None, schema=schema
    )

    names = TASK_METRICS[task]
    assert set(summary(scores)) == {"cv/folds"} | {f"cv/{n}_{s}" for n in names for s in ("mean", "std")}
