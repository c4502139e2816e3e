"""Tests for runtimes/tabular_model.py: raw rows in (categories, gaps), labels with probabilities or values out."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModelContext
from sklearn.linear_model import LinearRegression, LogisticRegression

from lab.processes.prepare_data.preprocessing import fit_preprocessing, transform
from lab.processes.prepare_data.tables import as_categories
from runtimes import tabular_model

pytestmark = pytest.mark.unittest

CLASSES = ["cat", "dog", "eel"]


def _raw(rows: int = 90, seed: int = 0) -> pd.DataFrame:
    """Raw rows as a client sends them: numbers with a gap, a text column with a gap."""
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame(
        {"size": rng.normal(10.0, 2.0, rows), "region": rng.choice(["north", "south"], rows).astype(object)}
    )
    raw.loc[3, "size"] = np.nan
    raw.loc[4, "region"] = None
    return raw


def _fitted(task: str) -> tuple[Any, Any, dict[str, Any], pd.DataFrame]:
    """A model fitted through prepare_data's own preprocessing, its schema and the raw train rows."""
    raw = _raw()
    features = raw.assign(region=as_categories(raw["region"]))
    preprocessing = fit_preprocessing(features, scale=True)
    processed = transform(preprocessing, features)
    if task == "regression":
        target = 3 * raw["size"].fillna(raw["size"].median())
        return LinearRegression().fit(processed, target), preprocessing, {"task": task}, raw
    classes = CLASSES if task == "multiclass" else ["B", "M"]
    codes = np.arange(len(raw)) % len(classes)
    schema = {"task": task, "classes": classes}
    return LogisticRegression().fit(processed, codes), preprocessing, schema, raw


def _bad(raw: pd.DataFrame, task: str = "multiclass") -> str:
    model, preprocessing, schema, _ = _fitted(task)
    with pytest.raises(MlflowException) as caught:
        tabular_model.score(raw, model, preprocessing, schema)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"  # the server's 400
    return caught.value.message


def test_multiclass_answers_the_label_by_name_and_a_probability_per_class_bit_for_bit() -> None:
    model, preprocessing, schema, raw = _fitted("multiclass")

    scored = tabular_model.score(raw, model, preprocessing, schema)

    assert list(scored.columns) == ["label", "probability_cat", "probability_dog", "probability_eel"]
    features = raw.assign(region=as_categories(raw["region"]))
    expected = model.predict_proba(transform(preprocessing, features))
    assert scored.iloc[:, 1:].to_numpy().tolist() == expected.tolist()
    assert scored["label"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]


def test_binary_labels_follow_the_pipeline_threshold_on_the_second_class() -> None:
    model, preprocessing, schema, raw = _fitted("binary")

    scored = tabular_model.score(raw, model, preprocessing, schema)

    assert list(scored.columns) == ["label", "probability_B", "probability_M"]
    assert (scored["label"] == np.where(scored["probability_M"] >= 0.5, "M", "B")).all()
    np.testing.assert_allclose(scored["probability_B"] + scored["probability_M"], 1.0)


def test_regression_answers_the_value() -> None:
    model, preprocessing, schema, raw = _fitted("regression")

    scored = tabular_model.score(raw.head(5), model, preprocessing, schema)

    assert list(scored.columns) == ["prediction"] and scored["prediction"].dtype == np.float64
    np.testing.assert_allclose(scored["prediction"], 3 * raw["size"].head(5).fillna(raw["size"].median()), rtol=1e-9)


def test_a_missing_value_and_an_unseen_category_are_scored() -> None:
    model, preprocessing, schema, raw = _fitted("multiclass")
    request = pd.DataFrame({"size": [None, 11.0], "region": ["north", "atlantis"]})

    scored = tabular_model.score(request, model, preprocessing, schema)

    # the gap gets the train median; the unseen category encodes as no known category at all
    known = pd.DataFrame({"size": [np.nanmedian(raw["size"]), 11.0], "region": ["north", None]})
    features = known.assign(region=as_categories(known["region"]))
    processed = transform(preprocessing, features)
    processed.loc[1, ["region_north", "region_south"]] = 0.0
    assert scored.iloc[:, 1:].to_numpy().tolist() == model.predict_proba(processed).tolist()


def test_the_columns_are_found_by_name_and_extra_ones_ignored() -> None:
    model, preprocessing, schema, raw = _fitted("multiclass")

    reordered = raw[["region", "size"]].assign(extra="x")

    assert tabular_model.score(reordered, model, preprocessing, schema).equals(
        tabular_model.score(raw, model, preprocessing, schema)
    )


def test_a_request_without_rows_is_a_400_that_says_so() -> None:
    assert _bad(_raw().head(0)) == "the request has no rows"


def test_a_missing_column_is_a_400_naming_it() -> None:
    assert _bad(_raw().drop(columns=["size"])) == "missing column(s): size"


@pytest.mark.parametrize(("value", "shown"), [("many", "'many'"), (True, "True")])
def test_a_value_of_the_wrong_type_is_a_400_naming_column_and_value(value: object, shown: str) -> None:
    request = pd.DataFrame({"size": [1.0, value], "region": ["north", "south"]})

    assert _bad(request) == f"column 'size' must hold numbers, got {shown}"


def test_numbers_sent_as_text_and_categories_sent_as_numbers_are_taken() -> None:
    model, preprocessing, schema, _ = _fitted("multiclass")
    as_text = pd.DataFrame({"size": ["11.5"], "region": ["north"]})
    as_numbers = pd.DataFrame({"size": [11.5], "region": ["north"]})

    assert tabular_model.score(as_text, model, preprocessing, schema).equals(
        tabular_model.score(as_numbers, model, preprocessing, schema)
    )


def test_the_pyfunc_model_loads_its_artifacts(tmp_path: Path) -> None:
    model, preprocessing, schema, raw = _fitted("multiclass")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    (tmp_path / "preprocessing.pkl").write_bytes(pickle.dumps(preprocessing))
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    context = PythonModelContext(
        artifacts={
            "model": str(tmp_path / "model.pkl"),
            "preprocessing": str(tmp_path / "preprocessing.pkl"),
            "schema": str(tmp_path / "schema.json"),
        },
        model_config={},
    )
    pyfunc = tabular_model.TabularModel()
    pyfunc.load_context(context)
    expected = tabular_model.score(raw.head(4), model, preprocessing, schema)
    assert pyfunc.predict(context, raw.head(4)).equals(expected)
