"""The processed data splits that `prepare_data` writes and the training stages read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lib.errors import ReprolabError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TARGET = "target"
SPLITS = ("train", "val", "test")


class DataError(ReprolabError):
    """Input data is missing or malformed."""


def split_path(data_dir: Path, split: str) -> Path:
    """Where split `split` lives under `data_dir`."""
    return Path(data_dir) / f"{split}.parquet"


def read_split(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
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
    return features, frame[TARGET].to_numpy(dtype="int64")


def read_splits(data_dir: Path) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Read train, val and test from `data_dir`, checking they share one feature schema."""
    splits = {name: read_split(split_path(data_dir, name)) for name in SPLITS}
    columns = list(splits["train"][0].columns)
    for name, (features, _) in splits.items():
        if list(features.columns) != columns:
            raise DataError(f"{split_path(data_dir, name)}: columns differ from the train split")
    return splits
