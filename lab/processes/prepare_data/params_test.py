"""params.py: the prepare_data section and the training stages' CV folds it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lab.processes.prepare_data.params import BUILTIN_SOURCE, PrepareParams, cv_folds
from lib.datasets import TARGET
from lib.params import ParamsError, ParamsFile

pytestmark = pytest.mark.unittest

WritePrepare = Callable[[dict[str, Any]], ParamsFile]


def _prepare_error(params_file: WritePrepare, values: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as caught:
        params_file({"prepare_data": values}).section("prepare_data", PrepareParams)
    return str(caught.value)


def test_params_defaults_read_the_builtin_source(params_file: WritePrepare) -> None:
    params = params_file({"prepare_data": {}}).section("prepare_data", PrepareParams)

    assert params == PrepareParams(source=BUILTIN_SOURCE, target=TARGET, val_size=0.2, test_size=0.2, scale=True)
    assert params.task == "auto" and params.features is None


def test_params_accept_exactly_80_percent_held_out(params_file: WritePrepare) -> None:
    params = params_file({"prepare_data": {"val_size": 0.4, "test_size": 0.4}}).section("prepare_data", PrepareParams)

    assert (params.val_size, params.test_size) == (0.4, 0.4)
    assert params.train_fraction() == pytest.approx(0.2)


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
        ("task", "ranking", "input should be 'auto', 'binary', 'multiclass' or 'regression'"),
        ("features", "a,b", "valid list"),
    ],
)
def test_params_reject_a_bad_value_naming_the_key(
    params_file: WritePrepare, key: str, value: object, complaint: str
) -> None:
    message = _prepare_error(params_file, {key: value})

    assert f"prepare_data.{key}: " in message
    assert complaint in message


@pytest.mark.parametrize("task", ["auto", "binary", "multiclass", "regression"])
def test_params_take_each_task(params_file: WritePrepare, task: str) -> None:
    assert params_file({"prepare_data": {"task": task}}).section("prepare_data", PrepareParams).task == task


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


@pytest.mark.parametrize(
    ("key", "value"), [("synthetic_rows", 10), ("synthetic_features", 1), ("synthetic_missing", 1)]
)
def test_synthetic_sizes_are_bounded(key: str, value: int) -> None:
    with pytest.raises(ValueError, match=key):
        PrepareParams(**{key: value})


def test_cv_folds_reads_only_the_training_stages_fold_keys(params_file: WritePrepare) -> None:
    params = params_file(
        {
            "train_standard_classifiers": {"cv_folds": 5, "models": "not checked here"},
            "train_dnn_pytorch": {"cv_folds": 0},
        }
    )

    assert cv_folds(params) == {"train_standard_classifiers.cv_folds": 5}


def test_cv_folds_leaves_bad_or_absent_values_to_the_stages_that_validate_them(params_file: WritePrepare) -> None:
    assert cv_folds(params_file({"train_standard_classifiers": {"cv_folds": "5"}, "train_dnn_pytorch": None})) == {}
    assert cv_folds(params_file({"train_dnn_pytorch": {"cv_folds": 3}})) == {"train_dnn_pytorch.cv_folds": 3}
