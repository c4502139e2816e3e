"""The preprocessing fitted on the train split and replayed on every split and at serving time.

It is scikit-learn's own parts in one ColumnTransformer over the raw feature columns: numeric columns get
their missing cells filled with the train median and (with `prepare_data.scale`) are standardised;
categorical ones get the most frequent train value and a one-hot encoding that ignores categories unseen
in train. Its output columns are all floats, named by `get_feature_names_out`.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lab.processes.prepare_data.tables import is_categorical
from lib.datasets import DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"


def make_preprocessing(features: pd.DataFrame, scale: bool) -> ColumnTransformer:
    """An unfitted ColumnTransformer for the columns of `features` (categorical ones as `tables.as_categories`)."""
    categorical = [name for name in features.columns if is_categorical(features[name])]
    numeric = [name for name in features.columns if name not in categorical]
    numeric_steps = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    categorical_steps = [("impute", SimpleImputer(strategy="most_frequent")), ("encode", encode)]
    transformer = ColumnTransformer(
        [(NUMERIC, Pipeline(numeric_steps), numeric), (CATEGORICAL, Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,  # `age` and `region_north`, not `numeric__age`
    )
    return transformer.set_output(transform="pandas")


def fit_preprocessing(train: pd.DataFrame, scale: bool) -> ColumnTransformer:
    """The preprocessing fitted on the train split's raw feature columns."""
    transformer = make_preprocessing(train, scale)
    try:
        return transformer.fit(train)
    except ValueError as exc:
        if "not unique" not in str(exc):
            raise
        raise DataError(f"encoded feature names clash ({str(exc).splitlines()[0]}); rename a column") from None


def transform(transformer: ColumnTransformer, features: pd.DataFrame) -> pd.DataFrame:
    """`features` through the fitted preprocessing: float64 columns, a fresh 0..n-1 index."""
    return transformer.transform(features).astype("float64").reset_index(drop=True)
