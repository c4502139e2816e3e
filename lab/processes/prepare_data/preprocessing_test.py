"""preprocessing.py: imputation, scaling and one-hot encoding fitted on train, replayed on new rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.processes.prepare_data.preprocessing import CATEGORICAL, NUMERIC, fit_preprocessing, transform
from lib.datasets import DataError

pytestmark = pytest.mark.unittest


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": [1.0, 2.0, np.nan, 5.0],
            "region": ["north", np.nan, "south", "north"],
            "flat": [3.0, 3.0, 3.0, 3.0],
        }
    ).astype({"region": object})


def test_numeric_gaps_get_the_train_median_then_scaling_and_categories_one_hot_columns() -> None:
    fitted = fit_preprocessing(_train(), scale=True)

    out = transform(fitted, _train())

    assert list(out.columns) == ["size", "flat", "region_north", "region_south"]
    assert (out.dtypes == "float64").all()
    size = np.array([1.0, 2.0, 2.0, 5.0])  # the gap filled with the median of 1, 2, 5
    np.testing.assert_allclose(out["size"], (size - size.mean()) / size.std())
    assert out["flat"].tolist() == [0.0] * 4  # a constant column is centred, not divided by zero
    # the missing region is the most frequent one, north
    assert out[["region_north", "region_south"]].to_numpy().tolist() == [[1, 0], [1, 0], [0, 1], [1, 0]]


def test_without_scaling_numbers_keep_their_values() -> None:
    fitted = fit_preprocessing(_train(), scale=False)

    out = transform(fitted, _train())

    assert out["size"].tolist() == [1.0, 2.0, 2.0, 5.0]
    assert list(fitted.named_transformers_[NUMERIC].named_steps) == ["impute"]


def test_new_rows_use_train_statistics_and_an_unseen_category_is_all_zeros() -> None:
    fitted = fit_preprocessing(_train(), scale=True)
    new = pd.DataFrame({"size": [np.nan, 8.0], "region": ["east", np.nan], "flat": [3.0, np.nan]})

    out = transform(fitted, new.astype({"region": object}))

    scaler = fitted.named_transformers_[NUMERIC].named_steps["scale"]
    np.testing.assert_allclose(out["size"], (np.array([2.0, 8.0]) - scaler.mean_[0]) / scaler.scale_[0])
    assert out[["region_north", "region_south"]].to_numpy().tolist() == [[0, 0], [1, 0]]
    assert out.index.tolist() == [0, 1]


def test_a_table_of_only_numbers_or_only_categories_is_processed() -> None:
    numbers = _train()[["size"]]
    words = _train()[["region"]]

    assert list(transform(fit_preprocessing(numbers, True), numbers).columns) == ["size"]
    assert list(transform(fit_preprocessing(words, True), words).columns) == ["region_north", "region_south"]
    assert fit_preprocessing(words, True).named_transformers_[CATEGORICAL].named_steps["encode"].handle_unknown == (
        "ignore"
    )


def test_encoded_names_that_clash_with_a_column_are_one_line() -> None:
    train = pd.DataFrame({"region": ["north", "south"], "region_north": [1.0, 2.0]}).astype({"region": object})

    with pytest.raises(DataError) as caught:
        fit_preprocessing(train, scale=True)

    assert str(caught.value).startswith("encoded feature names clash (")
    assert str(caught.value).endswith("; rename a column")
