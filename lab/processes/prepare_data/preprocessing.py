"""The preprocessing fitted on the train split and replayed on every split and at serving time (what it does:
lab/docs/make-it-yours.md)."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lab.processes.prepare_data.tables import is_categorical
from lib.datasets import DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"


def fit_preprocessing(train: pd.DataFrame, scale: bool) -> ColumnTransformer:
    """A ColumnTransformer fitted on the train split's raw feature columns (categorical: `tables.as_categories`)."""
    categorical = [name for name in train.columns if is_categorical(train[name])]
    numeric = [name for name in train.columns if name not in categorical]
    numeric_steps = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    categorical_steps = [("impute", SimpleImputer(strategy="most_frequent")), ("encode", encode)]
    transformer = ColumnTransformer(
        [(NUMERIC, Pipeline(numeric_steps), numeric), (CATEGORICAL, Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,  # `age` and `region_north`, not `numeric__age`
    ).set_output(transform="pandas")
    try:
        return transformer.fit(train)
    except ValueError as exc:
        if "not unique" not in str(exc):
            raise
        raise DataError(f"encoded feature names clash ({str(exc).splitlines()[0]}); rename a column") from None


def transform(transformer: ColumnTransformer, features: pd.DataFrame) -> pd.DataFrame:
    """`features` through the fitted preprocessing: float64 columns, a fresh 0..n-1 index."""
    return transformer.transform(features).astype("float64").reset_index(drop=True)
