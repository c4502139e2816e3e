"""Load, validate, split and scale the example data or a user's own table.

The default source is scikit-learn's Breast Cancer Wisconsin set (569 rows, 30 features, binary), so the
pipeline runs offline; `source` may instead name a CSV or Parquet file with numeric features and a binary target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from lib.datasets import MODE_SPLITS, TARGET, DataError, Split, SplitMode, Splits
from lib.params import Section

BUILTIN_SOURCE = "sklearn:breast_cancer"
SYNTHETIC_SOURCE = "sklearn:make_classification"
MIN_ROWS_PER_CLASS = 10


class PrepareParams(Section):
    """The `prepare_data` section of params.yaml."""

    source: str = Field(default=BUILTIN_SOURCE, min_length=1)
    target: str = Field(default=TARGET, min_length=1)
    # Which splits to write; a size for a split the mode does not write is ignored, so switching
    # modes is a one-key change (`dvc exp run -S prepare_data.split=train` cannot delete keys).
    split: SplitMode = "train_val_test"
    val_size: float = Field(default=0.2, gt=0, lt=1)
    test_size: float = Field(default=0.2, gt=0, lt=1)
    scale: bool = True
    # Only for source 'sklearn:make_classification': a seeded synthetic table for scale tests.
    synthetic_rows: int = Field(default=10_000, ge=100, le=10_000_000)
    synthetic_features: int = Field(default=30, ge=2, le=1_000)

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> Self:
        sizes = self.held_out_sizes()
        if sum(sizes.values()) > 0.8:
            keys = " + ".join(f"{name}_size" for name in sizes)
            raise ValueError(f"{keys} must leave at least 20% for training")
        return self

    def held_out_sizes(self) -> dict[str, float]:
        """The fraction of all rows for each held-out split that `split` writes (val, test or neither)."""
        sizes = {"val": self.val_size, "test": self.test_size}
        return {name: sizes[name] for name in MODE_SPLITS[self.split] if name in sizes}


@dataclass(frozen=True)
class Prepared:
    """What the stage produces: the splits, the preprocessing to replay at serving time, a report."""

    splits: dict[str, pd.DataFrame]
    preprocessing: dict[str, object]
    report: dict[str, float]


def load_raw(source: str, target: str, seed: int = 0, rows: int = 10_000, features: int = 30) -> pd.DataFrame:
    """Read the raw table: the built-in data set, a synthetic one (`seed`, `rows`, `features`) or a file."""
    if source == BUILTIN_SOURCE:
        from sklearn.datasets import load_breast_cancer

        return load_breast_cancer(as_frame=True).frame.rename(columns={"target": target})
    if source == SYNTHETIC_SOURCE:
        from sklearn.datasets import make_classification

        # A third of the features informative, a sixth redundant, 1% of labels flipped: no model scores perfectly.
        x, y = make_classification(
            rows,
            features,
            n_informative=max(2, features // 3),
            n_redundant=features // 6,
            flip_y=0.01,
            random_state=seed,
        )
        frame = pd.DataFrame(x.astype(np.float32), columns=[f"feature_{i:03d}" for i in range(features)])
        return frame.assign(**{target: y})
    path = Path(source)
    if not path.is_file():
        raise DataError(f"prepare_data.source: file '{source}' not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path)
    except Exception as exc:  # pandas and pyarrow raise many types for a damaged file
        raise DataError(f"{source}: cannot be read ({type(exc).__name__})") from None
    raise DataError(
        f"prepare_data.source: '{source}' is neither '{BUILTIN_SOURCE}', '{SYNTHETIC_SOURCE}' nor a .csv/.parquet file"
    )


def validate_raw(frame: pd.DataFrame, target: str, source: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Check the schema, missing values and class balance; return (features, 0/1 labels, class names)."""
    if target not in frame.columns:
        raise DataError(f"{source}: no target column '{target}'")
    features = frame.drop(columns=[target])
    if TARGET in features.columns:
        raise DataError(f"{source}: a feature column is named '{TARGET}'; rename it or use it as the target")
    if features.shape[1] == 0:
        raise DataError(f"{source}: no feature columns beside '{target}'")
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]) or pd.api.types.is_bool_dtype(features[column]):
            raise DataError(f"{source}: feature column '{column}' is not numeric")
    missing = features.columns[features.isna().any()].tolist()
    if missing or frame[target].isna().any():
        raise DataError(f"{source}: column '{(missing or [target])[0]}' holds missing values")
    values = frame[target].unique().tolist()
    try:
        classes = sorted(values)
    except TypeError:  # mixed types (e.g. 0 and "1") have no natural order; string order is stable
        classes = sorted(values, key=str)
    if len(classes) != 2:
        raise DataError(f"{source}: target '{target}' must have exactly 2 classes, found {len(classes)}")
    counts = frame[target].value_counts()
    if counts.min() < MIN_ROWS_PER_CLASS:
        raise DataError(
            f"{source}: class {str(counts.idxmin())!r} has {counts.min()} rows, "
            f"at least {MIN_ROWS_PER_CLASS} are needed to split"
        )
    labels = (frame[target] == classes[1]).to_numpy(dtype=np.int64)
    return features.astype("float64"), labels, [str(c) for c in classes]


def split_dataset(
    features: pd.DataFrame,
    labels: np.ndarray,
    val_size: float,
    test_size: float,
    seed: int,
    mode: SplitMode = "train_val_test",
) -> Splits:
    """Stratified split into the splits of `mode` (`train`: every row, in order); sizes are fractions of all rows."""
    from sklearn.model_selection import train_test_split

    if mode == "train":
        return {"train": Split(features, labels)}
    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    if mode == "train_test":
        return {"train": Split(rest_x, rest_y), "test": Split(test_x, test_y)}
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=val_size / (1 - test_size), stratify=rest_y, random_state=seed
    )
    return {"train": Split(train_x, train_y), "val": Split(val_x, val_y), "test": Split(test_x, test_y)}


def data_report(splits: Splits) -> dict[str, float]:
    """Row counts and positive-class fraction per split, and the feature count."""
    report: dict[str, float] = {"features": int(splits["train"].features.shape[1])}
    for name, (_, labels) in splits.items():
        report[f"{name}/rows"] = len(labels)
        report[f"{name}/positive_fraction"] = round(float(labels.mean()), 6)
    return report


def prepare(raw: pd.DataFrame, params: PrepareParams, seed: int) -> Prepared:
    """Validate `raw`, split it, scale every split with the train split's mean and std (if `scale`), report."""
    features, labels, classes = validate_raw(raw, params.target, params.source)
    splits = split_dataset(features, labels, params.val_size, params.test_size, seed, params.split)
    train = splits["train"].features
    mean = train.mean().to_numpy() if params.scale else np.zeros(train.shape[1])
    std = train.std(ddof=0).to_numpy() if params.scale else np.ones(train.shape[1])
    scale = np.where(std > 0, std, 1.0)  # a constant column stays as it is
    frames = {}
    for name, (split_x, split_y) in splits.items():
        scaled = ((split_x - mean) / scale).astype("float64").reset_index(drop=True)
        frames[name] = scaled.assign(**{TARGET: split_y})
    preprocessing = {
        "features": list(features.columns),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "classes": classes,
        "target": params.target,
    }
    return Prepared(frames, preprocessing, data_report(splits))
