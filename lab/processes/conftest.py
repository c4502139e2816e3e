"""Fixtures shared by the stage modules' tests: small seeded binary, multiclass and regression data sets, a
writer of processed splits, and a params writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from lib.datasets import TARGET, Schema, Split, Splits, split_path, write_schema, write_split
from lib.params import ParamsFile

N_ROWS = 200
N_FEATURES = 6
DATA_SEED = 0


@pytest.fixture
def table() -> Split:
    """A learnable binary problem: float64 features `f0`..`f5` and int64 0/1 labels, about half each."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=N_ROWS, n_features=N_FEATURES, n_informative=4, n_redundant=2, random_state=DATA_SEED
    )
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")
    return Split(features, y.astype(np.int64))


@pytest.fixture
def splits(table: Split) -> Splits:
    """The synthetic table split 60/20/20 (stratified) the way `lib.datasets.read_splits` returns it."""
    from sklearn.model_selection import train_test_split

    features, labels = table
    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=0.2, stratify=labels, random_state=DATA_SEED
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=0.25, stratify=rest_y, random_state=DATA_SEED
    )
    parts = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
    return {name: Split(x.reset_index(drop=True), y) for name, (x, y) in parts.items()}


@pytest.fixture
def params_file(tmp_path: Path) -> Callable[[dict[str, Any]], ParamsFile]:
    """Write a mapping as `params.yaml` in tmp_path and read it back the way a stage does."""

    def write(data: dict[str, Any]) -> ParamsFile:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return ParamsFile.read(path)

    return write


def _split_frame(features: pd.DataFrame, labels: np.ndarray, stratify: bool) -> Splits:
    """60/20/20 splits, stratified when asked, the way `lib.datasets.read_splits` returns them."""
    from sklearn.model_selection import train_test_split

    by = labels if stratify else None
    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=0.2, stratify=by, random_state=DATA_SEED
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=0.25, stratify=rest_y if stratify else None, random_state=DATA_SEED
    )
    parts = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
    return {name: Split(x.reset_index(drop=True), y) for name, (x, y) in parts.items()}


MULTICLASS = Schema("multiclass", classes=("high", "low", "medium"))
REGRESSION = Schema("regression")


@pytest.fixture
def multiclass_splits() -> Splits:
    """A learnable three-class problem (`MULTICLASS`'s codes 0..2, 300 rows) split 60/20/20, stratified."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=300, n_features=N_FEATURES, n_informative=4, n_redundant=1, n_classes=3, random_state=DATA_SEED
    )
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")
    return _split_frame(features, y.astype(np.int64), stratify=True)


@pytest.fixture
def regression_splits() -> Splits:
    """A learnable regression problem (float64 targets around 100, 200 rows) split 60/20/20."""
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=N_ROWS, n_features=N_FEATURES, n_informative=4, noise=5.0, random_state=DATA_SEED)
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")
    return _split_frame(features, (y + 100).astype(np.float64), stratify=False)


def write_processed(splits: Splits, schema: Schema, data_dir: Path) -> Path:
    """Write `splits` and `schema` as prepare_data does: `<split>.parquet` with a `target` column, schema.json."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, (features, labels) in splits.items():
        write_split(features.assign(**{TARGET: labels}), split_path(data_dir, name))
    write_schema(schema, data_dir)
    return data_dir
