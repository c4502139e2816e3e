"""The processed data splits that `prepare_data` writes and the training stages read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from lib.errors import ReprolabError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TARGET = "target"
SPLITS = ("train", "val", "test")
SplitMode = Literal["train", "train_test", "train_val_test"]
# The splits each `prepare_data.split` mode writes; train is always there, val and test may not be.
MODE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "train_test": ("train", "test"),
    "train_val_test": SPLITS,
}


class Split(NamedTuple):
    """One split of the data: the feature columns and their integer labels, row for row."""

    features: pd.DataFrame
    labels: np.ndarray


Splits = dict[str, Split]


class DataError(ReprolabError):
    """Input data is missing or malformed."""


def split_path(data_dir: Path, split: str) -> Path:
    """Where split `split` lives under `data_dir`."""
    return Path(data_dir) / f"{split}.parquet"


def write_split(frame: pd.DataFrame, path: Path) -> None:
    """Write one split as Parquet; dictionary encoding only for columns that are not floating point.

    Continuous features have almost no repeated values, so pyarrow's default attempt at a dictionary
    for every column only costs time: writing 600,000 rows x 30 float32 features takes 0.3 s without
    it against 1.4 s with it, and the file is 18% smaller (lab/docs/benchmarks-scale.md).
    """
    import pandas as pd

    dictionary = [str(name) for name, dtype in frame.dtypes.items() if not pd.api.types.is_float_dtype(dtype)]
    frame.to_parquet(path, index=False, use_dictionary=dictionary)


def read_split(path: Path) -> Split:
    """Read one processed split as (features, integer labels); the error names the bad file."""
    import pandas as pd

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
    non_numeric = [c for c in features.columns if not pd.api.types.is_float_dtype(features[c])]
    if non_numeric:
        raise DataError(f"{path}: column '{non_numeric[0]}' is not a float column")
    if frame.isna().any().any():
        column = frame.columns[frame.isna().any()][0]
        raise DataError(f"{path}: column '{column}' holds missing values")
    if not frame[TARGET].isin([0, 1]).all():
        raise DataError(f"{path}: column '{TARGET}' must hold only 0/1 labels")
    return Split(features, frame[TARGET].to_numpy(dtype="int64"))


def read_splits(data_dir: Path) -> Splits:
    """Read the splits in `data_dir`: always `train`, and `val` and `test` when their files exist.

    Every split read must share the train split's feature columns. A missing train split is an error;
    a missing val or test split is not (`prepare_data.split` chooses which splits exist).
    """
    splits = {"train": read_split(split_path(data_dir, "train"))}
    for name in SPLITS[1:]:
        if split_path(data_dir, name).exists():
            splits[name] = read_split(split_path(data_dir, name))
    columns = list(splits["train"].features.columns)
    for name, split in splits.items():
        if list(split.features.columns) != columns:
            raise DataError(f"{split_path(data_dir, name)}: columns differ from the train split")
    return splits


def require_split(splits: Splits, name: str, needed_by: str) -> None:
    """Raise a DataError naming `needed_by` and the `prepare_data.split` modes that write split `name`."""
    if name not in splits:
        modes = " or ".join(mode for mode, names in MODE_SPLITS.items() if name in names)
        raise DataError(f"{needed_by} needs a {name} split: set prepare_data.split to {modes} and run prepare_data")
