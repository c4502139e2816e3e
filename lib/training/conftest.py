"""Fixtures for the training machinery's tests: small seeded binary, multiclass and regression problems, split
like the stages' data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.datasets import Schema, Split, Splits

N_ROWS = 200
N_FEATURES = 6
DATA_SEED = 0


@pytest.fixture
def splits() -> Splits:
    """A learnable binary problem (float64 `f0`..`f5`, int64 0/1 labels) split 60/20/20, stratified."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=N_ROWS, n_features=N_FEATURES, n_informative=4, n_redundant=2, random_state=DATA_SEED
    )
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")
    labels = y.astype(np.int64)
    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=0.2, stratify=labels, random_state=DATA_SEED
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=0.25, stratify=rest_y, random_state=DATA_SEED
    )
    parts = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
    return {name: Split(x.reset_index(drop=True), y) for name, (x, y) in parts.items()}


MULTICLASS = Schema("multiclass", classes=("a", "b", "c"))
REGRESSION = Schema("regression")


def _cut(features: pd.DataFrame, labels: np.ndarray, stratify: bool) -> Splits:
    from sklearn.model_selection import train_test_split

    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=0.2, stratify=labels if stratify else None, random_state=DATA_SEED
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=0.25, stratify=rest_y if stratify else None, random_state=DATA_SEED
    )
    parts = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
    return {name: Split(x.reset_index(drop=True), y) for name, (x, y) in parts.items()}


@pytest.fixture
def multiclass_splits() -> Splits:
    """A learnable three-class problem (`MULTICLASS`'s codes, 300 rows) split 60/20/20, stratified."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=300, n_features=N_FEATURES, n_informative=4, n_redundant=1, n_classes=3, random_state=DATA_SEED
    )
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")
    return _cut(features, y.astype(np.int64), stratify=True)


@pytest.fixture
def regression_splits() -> Splits:
    """A learnable regression problem with a target far from 0 and 1 (around 500, spread about 100)."""
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=N_ROWS, n_features=N_FEATURES, n_informative=4, noise=5.0, random_state=DATA_SEED)
    features = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).astype("float64")
    return _cut(features, (y + 500).astype(np.float64), stratify=False)
