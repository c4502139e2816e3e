"""cancer_data.py: params, loading, validation, stratified splitting and train-only scaling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lab.processes.prepare_data.cancer_data import (
    BUILTIN_SOURCE,
    MIN_ROWS_PER_CLASS,
    SYNTHETIC_SOURCE,
    PrepareParams,
    load_raw,
    prepare,
    split_dataset,
    validate_raw,
)
from lib.datasets import MODE_SPLITS, SPLITS, TARGET, DataError, Split
from lib.params import ParamsError, ParamsFile

pytestmark = pytest.mark.unittest

SOURCE = "table.csv"
WritePrepare = Callable[[dict[str, Any]], ParamsFile]


def _raw(table: Split, label: str = TARGET, labels: Any = None) -> pd.DataFrame:
    """The synthetic table as a raw file would hold it: features plus a label column."""
    return table.features.assign(**{label: table.labels if labels is None else labels})


def _prepare_error(params_file: WritePrepare, values: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as caught:
        params_file({"prepare_data": values}).section("prepare_data", PrepareParams)
    return str(caught.value)


def _data_error(frame: pd.DataFrame, target: str = TARGET) -> str:
    with pytest.raises(DataError) as caught:
        validate_raw(frame, target, SOURCE)
    return str(caught.value)


@pytest.fixture(scope="module")
def cancer() -> Split:
    """The built-in data set's features and labels, validated once for the module."""
    features, labels, _ = validate_raw(load_raw(BUILTIN_SOURCE, TARGET), TARGET, BUILTIN_SOURCE)
    return Split(features, labels)


# --- params -------------------------------------------------------------------------------------


def test_params_defaults_read_the_builtin_source(params_file: WritePrepare) -> None:
    params = params_file({"prepare_data": {}}).section("prepare_data", PrepareParams)

    assert params == PrepareParams(source=BUILTIN_SOURCE, target=TARGET, val_size=0.2, test_size=0.2, scale=True)


def test_params_accept_exactly_80_percent_held_out(params_file: WritePrepare) -> None:
    params = params_file({"prepare_data": {"val_size": 0.4, "test_size": 0.4}}).section("prepare_data", PrepareParams)

    assert (params.val_size, params.test_size) == (0.4, 0.4)


def test_params_reject_val_and_test_above_80_percent(params_file: WritePrepare) -> None:
    message = _prepare_error(params_file, {"val_size": 0.5, "test_size": 0.4})

    assert "prepare_data" in message
    assert "val_size + test_size must leave at least 20% for training" in message


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("val_size", 0, "greater than 0"),
        ("val_size", 1.0, "less than 1"),
        ("test_size", -0.1, "greater than 0"),
        ("test_size", 1.5, "less than 1"),
        ("scale", "yes", "valid boolean"),
        ("source", "", "at least 1 character"),
    ],
)
def test_params_reject_a_bad_value_naming_the_key(
    params_file: WritePrepare, key: str, value: object, complaint: str
) -> None:
    message = _prepare_error(params_file, {key: value})

    assert f"prepare_data.{key}: " in message
    assert complaint in message


def test_params_default_to_three_splits(params_file: WritePrepare) -> None:
    params = params_file({"prepare_data": {}}).section("prepare_data", PrepareParams)

    assert params.split == "train_val_test"
    assert params.held_out_sizes() == {"val": 0.2, "test": 0.2}


@pytest.mark.parametrize(
    ("split", "held_out"),
    [("train", {}), ("train_test", {"test": 0.7}), ("train_val_test", {"val": 0.1, "test": 0.7})],
)
def test_params_ignore_the_size_of_a_split_the_mode_does_not_write(
    params_file: WritePrepare, split: str, held_out: dict[str, float]
) -> None:
    values = {"split": split, "val_size": 0.1, "test_size": 0.7}

    assert params_file({"prepare_data": values}).section("prepare_data", PrepareParams).held_out_sizes() == held_out


@pytest.mark.parametrize(
    ("split", "values", "complaint"),
    [
        ("train_test", {"test_size": 0.85}, "prepare_data: test_size must leave at least 20% for training"),
        ("train_val_test", {"val_size": 0.1, "test_size": 0.75}, "val_size + test_size must leave at least 20%"),
    ],
)
def test_params_keep_20_percent_for_training_in_each_mode(
    params_file: WritePrepare, split: str, values: dict[str, float], complaint: str
) -> None:
    assert complaint in _prepare_error(params_file, {"split": split, **values})


def test_params_accept_a_large_val_size_when_the_mode_has_no_val(params_file: WritePrepare) -> None:
    values = {"split": "train_test", "val_size": 0.9, "test_size": 0.2}

    assert params_file({"prepare_data": values}).section("prepare_data", PrepareParams).split == "train_test"


def test_params_reject_an_unknown_split_mode(params_file: WritePrepare) -> None:
    message = _prepare_error(params_file, {"split": "train_val"})

    assert "prepare_data.split: input should be 'train', 'train_test' or 'train_val_test'" in message


def test_params_reject_an_unknown_key(params_file: WritePrepare) -> None:
    message = _prepare_error(params_file, {"val_fraction": 0.2})

    assert message.endswith("prepare_data.val_fraction: unknown key")


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


# --- validate_raw -------------------------------------------------------------------------------


def test_validate_raw_returns_float_features_int_labels_and_class_names(table: Split) -> None:
    raw = _raw(table, label="label")
    raw["f0"] = np.arange(len(raw))  # an integer feature column is accepted and cast

    features, labels, classes = validate_raw(raw, "label", SOURCE)

    assert list(features.columns) == [f"f{i}" for i in range(6)]
    assert (features.dtypes == "float64").all()
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, raw["label"].to_numpy())
    np.testing.assert_array_equal(features["f0"].to_numpy(), np.arange(len(raw), dtype="float64"))
    assert classes == ["0", "1"]


def test_validate_raw_maps_string_labels_to_0_1_in_sorted_order() -> None:
    names = ["malignant" if i % 2 else "benign" for i in range(40)]
    raw = pd.DataFrame({"size": np.linspace(0, 1, 40), "diagnosis": names})

    _, labels, classes = validate_raw(raw, "diagnosis", SOURCE)

    assert classes == ["benign", "malignant"]
    np.testing.assert_array_equal(labels, [i % 2 for i in range(40)])


def test_validate_raw_orders_numeric_labels_by_value_not_by_text() -> None:
    raw = pd.DataFrame({"size": np.linspace(0, 1, 40), "grade": [9] * 20 + [10] * 20})

    _, labels, classes = validate_raw(raw, "grade", SOURCE)

    assert classes == ["9", "10"]
    np.testing.assert_array_equal(labels, [0] * 20 + [1] * 20)


def test_validate_raw_without_the_target_column(table: Split) -> None:
    assert _data_error(_raw(table), target="label") == f"{SOURCE}: no target column 'label'"


def test_validate_raw_rejects_a_feature_column_named_target(table: Split) -> None:
    raw = _raw(table, label="label").assign(target=0.5)

    message = _data_error(raw, target="label")

    assert message.startswith(f"{SOURCE}: a feature column is named '{TARGET}'")


def test_validate_raw_without_feature_columns() -> None:
    raw = pd.DataFrame({TARGET: [0, 1] * 20})

    assert _data_error(raw) == f"{SOURCE}: no feature columns beside '{TARGET}'"


@pytest.mark.parametrize("values", [["a", "b"] * 100, [True, False] * 100], ids=["strings", "booleans"])
def test_validate_raw_names_a_non_numeric_feature_column(values: list[object], table: Split) -> None:
    raw = _raw(table).assign(kind=values)

    assert _data_error(raw) == f"{SOURCE}: feature column 'kind' is not numeric"


def test_validate_raw_names_a_feature_column_with_missing_values(table: Split) -> None:
    raw = _raw(table)
    raw.loc[5, "f3"] = np.nan

    assert _data_error(raw) == f"{SOURCE}: column 'f3' holds missing values"


def test_validate_raw_names_a_target_with_missing_values(table: Split) -> None:
    raw = _raw(table).astype({TARGET: "float64"})
    raw.loc[5, TARGET] = np.nan

    assert _data_error(raw) == f"{SOURCE}: column '{TARGET}' holds missing values"


def test_validate_raw_rejects_three_classes(table: Split) -> None:
    raw = _raw(table, labels=[0, 1, 2] * 66 + [0, 1])

    assert _data_error(raw) == f"{SOURCE}: target '{TARGET}' must have exactly 2 classes, found 3"


def test_validate_raw_rejects_a_class_too_small_to_split(table: Split) -> None:
    labels = [1] * (MIN_ROWS_PER_CLASS - 1) + [0] * (200 - MIN_ROWS_PER_CLASS + 1)

    message = _data_error(_raw(table, labels=labels))

    assert message == (
        f"{SOURCE}: class '1' has {MIN_ROWS_PER_CLASS - 1} rows, at least {MIN_ROWS_PER_CLASS} are needed to split"
    )


def test_validate_raw_accepts_the_smallest_class_size(table: Split) -> None:
    labels = [1] * MIN_ROWS_PER_CLASS + [0] * (200 - MIN_ROWS_PER_CLASS)

    _, y, _ = validate_raw(_raw(table, labels=labels), TARGET, SOURCE)

    assert int(y.sum()) == MIN_ROWS_PER_CLASS


# --- split_dataset ------------------------------------------------------------------------------


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


# --- scaling and prepare ------------------------------------------------------------------------


def test_prepare_leaves_a_constant_column_unscaled() -> None:
    raw = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10, "flat": 5.0, TARGET: [0, 1] * 15})

    prepared = prepare(raw, PrepareParams(source=SOURCE, split="train"), seed=0)

    np.testing.assert_allclose(prepared.preprocessing["mean"], [2.0, 5.0])
    np.testing.assert_allclose(prepared.preprocessing["scale"], [np.sqrt(2 / 3), 1.0])
    assert (prepared.splits["train"]["flat"] == 0.0).all()


@pytest.mark.parametrize("split", list(MODE_SPLITS))
def test_prepare_writes_and_reports_only_the_splits_of_the_mode(table: Split, split: str) -> None:
    params = PrepareParams(source=SOURCE, split=split)

    prepared = prepare(_raw(table), params, seed=0)

    assert tuple(prepared.splits) == MODE_SPLITS[split]
    assert sum(len(frame) for frame in prepared.splits.values()) == len(table[1])
    reported = {key.split("/")[0] for key in prepared.report if "/" in key}
    assert reported == set(MODE_SPLITS[split])
    train = prepared.splits["train"].drop(columns=[TARGET])
    np.testing.assert_allclose(train.mean().to_numpy(), 0.0, atol=1e-9)


def test_prepare_scales_train_to_zero_mean_and_unit_variance(table: Split) -> None:
    prepared = prepare(_raw(table), PrepareParams(), seed=0)

    train = prepared.splits["train"].drop(columns=[TARGET])
    np.testing.assert_allclose(train.mean().to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(train.std(ddof=0).to_numpy(), 1.0, rtol=1e-12)


def test_prepare_scales_val_and_test_with_train_statistics(table: Split) -> None:
    raw, params = _raw(table, label="label"), PrepareParams(target="label", val_size=0.25, test_size=0.15)
    features, labels, _ = validate_raw(raw, "label", SOURCE)
    unscaled = split_dataset(features, labels, params.val_size, params.test_size, seed=5)
    train_mean = unscaled["train"].features.mean()
    train_std = unscaled["train"].features.std(ddof=0)

    prepared = prepare(raw, params, seed=5)

    for name in ("val", "test"):
        expected = ((unscaled[name].features - train_mean) / train_std).reset_index(drop=True)
        frame = prepared.splits[name]
        pd.testing.assert_frame_equal(frame.drop(columns=[TARGET]), expected, rtol=1e-12)
        np.testing.assert_array_equal(frame[TARGET].to_numpy(), unscaled[name].labels)
        # statistics of its own rows would centre it exactly; train's do not
        assert np.abs(frame.drop(columns=[TARGET]).mean().to_numpy()).max() > 1e-3
    assert prepared.preprocessing["mean"] == pytest.approx(train_mean.tolist(), rel=1e-12)
    assert prepared.preprocessing["scale"] == pytest.approx(train_std.tolist(), rel=1e-12)


def test_prepare_without_scaling_keeps_the_values(table: Split) -> None:
    raw = _raw(table)
    features, labels, _ = validate_raw(raw, TARGET, SOURCE)
    unscaled = split_dataset(features, labels, 0.2, 0.2, seed=1)

    prepared = prepare(raw, PrepareParams(scale=False), seed=1)

    for name in SPLITS:
        expected = unscaled[name].features.reset_index(drop=True).assign(**{TARGET: unscaled[name].labels})
        pd.testing.assert_frame_equal(prepared.splits[name], expected, check_exact=True)
    assert prepared.preprocessing["mean"] == [0.0] * 6
    assert prepared.preprocessing["scale"] == [1.0] * 6


def test_prepare_writes_a_target_column_whatever_the_source_calls_it(table: Split) -> None:
    prepared = prepare(_raw(table, label="label"), PrepareParams(target="label"), seed=0)

    for frame in prepared.splits.values():
        assert list(frame.columns) == [f"f{i}" for i in range(6)] + [TARGET]
        assert frame[TARGET].dtype == np.int64
        assert (frame.drop(columns=[TARGET]).dtypes == "float64").all()


def test_prepare_describes_its_preprocessing_as_json(table: Split) -> None:
    raw = _raw(table, label="label", labels=np.where(table[1] == 1, "yes", "no"))

    prepared = prepare(raw, PrepareParams(target="label"), seed=0)

    preprocessing = json.loads(json.dumps(prepared.preprocessing))
    assert preprocessing == prepared.preprocessing
    assert preprocessing["features"] == [f"f{i}" for i in range(6)]
    assert len(preprocessing["mean"]) == len(preprocessing["scale"]) == 6
    assert preprocessing["classes"] == ["no", "yes"]
    assert preprocessing["target"] == "label"


def test_prepare_reports_rows_and_positive_fraction_per_split(table: Split) -> None:
    raw = _raw(table)

    prepared = prepare(raw, PrepareParams(val_size=0.1, test_size=0.3), seed=0)

    report = prepared.report
    assert set(report) == {"features"} | {f"{name}/{key}" for name in SPLITS for key in ("rows", "positive_fraction")}
    assert report["features"] == 6
    assert report["train/rows"] + report["val/rows"] + report["test/rows"] == len(raw)
    for name in SPLITS:
        labels = prepared.splits[name][TARGET]
        assert report[f"{name}/rows"] == len(labels)
        assert report[f"{name}/positive_fraction"] == pytest.approx(labels.mean(), abs=1e-6)
    assert json.loads(json.dumps(report)) == report


def test_prepare_rejects_bad_raw_data_naming_the_source(table: Split) -> None:
    with pytest.raises(DataError) as caught:
        prepare(_raw(table), PrepareParams(source="mine.parquet", target="label"), seed=0)

    assert str(caught.value) == "mine.parquet: no target column 'label'"


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


def test_a_synthetic_table_prepares_like_the_example() -> None:
    params = PrepareParams(source=SYNTHETIC_SOURCE, synthetic_rows=1_000, synthetic_features=30)
    raw = load_raw(params.source, params.target, 0, params.synthetic_rows, params.synthetic_features)

    prepared = prepare(raw, params, seed=0)

    assert prepared.report["features"] == 30
    assert sum(prepared.report[f"{split}/rows"] for split in SPLITS) == 1_000


@pytest.mark.parametrize(("key", "value"), [("synthetic_rows", 10), ("synthetic_features", 1)])
def test_synthetic_sizes_are_bounded(key: str, value: int) -> None:
    with pytest.raises(ValueError, match=key):
        PrepareParams(**{key: value})
