"""Tests for runtimes/scaled_classifier.py: raw rows in, the classifier's scaled-space prediction out."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModelContext
from sklearn.linear_model import LogisticRegression

from runtimes import scaled_classifier

pytestmark = pytest.mark.unittest

FEATURES = ["a", "b", "c"]


@pytest.fixture
def fitted() -> tuple[LogisticRegression, dict, pd.DataFrame, pd.DataFrame]:
    """A classifier fitted on scaled features, the scaling, and raw rows with their scaled twins."""
    rng = np.random.default_rng(0)
    raw = pd.DataFrame(rng.normal([10.0, -3.0, 500.0], [2.0, 0.5, 80.0], size=(60, 3)), columns=FEATURES)
    mean, scale = raw.mean().to_numpy(), raw.std(ddof=0).to_numpy()
    scaled = ((raw - mean) / scale).astype("float64")
    labels = (scaled["a"] + scaled["c"] > 0).astype("int64")
    model = LogisticRegression().fit(scaled, labels)
    preprocessing = {
        "features": FEATURES,
        "mean": [float(v) for v in mean],
        "scale": [float(v) for v in scale],
        "classes": ["benign", "malignant"],
        "target": "diagnosis",
    }
    return model, preprocessing, raw, scaled


def test_score_matches_the_classifier_on_the_scaled_rows_bit_for_bit(fitted: tuple) -> None:
    model, preprocessing, raw, scaled = fitted
    scored = scaled_classifier.score(raw, model, preprocessing)
    expected = model.predict_proba(scaled)[:, 1]
    assert scored["probability"].tolist() == expected.tolist()
    assert scored["prediction"].tolist() == (expected >= 0.5).astype(int).tolist()
    assert set(scored["label"]) == {"benign", "malignant"}
    assert (scored["label"] == np.where(scored["prediction"] == 1, "malignant", "benign")).all()


def test_score_uses_the_feature_names_not_the_column_order(fitted: tuple) -> None:
    model, preprocessing, raw, _ = fitted
    shuffled = raw[["c", "a", "b"]].assign(extra=1.0)
    assert scaled_classifier.score(shuffled, model, preprocessing).equals(
        scaled_classifier.score(raw, model, preprocessing)
    )


def test_score_names_a_missing_feature(fitted: tuple) -> None:
    model, preprocessing, raw, _ = fitted
    with pytest.raises(KeyError, match="b"):
        scaled_classifier.score(raw.drop(columns=["b"]), model, preprocessing)


def test_the_pyfunc_model_loads_its_artifacts(fitted: tuple, tmp_path: Path) -> None:
    model, preprocessing, raw, _ = fitted
    (tmp_path / "classifier.pkl").write_bytes(pickle.dumps(model))
    (tmp_path / "preprocessing.json").write_text(json.dumps(preprocessing))
    context = PythonModelContext(
        artifacts={
            "classifier": str(tmp_path / "classifier.pkl"),
            "preprocessing": str(tmp_path / "preprocessing.json"),
        },
        model_config={},
    )
    pyfunc = scaled_classifier.ScaledClassifier()
    pyfunc.load_context(context)
    assert pyfunc.predict(context, raw.head(4)).equals(scaled_classifier.score(raw.head(4), model, preprocessing))
