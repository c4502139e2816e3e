"""tables.py: reading the sources, validating a user's table, inferring the task; each error's exact line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lab.processes.prepare_data.params import BUILTIN_SOURCE, SYNTHETIC_SOURCE, PrepareParams
from lab.processes.prepare_data.tables import (
    MAX_AUTO_CLASSES,
    MIN_ROWS_PER_CLASS,
    as_categories,
    infer_task,
    load_raw,
    validate_table,
    with_synthetic_gaps,
)
from lib.datasets import TARGET, DataError, Split

pytestmark = pytest.mark.unittest

SOURCE = "table.csv"


def _raw(table: Split, label: str = TARGET, labels: Any = None) -> pd.DataFrame:
    """The synthetic table as a raw file would hold it: features plus a label column."""
    return table.features.assign(**{label: table.labels if labels is None else labels})


def _params(**values: Any) -> PrepareParams:
    return PrepareParams(source=SOURCE, **values)


def _data_error(frame: pd.DataFrame, folds: dict[str, int] | None = None, **values: Any) -> str:
    with pytest.raises(DataError) as caught:
        validate_table(frame, _params(**values), folds)
    return str(caught.value)


def _mixed(rows: int = 60) -> pd.DataFrame:
    """A user's table: a number, a text column with gaps, a boolean, string labels in three classes."""
    return pd.DataFrame(
        {
            "size": np.linspace(0, 1, rows),
            "region": (["north", "south", None] * rows)[:rows],
            "member": [True, False] * (rows // 2),
            "kind": (["cat", "dog", "eel"] * rows)[:rows],
        }
    )


# --- load_raw -----------------------------------------------------------------------------------


def test_load_raw_builtin_is_the_breast_cancer_table() -> None:
    frame = load_raw(BUILTIN_SOURCE, "diagnosis")

    assert frame.shape == (569, 31)
    assert "diagnosis" in frame.columns
    assert TARGET not in frame.columns
    assert sorted(frame["diagnosis"].unique().tolist()) == [0, 1]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_raw_reads_a_table_file(tmp_path: Path, suffix: str, table: Split) -> None:
    expected = _raw(table, label="label")
    path = tmp_path / f"table{suffix}"
    if suffix == ".csv":
        expected.to_csv(path, index=False)
    else:
        expected.to_parquet(path, index=False)

    frame = load_raw(str(path), "label")

    pd.testing.assert_frame_equal(frame, expected)


def test_load_raw_of_a_missing_file_names_the_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"

    with pytest.raises(DataError) as caught:
        load_raw(str(path), TARGET)

    assert str(caught.value) == f"prepare_data.source: file '{path}' not found"


def test_load_raw_rejects_an_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "table.xlsx"
    path.write_text("a,target\n1,0\n", encoding="utf-8")

    with pytest.raises(DataError) as caught:
        load_raw(str(path), TARGET)

    message = str(caught.value)
    assert message.startswith(f"prepare_data.source: '{path}' is neither")
    assert BUILTIN_SOURCE in message


def test_load_raw_of_a_damaged_parquet_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    path.write_bytes(b"not parquet at all")

    with pytest.raises(DataError) as caught:
        load_raw(str(path), TARGET)

    assert str(caught.value).startswith(f"{path}: cannot be read (")


def test_load_raw_of_an_empty_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("", encoding="utf-8")

    with pytest.raises(DataError) as caught:
        load_raw(str(path), TARGET)

    assert str(caught.value) == f"{path}: the file is empty, not even a header"


def test_the_synthetic_source_is_seeded_and_shaped_by_params() -> None:
    first = load_raw(SYNTHETIC_SOURCE, "label", seed=3, rows=500, features=12)
    again = load_raw(SYNTHETIC_SOURCE, "label", seed=3, rows=500, features=12)
    other = load_raw(SYNTHETIC_SOURCE, "label", seed=4, rows=500, features=12)

    assert first.shape == (500, 13)
    assert list(first.columns[:2]) == ["feature_000", "feature_001"] and first.columns[-1] == "label"
    assert (first.dtypes.iloc[:-1] == np.float32).all()
    assert 0.4 < first["label"].mean() < 0.6
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_synthetic_gaps_bin_some_features_into_levels_and_empty_a_fraction_of_cells() -> None:
    raw = load_raw(SYNTHETIC_SOURCE, "label", seed=0, rows=4_000, features=6)

    gappy = with_synthetic_gaps(raw, "label", categorical=2, missing=0.05, seed=0)

    assert [str(dtype) for dtype in gappy.dtypes.iloc[:3]] == ["category", "category", "float32"]
    assert set(gappy["feature_000"].dropna()) == {f"level_{i}" for i in range(8)}
    fraction = gappy.drop(columns=["label"]).isna().to_numpy().mean()
    assert 0.04 < fraction < 0.06
    assert gappy["label"].equals(raw["label"])
    pd.testing.assert_frame_equal(gappy, with_synthetic_gaps(raw, "label", 2, 0.05, seed=0))


# --- the task -----------------------------------------------------------------------------------


def test_auto_regresses_a_float_target_with_many_values() -> None:
    target = pd.Series(np.linspace(0, 1, MAX_AUTO_CLASSES + 1))

    assert infer_task(target, "y", "auto") == (
        "regression",
        f"target 'y' holds floats with {MAX_AUTO_CLASSES + 1} distinct values (more than {MAX_AUTO_CLASSES})",
    )


@pytest.mark.parametrize(
    ("values", "task", "reason"),
    [
        (["M", "B"] * 10, "binary", "target 'y' has 2 classes"),
        ([0.0, 1.0] * 10, "binary", "target 'y' has 2 classes"),
        (list(range(MAX_AUTO_CLASSES + 5)), "multiclass", f"target 'y' has {MAX_AUTO_CLASSES + 5} classes"),
        ([0.5 * (i % MAX_AUTO_CLASSES) for i in range(60)], "multiclass", f"target 'y' has {MAX_AUTO_CLASSES} classes"),
        (["setosa", "versicolor", "virginica"], "multiclass", "target 'y' has 3 classes"),
    ],
)
def test_auto_classifies_labels_and_few_distinct_floats(values: list[object], task: str, reason: str) -> None:
    assert infer_task(pd.Series(values), "y", "auto") == (task, reason)


def test_a_task_set_in_params_is_taken_as_it_is() -> None:
    assert infer_task(pd.Series([1.0, 2.0]), "y", "regression") == ("regression", "set in params.yaml")


# --- validate_table: accepted -------------------------------------------------------------------


def test_validate_returns_float_numeric_columns_int_codes_and_a_binary_schema(table: Split) -> None:
    raw = _raw(table, label="label")
    raw["f0"] = np.arange(len(raw))  # an integer feature column is accepted and cast

    validated = validate_table(raw, _params(target="label"))

    assert list(validated.features.columns) == [f"f{i}" for i in range(6)]
    assert (validated.features.dtypes == "float64").all()
    assert validated.target.dtype == np.int64
    np.testing.assert_array_equal(validated.target, raw["label"].to_numpy())
    np.testing.assert_array_equal(validated.features["f0"].to_numpy(), np.arange(len(raw), dtype="float64"))
    assert (validated.schema.task, validated.schema.target, validated.schema.classes) == ("binary", "label", ("0", "1"))
    assert validated.reason == "target 'label' has 2 classes"


def test_validate_codes_string_labels_in_sorted_order_and_keeps_their_names() -> None:
    names = ["M" if i % 2 else "B" for i in range(40)]
    raw = pd.DataFrame({"size": np.linspace(0, 1, 40), "diagnosis": names})

    validated = validate_table(raw, _params(target="diagnosis"))

    assert validated.schema.classes == ("B", "M")
    np.testing.assert_array_equal(validated.target, [i % 2 for i in range(40)])


def test_validate_orders_numeric_labels_by_value_not_by_text() -> None:
    raw = pd.DataFrame({"size": np.linspace(0, 1, 40), "grade": [9] * 20 + [10] * 20})

    validated = validate_table(raw, _params(target="grade"))

    assert validated.schema.classes == ("9", "10")
    np.testing.assert_array_equal(validated.target, [0] * 20 + [1] * 20)


def test_validate_takes_categorical_columns_with_gaps_and_three_classes() -> None:
    raw = _mixed()

    validated = validate_table(raw, _params(target="kind"))

    assert validated.schema.task == "multiclass" and validated.schema.classes == ("cat", "dog", "eel")
    np.testing.assert_array_equal(validated.target, [0, 1, 2] * 20)
    features = validated.features
    assert features["size"].dtype == "float64"
    assert features["region"].tolist()[:2] == ["north", "south"] and features["region"].isna().sum() == 20
    assert set(features["member"]) == {"True", "False"}  # booleans become categories named as JSON sends them


def test_as_categories_writes_every_value_as_text_and_keeps_gaps_as_nan() -> None:
    column = pd.Series([1, "a", None, True, pd.NA], dtype=object)

    result = as_categories(column)

    assert result.dtype == object
    assert result.tolist()[:2] == ["1", "a"] and result.iloc[3] == "True"
    assert result.iloc[[2, 4]].isna().all() and all(isinstance(v, float) for v in result.iloc[[2, 4]])


def test_validate_regresses_a_numeric_target() -> None:
    raw = pd.DataFrame({"x": np.arange(50.0), "y": np.linspace(0, 10, 50)})

    validated = validate_table(raw, _params(target="y"))

    assert validated.schema.task == "regression" and validated.schema.classes == ()
    assert validated.target.dtype == np.float64
    np.testing.assert_array_equal(validated.target, np.linspace(0, 10, 50))


def test_validate_keeps_only_the_feature_columns_the_params_name() -> None:
    validated = validate_table(_mixed(), _params(target="kind", features=["region", "size"]))

    assert list(validated.features.columns) == ["region", "size"]


def test_validate_accepts_the_smallest_class_size(table: Split) -> None:
    labels = [1] * MIN_ROWS_PER_CLASS + [0] * (200 - MIN_ROWS_PER_CLASS)

    validated = validate_table(_raw(table, labels=labels), _params())

    assert int(validated.target.sum()) == MIN_ROWS_PER_CLASS


def test_validate_of_a_train_only_split_needs_no_rows_for_held_out_splits(table: Split) -> None:
    labels = [1] * 3 + [0] * 197

    assert validate_table(_raw(table, labels=labels), _params(split="train")).schema.task == "binary"


# --- validate_table: each error, one exact line -------------------------------------------------


def test_a_header_without_rows() -> None:
    raw = pd.read_csv(pd.io.common.StringIO("size,region,target\n"))

    assert _data_error(raw) == f"{SOURCE}: no rows, only a header"


def test_without_the_target_column(table: Split) -> None:
    assert _data_error(_raw(table), target="label") == f"{SOURCE}: no target column 'label'"


def test_a_feature_column_the_params_name_and_the_file_lacks(table: Split) -> None:
    message = _data_error(_raw(table), features=["f0", "age"])

    assert message == f"{SOURCE}: no column 'age' (named in prepare_data.features)"


def test_a_feature_column_named_target(table: Split) -> None:
    raw = _raw(table, label="label").assign(target=0.5)

    assert _data_error(raw, target="label").startswith(f"{SOURCE}: a feature column is named '{TARGET}'")


def test_without_feature_columns() -> None:
    raw = pd.DataFrame({TARGET: [0, 1] * 20})

    assert _data_error(raw) == f"{SOURCE}: no feature columns beside '{TARGET}'"


@pytest.mark.parametrize("dtype", ["float64", "object"])
def test_an_entirely_empty_column(table: Split, dtype: str) -> None:
    raw = _raw(table).assign(notes=pd.Series([None] * 200, dtype=dtype))

    assert _data_error(raw) == f"{SOURCE}: column 'notes' is entirely empty"


def test_a_feature_column_neither_numeric_nor_categorical(table: Split) -> None:
    raw = _raw(table).assign(seen=pd.Timestamp("2024-01-01"))

    assert _data_error(raw) == f"{SOURCE}: feature column 'seen' is neither numeric nor categorical (datetime64[us])"


def test_a_target_missing_in_some_rows(table: Split) -> None:
    raw = _raw(table).astype({TARGET: "float64"})
    raw.loc[[5, 9], TARGET] = np.nan

    assert _data_error(raw) == f"{SOURCE}: target '{TARGET}' is missing in 2 of 200 rows"


def test_a_target_with_one_class(table: Split) -> None:
    assert _data_error(_raw(table, labels="M")) == f"{SOURCE}: target '{TARGET}' has only one class, 'M'"


def test_binary_with_three_classes(table: Split) -> None:
    raw = _raw(table, labels=[0, 1, 2] * 66 + [0, 1])

    assert _data_error(raw, task="binary") == f"{SOURCE}: task binary needs 2 classes; target '{TARGET}' has 3"


def test_multiclass_with_two_classes(table: Split) -> None:
    message = _data_error(_raw(table), task="multiclass")

    assert message == f"{SOURCE}: task multiclass needs 3 or more classes; target '{TARGET}' has 2 (use binary)"


def test_regression_of_string_labels(table: Split) -> None:
    raw = _raw(table, labels=["B", "M"] * 100)

    message = _data_error(raw, task="regression")

    assert message == f"{SOURCE}: task regression needs a numeric target; '{TARGET}' holds 'B'"


def test_a_class_too_small_to_split(table: Split) -> None:
    labels = ["M"] * (MIN_ROWS_PER_CLASS - 1) + ["B"] * (200 - MIN_ROWS_PER_CLASS + 1)

    message = _data_error(_raw(table, labels=labels))

    needed = f"at least {MIN_ROWS_PER_CLASS} are needed to split"
    assert message == f"{SOURCE}: class 'M' has {MIN_ROWS_PER_CLASS - 1} rows, {needed}"


def test_a_regression_table_too_small_to_split_or_for_the_folds() -> None:
    raw = pd.DataFrame({"x": np.arange(9.0), "y": np.arange(9.0) / 3})
    folds = {"train_standard_classifiers.cv_folds": 10}

    assert (
        _data_error(raw, target="y", task="regression")
        == f"{SOURCE}: the table has 9 rows, at least 10 are needed to split"
    )
    assert _data_error(raw, folds, target="y", task="regression", split="train") == (
        f"{SOURCE}: the table has 9 rows, at least 10 are needed for train_standard_classifiers.cv_folds = 10 "
        "(each fold needs one in the train split)"
    )


def test_a_class_too_small_for_the_cv_folds(table: Split) -> None:
    labels = ["M"] * 12 + ["B"] * 188  # enough to split; 60% of 12 is 7 train rows, too few for 8 folds
    folds = {"train_standard_classifiers.cv_folds": 8}

    message = _data_error(_raw(table, labels=labels), folds)

    assert message == (
        f"{SOURCE}: class 'M' has 12 rows, at least 14 are needed for train_standard_classifiers.cv_folds = 8 "
        "(each fold needs one in the train split)"
    )
    assert validate_table(_raw(table, labels=labels), _params(), {"train_standard_classifiers.cv_folds": 7})
