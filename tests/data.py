"""Small seeded data sets for the unit tests, split 60/20/20 the way `lib.datasets.read_splits` returns
them: a binary, a three-class and a regression problem, their schemas, and a writer of processed splits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lib.datasets import SCHEMA_FILE, TARGET, Schema, Split, Splits, split_path, write_split

N_ROWS = 200
N_FEATURES = 6
DATA_SEED = 0
MULTICLASS = Schema("multiclass", classes=("high", "low", "medium"))
REGRESSION = Schema("regression")


def _frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")


def split_frame(features: pd.DataFrame, labels: np.ndarray, stratify: bool) -> Splits:
    """60/20/20 splits of `features` and `labels`, stratified when asked."""
    from sklearn.model_selection import train_test_split

    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=0.2, stratify=labels if stratify else None, random_state=DATA_SEED
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=0.25, stratify=rest_y if stratify else None, random_state=DATA_SEED
    )
    parts = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
    return {name: Split(x.reset_index(drop=True), y) for name, (x, y) in parts.items()}


def binary_table() -> Split:
    """A learnable binary problem: float64 features `f0`..`f5` and int64 0/1 labels, about half each."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=N_ROWS, n_features=N_FEATURES, n_informative=4, n_redundant=2, random_state=DATA_SEED
    )
    return Split(_frame(x), y.astype(np.int64))


def binary_splits() -> Splits:
    """`binary_table` split, stratified."""
    features, labels = binary_table()
    return split_frame(features, labels, stratify=True)


def multiclass_splits() -> Splits:
    """A learnable three-class problem (`MULTICLASS`'s codes 0..2, 300 rows) split, stratified."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=300, n_features=N_FEATURES, n_informative=4, n_redundant=1, n_classes=3, random_state=DATA_SEED
    )
    return split_frame(_frame(x), y.astype(np.int64), stratify=True)


def regression_splits(offset: float) -> Splits:
    """A learnable regression problem (200 rows, float64 targets around `offset`, spread about 100) split."""
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=N_ROWS, n_features=N_FEATURES, n_informative=4, noise=5.0, random_state=DATA_SEED)
    return split_frame(_frame(x), (y + offset).astype(np.float64), stratify=False)


def write_schema(schema: Schema, data_dir: Path) -> None:
    """Write `schema` as prepare_data does: data_dir/schema.json."""
    (data_dir / SCHEMA_FILE).write_text(json.dumps(dataclasses.asdict(schema), indent=2, sort_keys=True) + "\n")


def write_processed(splits: Splits, schema: Schema, data_dir: Path) -> Path:
    """Write `splits` and `schema` as prepare_data does: `<split>.parquet` with a `target` column, schema.json."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, (features, labels) in splits.items():
        write_split(features.assign(**{TARGET: labels}), split_path(data_dir, name))
    write_schema(schema, data_dir)
    return data_dir
