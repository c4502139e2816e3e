"""k-fold cross-validation of the dense network on the train split (`cv_folds` > 0).

Each fold trains a fresh network on the other folds exactly as the stage trains its final one, with
the held-out fold in the role of val (it picks the kept epoch and is scored). The spread of those
scores says how much the final network's val figures can be trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lab.processes.train_dnn_pytorch.checkpoints import Log, log_line
from lab.processes.train_dnn_pytorch.distributed import SINGLE, World
from lib.errors import ReprolabError
from lib.evaluation import METRICS

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from lab.processes.train_dnn_pytorch.densenet import DenseNetParams, Splits, TrainResult

Split = tuple["pd.DataFrame", np.ndarray]
Trainer = Callable[..., "TrainResult"]


def fold_splits(train: Split, folds: int, seed: int) -> list[Splits]:
    """`train` cut into `folds` seeded, stratified folds: per fold, the rest as `train`, the fold as `val`."""
    from sklearn.model_selection import StratifiedKFold

    features, labels = train
    smallest = int(np.bincount(labels, minlength=2).min())
    if smallest < folds:
        raise ReprolabError(
            f"train_dnn_pytorch.cv_folds: {folds} folds need at least {folds} rows of each class in train, "
            f"the smaller class has {smallest}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        {
            "train": (features.iloc[fit].reset_index(drop=True), labels[fit]),
            "val": (features.iloc[held].reset_index(drop=True), labels[held]),
        }
        for fit, held in splitter.split(features, labels)
    ]


def cross_validate(
    params: DenseNetParams,
    train: Split,
    device: torch.device,
    seed: int,
    *,
    world: World = SINGLE,
    log: Log = log_line,
    trainer: Trainer | None = None,
) -> list[dict[str, float]]:
    """Train one network per fold; return each fold's val metrics (`val/<metric>`), in fold order.

    On ranks other than 0 the list holds empty dicts: rank 0 alone scores.
    """
    if trainer is None:
        from lab.processes.train_dnn_pytorch.densenet import train as trainer
    scores = []
    for number, splits in enumerate(fold_splits(train, params.cv_folds, seed), start=1):
        result = trainer(params, splits, device, seed, progress=False, world=world, log=log)
        scores.append(result.val_metrics)
        if world.is_main:
            log(f"cv fold {number}/{params.cv_folds}: val/roc_auc {result.val_metrics['val/roc_auc']:.4f}")
    return scores


def fold_metrics(scores: list[dict[str, float]]) -> dict[str, float]:
    """Each fold's scores as `cv/fold_<i>/<metric>` (for MLflow)."""
    return {
        f"cv/fold_{number}/{name.removeprefix('val/')}": value
        for number, fold in enumerate(scores, start=1)
        for name, value in fold.items()
    }


def summary(scores: list[dict[str, float]]) -> dict[str, float]:
    """`cv/folds`, and the mean and (population) standard deviation over folds of every metric."""
    result: dict[str, float] = {"cv/folds": len(scores)}
    for metric in METRICS:
        values = np.array([fold[f"val/{metric}"] for fold in scores], dtype=np.float64)
        result[f"cv/{metric}_mean"] = round(float(values.mean()), 6)
        result[f"cv/{metric}_std"] = round(float(values.std()), 6)
    return result
