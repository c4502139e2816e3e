"""Read the raw table (the example, a synthetic one, or the user's CSV/Parquet file), validate it, infer the task.
Every problem found here is one line that names the column or value, before any output is written."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lab.processes.prepare_data.params import BUILTIN_SOURCE, SYNTHETIC_SOURCE, PrepareParams, TaskSetting
from lib.datasets import TARGET, DataError, Schema, Task

MIN_ROWS_PER_CLASS = 10
# `task: auto` regresses a float target with more distinct values than this; fewer are classes.
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class Table:
    """A validated raw table: its feature columns as the file holds them, the target as codes or floats."""

    features: pd.DataFrame
    target: np.ndarray
    schema: Schema
    reason: str  # why the task is what it is, for the one line the stage prints


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
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty, not even a header") from None
    except Exception as exc:  # pandas and pyarrow raise many types for a damaged file
        raise DataError(f"{source}: cannot be read ({type(exc).__name__})") from None
    raise DataError(
        f"prepare_data.source: '{source}' is neither '{BUILTIN_SOURCE}', '{SYNTHETIC_SOURCE}' nor a .csv/.parquet file"
    )


def with_synthetic_gaps(frame: pd.DataFrame, target: str, categorical: int, missing: float, seed: int) -> pd.DataFrame:
    """The synthetic table made realistic: its first `categorical` features binned into named levels, and a
    fraction `missing` of all feature cells emptied, at places drawn from `seed`."""
    rng = np.random.default_rng(seed)
    features = [name for name in frame.columns if name != target]
    frame = frame.copy()
    for name in features[:categorical]:
        # Eight levels by octile: a categorical column that still carries the feature's signal.
        codes = pd.qcut(frame[name], 8, labels=False, duplicates="drop").to_numpy()
        frame[name] = pd.Categorical.from_codes(codes, categories=[f"level_{i}" for i in range(codes.max() + 1)])
    if missing > 0:
        for name in features:
            frame.loc[rng.random(len(frame)) < missing, name] = np.nan
    return frame


def is_categorical(column: pd.Series) -> bool:
    """Whether a feature column is categorical: strings or Python objects (a string dtype here), categories, bools."""
    dtype = column.dtype
    return pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype) or dtype.kind == "b"


def as_categories(column: pd.Series) -> pd.Series:
    """A categorical column as text, missing cells as NaN: one value type, whatever mix the file held."""
    text = column.astype(object).map(str, na_action="ignore")
    return text.where(column.notna(), np.nan).astype(object)


def infer_task(target: pd.Series, name: str, setting: TaskSetting) -> tuple[Task, str]:
    """The task `setting` names, or for `auto` the one the target's values suggest; and why, in a few words."""
    if setting != "auto":
        return setting, "set in params.yaml"
    distinct = target.nunique()
    if pd.api.types.is_float_dtype(target) and distinct > MAX_AUTO_CLASSES:
        return (
            "regression",
            f"target '{name}' holds floats with {distinct} distinct values (more than {MAX_AUTO_CLASSES})",
        )
    kind = "binary" if distinct == 2 else "multiclass"
    return kind, f"target '{name}' has {distinct} classes"


def _check_columns(frame: pd.DataFrame, params: PrepareParams) -> list[str]:
    """The feature columns to keep; an error names the first column the params name and the file lacks."""
    source, target = params.source, params.target
    if len(frame) == 0:
        raise DataError(f"{source}: no rows, only a header")
    if target not in frame.columns:
        raise DataError(f"{source}: no target column '{target}'")
    for name in params.features or []:
        if name not in frame.columns:
            raise DataError(f"{source}: no column '{name}' (named in prepare_data.features)")
    features = [c for c in (params.features or frame.columns) if c != target]
    if TARGET in features and target != TARGET:
        raise DataError(f"{source}: a feature column is named '{TARGET}'; rename it or use it as the target")
    if not features:
        raise DataError(f"{source}: no feature columns beside '{target}'")
    for name in [*features, target]:
        if frame[name].isna().all():
            raise DataError(f"{source}: column '{name}' is entirely empty")
    for name in features:
        column = frame[name]
        if not (is_categorical(column) or pd.api.types.is_numeric_dtype(column)):
            raise DataError(f"{source}: feature column '{name}' is neither numeric nor categorical ({column.dtype})")
    return features


def _check_sizes(labels: pd.Series, params: PrepareParams, folds: Mapping[str, int], classes: bool) -> None:
    """Every class (regression: the table) has rows enough for the splits and for each stage's CV folds on train."""
    if classes:
        counts = labels.value_counts()
        what, rows = f"class {str(counts.idxmin())!r}", int(counts.min())
    else:
        what, rows = "the table", len(labels)
    if params.split != "train" and rows < MIN_ROWS_PER_CLASS:
        raise DataError(f"{params.source}: {what} has {rows} rows, at least {MIN_ROWS_PER_CLASS} are needed to split")
    for key, k in folds.items():
        needed = math.ceil(k / params.train_fraction())
        if rows < needed:
            raise DataError(
                f"{params.source}: {what} has {rows} rows, at least {needed} are needed for "
                f"{key} = {k} (each fold needs one in the train split)"
            )


def validate_table(frame: pd.DataFrame, params: PrepareParams, folds: Mapping[str, int] | None = None) -> Table:
    """Check the columns, the target and the class sizes (rows for the splits and for `folds`, the training
    stages' cross-validation folds by params key) for the task; return the table ready to split."""
    source, name = params.source, params.target
    features = _check_columns(frame, params)
    target = frame[name]
    if target.isna().any():
        raise DataError(f"{source}: target '{name}' is missing in {int(target.isna().sum())} of {len(target)} rows")
    task, reason = infer_task(target, name, params.task)
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
            value = next(v for v in target if not isinstance(v, int | float) or isinstance(v, bool))
            raise DataError(f"{source}: task regression needs a numeric target; '{name}' holds {value!r}")
        schema, values = Schema("regression", name), target.to_numpy(dtype="float64")
    else:
        # The distinct labels in LabelEncoder's order: by value, or as text when the types do not compare.
        distinct = target.unique().tolist()
        try:
            classes = sorted(distinct)
        except TypeError:  # mixed types (e.g. 0 and "1") have no natural order; text order is stable
            classes = sorted(distinct, key=str)
        if len(classes) == 1:
            raise DataError(f"{source}: target '{name}' has only one class, {str(classes[0])!r}")
        if task == "binary" and len(classes) != 2:
            raise DataError(f"{source}: task binary needs 2 classes; target '{name}' has {len(classes)}")
        if task == "multiclass" and len(classes) < 3:
            raise DataError(f"{source}: task multiclass needs 3 or more classes; target '{name}' has 2 (use binary)")
        schema = Schema(task, name, tuple(str(value) for value in classes))
        values = target.map({value: code for code, value in enumerate(classes)}).to_numpy(dtype="int64")
    _check_sizes(target, params, folds or {}, classes=schema.is_classification)
    columns = {
        column: as_categories(frame[column]) if is_categorical(frame[column]) else frame[column].astype("float64")
        for column in features
    }
    return Table(pd.DataFrame(columns, index=frame.index), values, schema, reason)
