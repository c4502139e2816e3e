"""k-fold cross-validation of a network on the train split (`cv_folds` > 0), then the final network.

Each fold trains a fresh network on the other folds exactly as the final one is trained, with the
held-out fold in the role of val (it picks the kept epoch and is scored). The spread of those scores
says how much the final network's val figures can be trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lib.datasets import Split, Splits
from lib.errors import ReprolabError
from lib.evaluation import METRICS
from lib.training import loop
from lib.training.checkpoints import LOG, Log
from lib.training.distributed import SINGLE, World

if TYPE_CHECKING:
    import torch

    from lib.training.checkpoints import CheckpointStore
    from lib.training.loop import BuildNetwork, EpochCallback, TrainResult
    from lib.training.params import TrainingParams


def fold_splits(train: Split, folds: int, seed: int, key: str = "cv_folds") -> list[Splits]:
    """`train` cut into `folds` seeded, stratified folds: per fold, the rest as `train`, the fold as `val`.

    Too few rows of a class for the folds is an error naming the params `key`.
    """
    from sklearn.model_selection import StratifiedKFold

    features, labels = train
    smallest = int(np.bincount(labels, minlength=2).min())
    if smallest < folds:
        raise ReprolabError(
            f"{key}: {folds} folds need at least {folds} rows of each class in train, the smaller class has {smallest}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        {
            "train": Split(features.iloc[fit].reset_index(drop=True), labels[fit]),
            "val": Split(features.iloc[held].reset_index(drop=True), labels[held]),
        }
        for fit, held in splitter.split(features, labels)
    ]


def cross_validate(
    params: TrainingParams,
    build: BuildNetwork,
    train: Split,
    device: torch.device,
    seed: int,
    *,
    world: World = SINGLE,
    log: Log = LOG,
) -> list[dict[str, float]]:
    """Train one network per fold with `loop.fit`; return each fold's val metrics (empty dicts on ranks but 0)."""
    scores = []
    for number, splits in enumerate(fold_splits(train, params.cv_folds, seed, f"{params.section}.cv_folds"), 1):
        result = loop.fit(params, build, splits, device, seed, progress=False, world=world, log=log)
        scores.append(result.val_metrics)
        if world.is_main:
            log(f"cv fold {number}/{params.cv_folds}: val/roc_auc {result.val_metrics['val/roc_auc']:.4f}")
    return scores


def cross_validate_and_fit(
    params: TrainingParams,
    build: BuildNetwork,
    splits: Splits,
    device: torch.device,
    seed: int,
    checkpoints: CheckpointStore,
    *,
    on_epoch: EpochCallback | None = None,
    world: World = SINGLE,
    log: Log = LOG,
) -> tuple[list[dict[str, float]], TrainResult]:
    """The folds' scores (with `cv_folds`, else none), then the final network trained on all of train.

    The folds' scores go into every checkpoint, so a run resumed during the final training skips them.
    """
    scores: list[dict[str, float]] = []
    if params.cv_folds:
        saved = checkpoints.latest() or {}
        scores = saved.get("cv_scores") or cross_validate(
            params, build, splits["train"], device, seed, world=world, log=log
        )
        checkpoints.extra["cv_scores"] = scores
    result = loop.fit(params, build, splits, device, seed, on_epoch, checkpoints=checkpoints, world=world, log=log)
    return scores, result


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
