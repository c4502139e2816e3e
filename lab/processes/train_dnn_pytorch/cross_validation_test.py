"""cross_validation.py: seeded stratified folds of train, one network per fold, per-fold and summary metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from lab.processes.train_dnn_pytorch.cross_validation import cross_validate, fold_metrics, fold_splits, summary
from lab.processes.train_dnn_pytorch.densenet import DenseNetParams, TrainResult
from lib.errors import ReprolabError
from lib.evaluation import METRICS

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")
Splits = dict[str, tuple[pd.DataFrame, np.ndarray]]


def _rows(split: tuple[pd.DataFrame, np.ndarray]) -> set[float]:
    """Row identities: the fixture's features are continuous, so f0 tells rows apart."""
    return set(split[0]["f0"].tolist())


def test_folds_partition_train_stratified_and_seeded(splits: Splits) -> None:
    train = splits["train"]

    folds = fold_splits(train, 4, seed=1)

    assert len(folds) == 4
    held = [_rows(fold["val"]) for fold in folds]
    assert set().union(*held) == _rows(train) and sum(len(h) for h in held) == len(train[1])
    for fold, rows in zip(folds, held, strict=True):
        assert _rows(fold["train"]) == _rows(train) - rows
        assert set(fold) == {"train", "val"}
        assert abs(fold["val"][1].mean() - train[1].mean()) < 0.05  # stratified
    assert [_rows(f["val"]) for f in fold_splits(train, 4, seed=1)] == held
    assert [_rows(f["val"]) for f in fold_splits(train, 4, seed=2)] != held


def test_too_few_rows_of_a_class_for_the_folds_is_an_error_naming_the_key() -> None:
    features = pd.DataFrame({"f0": np.arange(10, dtype=np.float64)})
    labels = np.array([0] * 8 + [1] * 2)

    with pytest.raises(ReprolabError, match=r"train_dnn_pytorch.cv_folds: 3 folds need .* the smaller class has 2"):
        fold_splits((features, labels), 3, seed=0)


def test_cross_validate_trains_one_network_per_fold_and_scores_it_on_the_held_out_fold(splits: Splits) -> None:
    seen: list[Splits] = []

    def fake_train(params: DenseNetParams, fold: Splits, device: torch.device, seed: int, **_: Any) -> TrainResult:
        seen.append(fold)
        # a score that identifies the held-out rows: their share of positives, and their count
        positives = float(fold["val"][1].mean())
        metrics = {f"val/{name}": positives for name in METRICS} | {"val/log_loss": float(len(fold["val"][1]))}
        return TrainResult(None, pd.DataFrame(), 1, metrics, {}, None)  # type: ignore[arg-type]

    params = DenseNetParams(epochs=1, cv_folds=3)
    scores = cross_validate(params, splits["train"], CPU, 7, trainer=fake_train, log=lambda _: None)

    expected_folds = fold_splits(splits["train"], 3, seed=7)
    assert [_rows(f["val"]) for f in seen] == [_rows(f["val"]) for f in expected_folds]
    held_sizes = [len(f["val"][1]) for f in expected_folds]
    positive_shares = [float(f["val"][1].mean()) for f in expected_folds]
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


def test_cross_validate_with_the_real_network_gives_a_score_per_fold(splits: Splits) -> None:
    params = DenseNetParams(hidden_layers=[8], epochs=2, batch_size=32, device="cpu", cv_folds=2)
    lines: list[str] = []

    scores = cross_validate(params, splits["train"], CPU, 0, log=lines.append)

    assert len(scores) == 2 and all(set(s) == {f"val/{m}" for m in METRICS} for s in scores)
    assert [line.split(":")[0] for line in lines] == ["cv fold 1/2", "cv fold 2/2"]
