"""The processed data splits that `prepare_data` writes and the training stages read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np
import pandas as pd

from lib.errors import ReprolabError

TARGET = "target"
SPLITS = ("train", "val", "test")
SplitMode = Literal["train", "train_test", "train_val_test"]
# The splits each `prepare_data.split` mode writes; train is always there, val and test may not be.
MODE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "train_test": ("train", "test"),
    "train_val_test": SPLITS,
}


Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = get_args(Task)
SCHEMA_FILE = "schema.json"


@dataclass(frozen=True)
class Schema:
    """What `prepare_data` learned about the table, written beside the splits for the training stages; the
    splits hold classification labels as codes, code i for `classes[i]` (its name in the user's file)."""

    task: Task
    target: str = TARGET
    classes: tuple[str, ...] = ()

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# The example's shape, for splits written before prepare_data recorded a schema.
BINARY = Schema("binary", TARGET, ("0", "1"))


def read_schema(data_dir: Path) -> Schema:
    """The schema `prepare_data` wrote under `data_dir`; the example's binary one when it wrote none."""
    path = Path(data_dir) / SCHEMA_FILE
    if not path.is_file():
        return BINARY
    try:
        fields = json.loads(path.read_text())
        schema = Schema(fields["task"], fields["target"], tuple(str(name) for name in fields["classes"]))
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{path}: not a schema written by prepare_data (run it again)") from None
    if schema.task not in TASKS:
        raise DataError(f"{path}: task '{schema.task}' is not one of {', '.join(TASKS)}")
    return schema


class Split(NamedTuple):
    """One split: the feature columns and their labels (codes into `Schema.classes`, or floats), row for row."""

    features: pd.DataFrame
    labels: np.ndarray


Splits = dict[str, Split]


class DataError(ReprolabError):
    """Input data is missing or malformed."""


def split_path(data_dir: Path, split: str) -> Path:
    """Where split `split` lives under `data_dir`."""
    return Path(data_dir) / f"{split}.parquet"


def write_split(frame: pd.DataFrame, path: Path) -> None:
    """Write one split as Parquet, dictionary-encoding only the columns that are not floating point."""
    # Continuous features barely repeat: with dictionaries, 600,000 rows x 30 float32 features take 1.4 s
    # to write instead of 0.3 s, into a file 18% larger (lab/docs/benchmarks-scale.md).
    dictionary = [str(name) for name, dtype in frame.dtypes.items() if dtype.kind != "f"]
    frame.to_parquet(path, index=False, use_dictionary=dictionary)


def read_split(path: Path, schema: Schema = BINARY) -> Split:
    """Read one processed split as (features, labels) for `schema`'s task; the error names the bad file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found (run the prepare_data stage first)")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    if TARGET not in frame.columns:
        raise DataError(f"{path}: no '{TARGET}' column")
    features = frame.drop(columns=[TARGET])
    if features.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"{path}: no feature columns or no rows")
    not_float = [name for name, dtype in features.dtypes.items() if dtype.kind != "f"]
    if not_float:
        raise DataError(f"{path}: column '{not_float[0]}' is not a float column")
    missing = frame.columns[frame.isna().any()]
    if len(missing):
        raise DataError(f"{path}: column '{missing[0]}' holds missing values")
    if not schema.is_classification:
        return Split(features, frame[TARGET].to_numpy(dtype="float64"))
    if not frame[TARGET].isin(range(schema.n_classes)).all():
        raise DataError(f"{path}: column '{TARGET}' must hold only the label codes 0..{schema.n_classes - 1}")
    return Split(features, frame[TARGET].to_numpy(dtype="int64"))


def read_splits(data_dir: Path) -> Splits:
    """Read `train` and, when their files exist, `val` and `test`, all with the train split's columns."""
    paths = {name: split_path(data_dir, name) for name in SPLITS}
    schema = read_schema(data_dir)
    splits = {name: read_split(path, schema) for name, path in paths.items() if name == "train" or path.exists()}
    columns = list(splits["train"].features.columns)
    for name, split in splits.items():
        if list(split.features.columns) != columns:
            raise DataError(f"{paths[name]}: columns differ from the train split")
    return splits


def require_split(splits: Splits, name: str, needed_by: str) -> None:
    """Raise a DataError naming `needed_by` and the `prepare_data.split` modes that write split `name`."""
    if name not in splits:
        modes = " or ".join(mode for mode, names in MODE_SPLITS.items() if name in names)
        raise DataError(f"{needed_by} needs a {name} split: set prepare_data.split to {modes} and run prepare_data")
