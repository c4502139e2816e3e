"""datasets.py: reading the processed splits, with errors that name the bad file."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.datasets import (
    BINARY,
    MODE_SPLITS,
    SPLITS,
    DataError,
    Schema,
    Split,
    read_schema,
    read_split,
    read_splits,
    require_split,
    split_path,
    write_split,
)
from lib.errors import ReprolabError
from tests.data import write_schema

pytestmark = pytest.mark.unittest


def _frame(rows: int = 4, columns: tuple[str, ...] = ("mean radius", "mean texture")) -> pd.DataFrame:
    data = {name: np.arange(rows, dtype=np.float64) + index for index, name in enumerate(columns)}
    return pd.DataFrame({**data, "target": np.arange(rows) % 2})


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path, index=False)
    return path


def _error(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        read_split(path)
    return str(caught.value)


def test_split_path_is_the_split_name_as_parquet(tmp_path: Path) -> None:
    assert split_path(tmp_path, "val") == tmp_path / "val.parquet"


def test_read_split_returns_features_and_int_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.parquet", _frame(rows=4))

    split = read_split(path)

    assert isinstance(split, Split)
    features, labels = split.features, split.labels
    assert list(features.columns) == ["mean radius", "mean texture"]
    assert features["mean texture"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert labels.dtype == np.int64
    assert labels.tolist() == [0, 1, 0, 1]


def test_data_error_is_a_reprolab_error() -> None:
    assert issubclass(DataError, ReprolabError)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"

    assert _error(path) == f"{path}: data file not found (run the prepare_data stage first)"


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    path.mkdir()

    assert _error(path) == f"{path}: data file not found (run the prepare_data stage first)"


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    path.write_text("mean radius,target\n1.0,0\n", encoding="utf-8")

    message = _error(path)

    assert message.startswith(f"{path}: not a readable Parquet file (")
    assert "\n" not in message


def test_a_file_without_the_target_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "val.parquet", _frame().drop(columns=["target"]))

    assert _error(path) == f"{path}: no 'target' column"


def test_a_file_with_only_the_target_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "val.parquet", _frame(columns=()))

    assert _error(path) == f"{path}: no feature columns or no rows"


def test_a_file_with_no_rows_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "val.parquet", _frame(rows=0))

    assert _error(path) == f"{path}: no feature columns or no rows"


@pytest.mark.parametrize("values", [[1, 2, 3, 4], ["a", "b", "c", "d"], [True, False, True, False]])
def test_a_column_that_is_not_float_is_named(tmp_path: Path, values: list[object]) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(bad=values))

    assert _error(path) == f"{path}: column 'bad' is not a float column"


def test_a_column_with_missing_values_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(holes=[1.0, np.nan, 3.0, 4.0]))

    assert _error(path) == f"{path}: column 'holes' holds missing values"


def test_a_target_with_missing_values_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(target=[0.0, np.nan, 1.0, 0.0]))

    assert _error(path) == f"{path}: column 'target' holds missing values"


@pytest.mark.parametrize("labels", [[0, 1, 2, 1], [0.0, 0.5, 1.0, 1.0], [-1, 1, 1, -1]])
def test_a_target_that_is_not_0_or_1_is_named(tmp_path: Path, labels: list[float]) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(target=labels))

    assert _error(path) == f"{path}: column 'target' must hold only the label codes 0..1"


def test_multiclass_labels_are_codes_below_the_number_of_classes(tmp_path: Path) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(target=[0, 2, 1, 2]))
    three = Schema("multiclass", "species", ("setosa", "versicolor", "virginica"))

    assert read_split(path, three).labels.tolist() == [0, 2, 1, 2]
    with pytest.raises(DataError, match=r"label codes 0\.\.1"):
        read_split(path, Schema("multiclass", "species", ("setosa", "virginica")))


def test_regression_labels_are_read_as_floats(tmp_path: Path) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(target=[0.5, -2.0, 3.25, 1e6]))

    labels = read_split(path, Schema("regression", "price")).labels

    assert labels.dtype == np.float64
    assert labels.tolist() == [0.5, -2.0, 3.25, 1e6]


def test_the_schema_round_trips_and_defaults_to_the_binary_example(tmp_path: Path) -> None:
    assert read_schema(tmp_path) == BINARY
    schema = Schema("multiclass", "diagnosis", ("B", "M", "X"))

    write_schema(schema, tmp_path)

    assert read_schema(tmp_path) == schema
    assert (schema.n_classes, schema.is_classification) == (3, True)
    assert not Schema("regression").is_classification


@pytest.mark.parametrize("text", ["{", '{"task": "binary"}', '{"task": "ranking", "target": "t", "classes": []}'])
def test_a_damaged_schema_is_named(tmp_path: Path, text: str) -> None:
    (tmp_path / "schema.json").write_text(text)

    with pytest.raises(DataError, match=r"schema\.json: "):
        read_schema(tmp_path)


def test_read_splits_reads_labels_by_the_schema(tmp_path: Path) -> None:
    _write_splits(tmp_path, {})
    write_schema(Schema("regression", "price"), tmp_path)

    assert read_splits(tmp_path)["val"].labels.dtype == np.float64


def test_float_0_1_labels_are_read_as_ints(tmp_path: Path) -> None:
    path = _write(tmp_path / "test.parquet", _frame().assign(target=[1.0, 0.0, 1.0, 1.0]))

    _, labels = read_split(path)

    assert labels.dtype == np.int64
    assert labels.tolist() == [1, 0, 1, 1]


def _write_splits(data_dir: Path, columns: dict[str, tuple[str, ...]]) -> None:
    for split in SPLITS:
        _write(split_path(data_dir, split), _frame(columns=columns.get(split, ("x1", "x2"))))


def test_read_splits_reads_all_three(tmp_path: Path) -> None:
    _write_splits(tmp_path, {})

    splits = read_splits(tmp_path)

    assert list(splits) == ["train", "val", "test"]
    for features, labels in splits.values():
        assert list(features.columns) == ["x1", "x2"]
        assert labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("columns", [("x1", "x3"), ("x2", "x1"), ("x1",), ("x1", "x2", "x3")])
def test_read_splits_names_a_split_whose_columns_differ(tmp_path: Path, columns: tuple[str, ...]) -> None:
    _write_splits(tmp_path, {"test": columns})

    with pytest.raises(DataError) as caught:
        read_splits(tmp_path)

    assert str(caught.value) == f"{tmp_path / 'test.parquet'}: columns differ from the train split"


@pytest.mark.parametrize("mode", list(MODE_SPLITS))
def test_read_splits_reads_the_splits_each_mode_writes(tmp_path: Path, mode: str) -> None:
    for split in MODE_SPLITS[mode]:
        _write(split_path(tmp_path, split), _frame(columns=("x1", "x2")))

    splits = read_splits(tmp_path)

    assert tuple(splits) == MODE_SPLITS[mode]
    assert splits["train"].labels.tolist() == [0, 1, 0, 1]


def test_read_splits_reads_train_and_val_without_test(tmp_path: Path) -> None:
    _write_splits(tmp_path, {})
    (tmp_path / "test.parquet").unlink()

    assert list(read_splits(tmp_path)) == ["train", "val"]


def test_read_splits_names_a_missing_train_split(tmp_path: Path) -> None:
    _write_splits(tmp_path, {})
    (tmp_path / "train.parquet").unlink()

    with pytest.raises(DataError) as caught:
        read_splits(tmp_path)

    assert str(caught.value) == f"{tmp_path / 'train.parquet'}: data file not found (run the prepare_data stage first)"


def test_read_splits_checks_the_columns_of_an_optional_split(tmp_path: Path) -> None:
    _write(split_path(tmp_path, "train"), _frame(columns=("x1", "x2")))
    _write(split_path(tmp_path, "test"), _frame(columns=("x1",)))

    with pytest.raises(DataError, match=r"test\.parquet: columns differ from the train split"):
        read_splits(tmp_path)


def test_read_splits_names_an_optional_split_that_is_not_a_file(tmp_path: Path) -> None:
    _write(split_path(tmp_path, "train"), _frame())
    (tmp_path / "val.parquet").mkdir()

    with pytest.raises(DataError, match=r"val\.parquet: data file not found"):
        read_splits(tmp_path)


@pytest.mark.parametrize(("split", "modes"), [("val", "train_val_test"), ("test", "train_test or train_val_test")])
def test_require_split_names_the_user_and_the_modes_that_write_it(split: str, modes: str) -> None:
    splits = {"train": (_frame().drop(columns=["target"]), np.zeros(4, dtype=np.int64))}

    with pytest.raises(DataError) as caught:
        require_split(splits, split, "the search")

    assert str(caught.value) == (
        f"the search needs a {split} split: set prepare_data.split to {modes} and run prepare_data"
    )


def test_require_split_accepts_a_present_split() -> None:
    require_split({"val": (_frame(), np.zeros(4, dtype=np.int64))}, "val", "the search")


@pytest.mark.unittest
def test_write_split_round_trips_and_keeps_dictionaries_for_non_float_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    frame = pd.DataFrame(
        {"a": np.linspace(0, 1, 50, dtype=np.float32), "colour": ["red", "blue"] * 25, "target": [0, 1] * 25}
    )
    path = tmp_path / "train.parquet"
    write_split(frame, path)

    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    columns = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)}
    assert not any("DICTIONARY" in e for e in encodings["a"])
    assert any("DICTIONARY" in e for e in encodings["colour"])
    assert any("DICTIONARY" in e for e in encodings["target"])
