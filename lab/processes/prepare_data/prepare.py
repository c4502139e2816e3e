"""The stage's work, I/O aside: validate the raw table, split it, fit the preprocessing on train, report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer

from lab.processes.prepare_data.params import PrepareParams
from lab.processes.prepare_data.preprocessing import fit_preprocessing, transform
from lab.processes.prepare_data.splitting import split_dataset
from lab.processes.prepare_data.tables import validate_table
from lib.datasets import TARGET, Schema, Splits


@dataclass(frozen=True)
class Prepared:
    """What the stage produces: the processed splits, the fitted preprocessing, the schema, a report."""

    splits: dict[str, pd.DataFrame]
    preprocessing: ColumnTransformer
    schema: Schema
    report: dict[str, float | int | str]
    reason: str  # why the task is what it is


def data_report(splits: Splits, schema: Schema, features: int) -> dict[str, float | int | str]:
    """The task, class and feature counts, and per split its rows and positive fraction (binary) or target mean."""
    report: dict[str, float | int | str] = {"task": schema.task, "n_classes": schema.n_classes, "features": features}
    mean_name = {"binary": "positive_fraction", "regression": "target_mean"}.get(schema.task)  # the labels' mean
    for name, (_, labels) in splits.items():
        report[f"{name}/rows"] = len(labels)
        if mean_name:
            report[f"{name}/{mean_name}"] = round(float(labels.mean()), 6)
    return report


def prepare(raw: pd.DataFrame, params: PrepareParams, seed: int, folds: Mapping[str, int] | None = None) -> Prepared:
    """Validate `raw` (each class needs rows for `folds`, as `validate_table`), split it with `seed`, fit the
    preprocessing on the train split, process every split, report."""
    table = validate_table(raw, params, folds)
    stratify = table.schema.is_classification
    splits = split_dataset(
        table.features, table.target, params.val_size, params.test_size, seed, params.split, stratify
    )
    transformer = fit_preprocessing(splits["train"].features, params.scale)
    frames = {name: transform(transformer, x).assign(**{TARGET: y}) for name, (x, y) in splits.items()}
    report = data_report(splits, table.schema, frames["train"].shape[1] - 1)
    return Prepared(frames, transformer, table.schema, report, table.reason)
