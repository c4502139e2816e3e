"""The runtime's model: raw feature columns in, the selected classifier's prediction out.

MLflow runs this file to build the model ("models from code"), so it imports nothing from this repository.
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
    """Scale `raw` as prepare_data did on train, then predict: `prediction`, `label` (class name), `probability`.

    The prediction is the pipeline metrics' rule (probability >= 0.5), so the goals judged this very model.
    """
    features = list(preprocessing["features"])
    # The same float64 operations, in the same order, as prepare_data: identical bits in, identical bits out.
    mean, scale = (np.asarray(preprocessing[key], dtype=np.float64) for key in ("mean", "scale"))
    scaled = (raw[features].to_numpy(dtype=np.float64) - mean) / scale
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
