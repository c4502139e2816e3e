"""splitting.py: split sizes, stratification for classification only, reproducibility, split modes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.processes.prepare_data.params import BUILTIN_SOURCE, PrepareParams
from lab.processes.prepare_data.splitting import split_dataset
from lab.processes.prepare_data.tables import load_raw, validate_table
from lib.datasets import SPLITS, TARGET, Split

pytestmark = pytest.mark.unittest


@pytest.fixture(scope="module")
def cancer() -> Split:
    """The built-in data set's features and labels, validated once for the module."""
    table = validate_table(load_raw(BUILTIN_SOURCE, TARGET), PrepareParams())
    return Split(table.features, table.target)


@pytest.mark.parametrize(("val_size", "test_size"), [(0.2, 0.2), (0.15, 0.25), (0.3, 0.1)])
def test_split_sizes_match_the_fractions(cancer: Split, val_size: float, test_size: float) -> None:
    features, labels = cancer
    n = len(labels)

    parts = split_dataset(features, labels, val_size, test_size, seed=0)

    sizes = {name: len(y) for name, (_, y) in parts.items()}
    assert sum(sizes.values()) == n
    assert abs(sizes["val"] - val_size * n) <= 1
    assert abs(sizes["test"] - test_size * n) <= 1
    # val and test are each rounded up, so train absorbs up to one row from each
    assert abs(sizes["train"] - (1 - val_size - test_size) * n) <= 2


def test_split_is_stratified(cancer: Split) -> None:
    features, labels = cancer

    parts = split_dataset(features, labels, 0.2, 0.2, seed=0)

    for name, (_, y) in parts.items():
        assert abs(y.mean() - labels.mean()) <= 0.02, name


def test_a_regression_split_is_not_stratified_and_keeps_targets_with_their_rows() -> None:
    features = pd.DataFrame({"x": np.arange(100.0)})
    target = np.arange(100.0) * 1.5

    parts = split_dataset(features, target, 0.2, 0.2, seed=0, stratify=False)

    assert {name: len(y) for name, (_, y) in parts.items()} == {"train": 60, "val": 20, "test": 20}
    for x, y in parts.values():
        np.testing.assert_array_equal(y, x["x"].to_numpy() * 1.5)


def test_split_partitions_rows_and_keeps_labels_with_their_rows(cancer: Split) -> None:
    features, labels = cancer

    parts = split_dataset(features, labels, 0.2, 0.2, seed=0)

    indexes = [set(x.index) for x, _ in parts.values()]
    assert sum(len(index) for index in indexes) == len(features)
    assert set().union(*indexes) == set(features.index)
    for x, y in parts.values():
        np.testing.assert_array_equal(y, labels[x.index.to_numpy()])
        pd.testing.assert_frame_equal(x, features.loc[x.index])


def test_split_is_reproducible_for_a_seed_and_changes_with_it(cancer: Split) -> None:
    features, labels = cancer

    first = split_dataset(features, labels, 0.2, 0.2, seed=3)
    again = split_dataset(features, labels, 0.2, 0.2, seed=3)
    other = split_dataset(features, labels, 0.2, 0.2, seed=4)

    for name in SPLITS:
        pd.testing.assert_frame_equal(first[name].features, again[name].features)
        np.testing.assert_array_equal(first[name].labels, again[name].labels)
        assert set(first[name].features.index) != set(other[name].features.index)


def test_split_mode_train_keeps_every_row_in_order(cancer: Split) -> None:
    features, labels = cancer

    parts = split_dataset(features, labels, 0.2, 0.2, seed=0, mode="train")

    assert list(parts) == ["train"]
    pd.testing.assert_frame_equal(parts["train"].features, features)
    np.testing.assert_array_equal(parts["train"].labels, labels)


def test_split_mode_train_test_holds_out_test_size_stratified(cancer: Split) -> None:
    features, labels = cancer

    parts = split_dataset(features, labels, 0.2, 0.3, seed=0, mode="train_test")

    assert list(parts) == ["train", "test"]
    assert len(parts["train"].labels) + len(parts["test"].labels) == len(labels)
    assert abs(len(parts["test"].labels) - 0.3 * len(labels)) <= 1
    assert set(parts["train"].features.index).isdisjoint(parts["test"].features.index)
    for name, (_, y) in parts.items():
        assert abs(y.mean() - labels.mean()) <= 0.02, name


def test_split_mode_train_test_holds_out_the_same_test_rows_as_three_splits(cancer: Split) -> None:
    features, labels = cancer

    two = split_dataset(features, labels, 0.2, 0.2, seed=7, mode="train_test")
    three = split_dataset(features, labels, 0.2, 0.2, seed=7, mode="train_val_test")

    pd.testing.assert_frame_equal(two["test"].features, three["test"].features)
    assert set(two["train"].features.index) == set(three["train"].features.index) | set(three["val"].features.index)
