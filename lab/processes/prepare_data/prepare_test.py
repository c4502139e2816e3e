"""prepare.py: the splits processed with train-only preprocessing, the schema and the data report per task."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lab.processes.prepare_data.params import SYNTHETIC_SOURCE, PrepareParams
from lab.processes.prepare_data.prepare import prepare
from lab.processes.prepare_data.preprocessing import NUMERIC
from lab.processes.prepare_data.splitting import split_dataset
from lab.processes.prepare_data.tables import load_raw, validate_table
from lib.datasets import MODE_SPLITS, SPLITS, TARGET, DataError, Split

pytestmark = pytest.mark.unittest

SOURCE = "table.csv"


def _raw(table: Split, label: str = TARGET, labels: object = None) -> pd.DataFrame:
    return table.features.assign(**{label: table.labels if labels is None else labels})


def _scaler(prepared: object) -> object:
    return prepared.preprocessing.named_transformers_[NUMERIC].named_steps["scale"]


def test_prepare_leaves_a_constant_column_unscaled() -> None:
    raw = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10, "flat": 5.0, TARGET: [0, 1] * 15})

    prepared = prepare(raw, PrepareParams(source=SOURCE, split="train"), seed=0)

    np.testing.assert_allclose(_scaler(prepared).mean_, [2.0, 5.0])
    np.testing.assert_allclose(_scaler(prepared).scale_, [np.sqrt(2 / 3), 1.0])
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
    validated = validate_table(raw, params)
    unscaled = split_dataset(validated.features, validated.target, params.val_size, params.test_size, seed=5)
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
    assert _scaler(prepared).mean_ == pytest.approx(train_mean.tolist(), rel=1e-12)
    assert _scaler(prepared).scale_ == pytest.approx(train_std.tolist(), rel=1e-12)


def test_prepare_without_scaling_keeps_the_values(table: Split) -> None:
    raw = _raw(table)
    validated = validate_table(raw, PrepareParams())
    unscaled = split_dataset(validated.features, validated.target, 0.2, 0.2, seed=1)

    prepared = prepare(raw, PrepareParams(scale=False), seed=1)

    for name in SPLITS:
        expected = unscaled[name].features.reset_index(drop=True).assign(**{TARGET: unscaled[name].labels})
        pd.testing.assert_frame_equal(prepared.splits[name], expected, check_exact=True)


def test_prepare_writes_a_target_column_whatever_the_source_calls_it(table: Split) -> None:
    prepared = prepare(_raw(table, label="label"), PrepareParams(target="label"), seed=0)

    for frame in prepared.splits.values():
        assert list(frame.columns) == [f"f{i}" for i in range(6)] + [TARGET]
        assert frame[TARGET].dtype == np.int64
        assert (frame.drop(columns=[TARGET]).dtypes == "float64").all()


def test_prepare_records_the_classes_under_their_names_in_the_schema(table: Split) -> None:
    raw = _raw(table, label="label", labels=np.where(table[1] == 1, "yes", "no"))

    prepared = prepare(raw, PrepareParams(target="label"), seed=0)

    assert (prepared.schema.task, prepared.schema.target, prepared.schema.classes) == ("binary", "label", ("no", "yes"))
    assert list(prepared.preprocessing.feature_names_in_) == [f"f{i}" for i in range(6)]


def test_prepare_reports_task_classes_rows_and_positive_fraction_per_split(table: Split) -> None:
    raw = _raw(table)

    prepared = prepare(raw, PrepareParams(val_size=0.1, test_size=0.3), seed=0)

    report = prepared.report
    assert set(report) == {"task", "n_classes", "features"} | {
        f"{name}/{key}" for name in SPLITS for key in ("rows", "positive_fraction")
    }
    assert (report["task"], report["n_classes"], report["features"]) == ("binary", 2, 6)
    assert report["train/rows"] + report["val/rows"] + report["test/rows"] == len(raw)
    for name in SPLITS:
        labels = prepared.splits[name][TARGET]
        assert report[f"{name}/rows"] == len(labels)
        assert report[f"{name}/positive_fraction"] == pytest.approx(labels.mean(), abs=1e-6)
    assert json.loads(json.dumps(report)) == report


def test_a_user_table_with_categories_gaps_and_three_string_classes_is_prepared() -> None:
    rng = np.random.default_rng(0)
    rows = 150
    raw = pd.DataFrame(
        {
            "size": rng.normal(size=rows),
            "region": rng.choice(["north", "south", "east"], size=rows).astype(object),
            "kind": np.repeat(["cat", "dog", "eel"], rows // 3),
        }
    )
    raw.loc[::7, "size"] = np.nan
    raw.loc[::11, "region"] = None

    prepared = prepare(raw, PrepareParams(source=SOURCE, target="kind"), seed=0)

    assert prepared.schema.classes == ("cat", "dog", "eel") and prepared.schema.task == "multiclass"
    train = prepared.splits["train"]
    assert list(train.columns) == ["size", "region_east", "region_north", "region_south", TARGET]
    assert not train.isna().any().any() and (train.drop(columns=[TARGET]).dtypes == "float64").all()
    assert (train[["region_east", "region_north", "region_south"]].sum(axis=1) == 1).all()
    for name, frame in prepared.splits.items():  # stratified: 20 rows of each class in train, 10 in val and test
        assert frame[TARGET].value_counts().tolist() == [len(frame) // 3] * 3, name
    assert prepared.report["n_classes"] == 3 and "train/positive_fraction" not in prepared.report


def test_a_regression_table_is_prepared_with_float_targets_and_their_mean_reported() -> None:
    raw = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0) * 0.5})

    prepared = prepare(raw, PrepareParams(source=SOURCE, target="y"), seed=0)

    assert prepared.schema.task == "regression" and prepared.reason.startswith("target 'y' holds floats")
    train = prepared.splits["train"]
    assert train[TARGET].dtype == np.float64 and len(train) == 60
    assert prepared.report["train/target_mean"] == pytest.approx(train[TARGET].mean(), abs=1e-6)
    assert prepared.report["n_classes"] == 0


def test_prepare_rejects_bad_raw_data_naming_the_source(table: Split) -> None:
    with pytest.raises(DataError) as caught:
        prepare(_raw(table), PrepareParams(source="mine.parquet", target="label"), seed=0)

    assert str(caught.value) == "mine.parquet: no target column 'label'"


def test_a_synthetic_table_prepares_like_the_example() -> None:
    params = PrepareParams(source=SYNTHETIC_SOURCE, synthetic_rows=1_000, synthetic_features=30)
    raw = load_raw(params.source, params.target, 0, params.synthetic_rows, params.synthetic_features)

    prepared = prepare(raw, params, seed=0)

    assert prepared.report["features"] == 30
    assert sum(prepared.report[f"{split}/rows"] for split in SPLITS) == 1_000
