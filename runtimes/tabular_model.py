"""The runtime's model: the raw columns of the user's table in, the trained model's answer out (runtimes/README.md).

MLflow runs this file to build the model ("models from code"), so it imports nothing from this repository.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

THRESHOLD = 0.5  # binary: the pipeline metrics' rule, probability of the second class >= 0.5
MODEL, PREPROCESSING, SCHEMA = "model", "preprocessing", "schema"
_bad_request = MlflowException.invalid_parameter_value  # a 400 from the server, with no stack trace


def raw_features(raw: pd.DataFrame, preprocessing: Any) -> pd.DataFrame:
    """The request's feature columns as prepare_data held them: categories as text, numbers as float64; a 400
    (MlflowException) names a missing column, a value that is not a number, or an empty request."""
    if len(raw) == 0:
        raise _bad_request("the request has no rows")
    columns = [str(name) for name in preprocessing.feature_names_in_]
    missing = [name for name in columns if name not in raw.columns]
    if missing:
        raise _bad_request(f"missing column(s): {', '.join(missing)}")
    categorical = {str(c) for name, _, cols in preprocessing.transformers_ if name == "categorical" for c in cols}
    features = {}
    for name in columns:
        column = raw[name]
        if name in categorical:  # as prepare_data's tables.as_categories
            features[name] = column.astype(object).map(str, na_action="ignore").where(column.notna(), np.nan)
            continue
        boolean = column.map(lambda value: isinstance(value, bool | np.bool_))  # JSON true is not a number here
        numbers = pd.to_numeric(column.mask(boolean), errors="coerce")
        wrong = column.notna() & (numbers.isna() | boolean)
        if wrong.any():
            raise _bad_request(f"column '{name}' must hold numbers, got {column[wrong].iloc[0]!r}")
        features[name] = numbers.astype(np.float64)
    return pd.DataFrame(features, index=raw.index)


def score(raw: pd.DataFrame, model: Any, preprocessing: Any, schema: dict[str, Any]) -> pd.DataFrame:
    """The answer for each raw row: `label` and `probability_<class>` per class, or `prediction` (regression)."""
    processed = preprocessing.transform(raw_features(raw, preprocessing)).astype(np.float64).reset_index(drop=True)
    if schema["task"] == "regression":
        return pd.DataFrame({"prediction": np.asarray(model.predict(processed), dtype=np.float64)})
    classes = np.asarray([str(name) for name in schema["classes"]], dtype=object)
    probability = np.asarray(model.predict_proba(processed), dtype=np.float64)
    codes = (probability[:, 1] >= THRESHOLD).astype(np.int64) if schema["task"] == "binary" else probability.argmax(1)
    probabilities = {f"probability_{name}": probability[:, code] for code, name in enumerate(classes)}
    return pd.DataFrame({"label": classes[codes], **probabilities})


class TabularModel(PythonModel):
    """An MLflow pyfunc model over the artefacts `model` and `preprocessing` (pickles) and `schema` (JSON)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the model, the fitted preprocessing and the schema from the model's artefacts."""
        # A pickle runs code when loaded: load only runtimes you built (lab/docs/decisions/0002).
        self.model = pickle.loads(Path(context.artifacts[MODEL]).read_bytes())
        self.preprocessing = pickle.loads(Path(context.artifacts[PREPROCESSING]).read_bytes())
        self.schema = json.loads(Path(context.artifacts[SCHEMA]).read_text(encoding="utf-8"))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Answers for the raw rows of `model_input` (see `score`)."""
        return score(model_input, self.model, self.preprocessing, self.schema)


# MLflow runs this file to get the model; anywhere else this only fills MLflow's in-memory slot for it.
set_model(TabularModel())
