"""The runtime's model: raw feature columns in, the selected classifier's prediction out.

MLflow builds the model by running this file ("models from code"), so it is copied into every runtime
artefact and imports nothing from this repository: numpy, pandas and MLflow only. It replays the
scaling that `prepare_data` fitted on the train split (`models/preprocessing.json`), then asks the
pickled scikit-learn classifier for the probability of the positive class. The prediction uses the
same rule as the pipeline's metrics (probability >= 0.5), so the goals judged this very model.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

THRESHOLD = 0.5
CLASSIFIER = "classifier"
PREPROCESSING = "preprocessing"


def score(raw: pd.DataFrame, classifier: Any, preprocessing: Mapping[str, Any]) -> pd.DataFrame:
    """Scale `raw` as on train, then predict: `prediction` (0/1), `label` (the class name), `probability`.

    Args:
        raw: one row per case, with at least the feature columns named in `preprocessing`.
        classifier: a fitted scikit-learn classifier trained on the scaled features.
        preprocessing: `features`, `mean`, `scale` and `classes` as `prepare_data` wrote them.
    """
    features = list(preprocessing["features"])
    # The same float64 operations, in the same order, as prepare_data: identical bits in, identical bits out.
    scaled = (raw[features].to_numpy(dtype=np.float64) - np.asarray(preprocessing["mean"], dtype=np.float64)) / (
        np.asarray(preprocessing["scale"], dtype=np.float64)
    )
    probability = classifier.predict_proba(pd.DataFrame(scaled, columns=features))[:, 1].astype(np.float64)
    prediction = (probability >= THRESHOLD).astype(np.int64)
    labels = np.asarray([str(name) for name in preprocessing["classes"]], dtype=object)
    return pd.DataFrame({"prediction": prediction, "label": labels[prediction], "probability": probability})


class ScaledClassifier(PythonModel):
    """An MLflow pyfunc model over the artefacts `classifier` (pickle) and `preprocessing` (JSON)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the classifier and the scaling from the model's artefacts."""
        with open(context.artifacts[CLASSIFIER], "rb") as file:
            # A pickle runs code when loaded: load only runtimes you built (lab/docs/decisions/0002).
            self.classifier = pickle.load(file)
        with open(context.artifacts[PREPROCESSING], encoding="utf-8") as file:
            self.preprocessing = json.load(file)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Predictions for the raw rows of `model_input` (see `score`)."""
        return score(model_input, self.classifier, self.preprocessing)


# MLflow runs this file to get the model; anywhere else this only fills MLflow's in-memory slot for it.
set_model(ScaledClassifier())
