"""k-fold cross-validation on train (`cv_folds` > 0): each fold trained as the final network is, the held-out
fold as val; the spread of their scores says how far the final network's val figures can be trusted."""

from __future__ import annotations

import numpy as np
import torch

from lib.datasets import BINARY, Schema, Split, Splits
from lib.errors import ReprolabError
from lib.evaluation import AUTO_SELECTION
from lib.progress import in_terminal
from lib.training import loop
from lib.training.checkpoints import LOG, CheckpointStore, Log
from lib.training.distributed import SINGLE, World
from lib.training.params import TrainingParams


def fold_splits(train: Split, folds: int, seed: int, key: str = "cv_folds", schema: Schema = BINARY) -> list[Splits]:
    """`train` cut into seeded folds, stratified for classification: per fold, the rest as `train`, the fold
    as `val`."""
    from sklearn.model_selection import KFold, StratifiedKFold

    features, labels = train
    if schema.is_classification:
        counts = np.bincount(labels, minlength=schema.n_classes)  # read_split keeps labels to codes of `classes`
        if (smallest := int(counts.min())) < folds:
            which = "the smaller class" if schema.task == "binary" else f"class '{schema.classes[counts.argmin()]}'"
            raise ReprolabError(
                f"{key}: {folds} folds need at least {folds} rows of each class in train, {which} has {smallest}"
            )
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    elif len(labels) < folds:
        raise ReprolabError(f"{key}: {folds} folds need at least {folds} rows in train, it has {len(labels)}")
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [{"train": _rows(train, fit), "val": _rows(train, held)} for fit, held in splitter.split(features, labels)]


def _rows(split: Split, index: np.ndarray) -> Split:
    return Split(split.features.iloc[index].reset_index(drop=True), split.labels[index])


def cross_validate_and_fit(
    params: TrainingParams,
    build: loop.BuildNetwork,
    splits: Splits,
    device: torch.device,
    seed: int,
    checkpoints: CheckpointStore,
    *,
    on_epoch: loop.EpochCallback | None = None,
    world: World = SINGLE,
    log: Log = LOG,
    schema: Schema = BINARY,
) -> tuple[list[dict[str, float]], loop.TrainResult]:
    """With `cv_folds`, one network per fold of train and its val scores; then the final network on all of train.

    The folds' scores go into every checkpoint, so a run resumed during the final training skips them; on
    ranks other than 0 they are empty dicts.
    """
    scores = (checkpoints.latest or {}).get("cv_scores", [])
    if params.cv_folds and not scores:
        folds = fold_splits(splits["train"], params.cv_folds, seed, f"{params.section}.cv_folds", schema)
        shown = f"val/{AUTO_SELECTION[schema.task]}"
        # progress lines in a log, as for the final network (folds can take most of a long run); no bar
        progress = False if in_terminal() else None
        for number, fold in enumerate(folds, start=1):
            name = f"{params.section}: cv fold {number}/{params.cv_folds}"
            result = loop.fit(
                params, build, fold, device, seed, progress=progress, progress_name=name, world=world, log=log,
                schema=schema,
            )  # fmt: skip
            scores.append(result.val_metrics)
            if world.is_main:
                log(f"cv fold {number}/{params.cv_folds}: {shown} {result.val_metrics[shown]:.4f}")
    checkpoints.extra["cv_scores"] = scores
    result = loop.fit(
        params, build, splits, device, seed, on_epoch, checkpoints=checkpoints, world=world, log=log, schema=schema
    )
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
    for metric in (name.removeprefix("val/") for name in scores[0]):
        values = np.array([fold[f"val/{metric}"] for fold in scores], dtype=np.float64)
        result[f"cv/{metric}_mean"] = round(float(values.mean()), 6)
        result[f"cv/{metric}_std"] = round(float(values.std()), 6)
    return result
