"""The runtime served over HTTP for each task, from a user's CSV: raw columns in, with gaps and unseen
categories; the label by name with a probability per class, or the value, out; a 400 naming the problem
for a request it cannot score, with no stack trace and no server path in the body."""

from __future__ import annotations

import json
import pickle
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pandas as pd
import pytest

from lab.processes.prepare_data.examples import EXAMPLES, with_gaps
from lab.processes.prepare_data.params import PrepareParams
from lab.processes.prepare_data.prepare import prepare
from lab.processes.prepare_data.tables import load_raw
from runtimes import build
from tests.support import free_port, serving_scorer

pytestmark = pytest.mark.integration

# Per task: a column with a number to leave out, and the categorical column to send an unseen value in.
COLUMNS = {
    "binary": ("mean texture", "radius_band"),
    "multiclass": ("petal width (cm)", "sepal_length_band"),
    "regression": ("bmi", "sex"),
}


def _request(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read().decode())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode())


def _payload(frame: pd.DataFrame) -> bytes:
    rows = [[None if pd.isna(value) else value for value in row] for row in frame.astype(object).to_numpy()]
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": rows}}).encode()


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A model trained on the task's example CSV through prepare_data, saved as the runtime, served."""
    from sklearn.linear_model import LogisticRegression, Ridge

    task, folder = request.param, tmp_path_factory.mktemp(request.param)
    example = EXAMPLES[task]()
    source = folder / f"{task}.csv"
    with_gaps(example).to_csv(source, index=False)
    params = PrepareParams(source=str(source), target=example.target)
    raw = load_raw(params.source, params.target)
    prepared = prepare(raw, params, seed=0)
    train = prepared.splits["train"]
    estimator = Ridge() if task == "regression" else LogisticRegression(max_iter=1000)
    model = estimator.fit(train.drop(columns=["target"]), train["target"])
    for name, thing in (("model.pkl", model), ("preprocessing.pkl", prepared.preprocessing)):
        (folder / name).write_bytes(pickle.dumps(thing))
    (folder / "schema.json").write_text(json.dumps(asdict(prepared.schema)))
    train.to_parquet(folder / "train.parquet")
    build.save_model(
        folder / "runtime",
        folder / "model.pkl",
        folder / "preprocessing.pkl",
        folder / "schema.json",
        folder / "train.parquet",
    )

    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(folder / "runtime"), "--env-manager",
               "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with serving_scorer(command, folder, folder / "server.log", port) as url:
        features = raw.drop(columns=[example.target])
        yield {"task": task, "url": f"{url}/invocations", "rows": features, "schema": prepared.schema, "folder": folder}


def test_the_server_scores_raw_rows_with_gaps_and_an_unseen_category(served: dict[str, Any]) -> None:
    import mlflow.pyfunc

    task, schema = served["task"], served["schema"]
    number, category = COLUMNS[task]
    rows = served["rows"].dropna().head(3).reset_index(drop=True)
    rows.loc[0, number] = None  # a missing value
    rows.loc[1, category] = "never seen in training"  # an unseen category
    rows.loc[2, category] = None  # a missing category

    status, answer = _request(served["url"], _payload(rows))

    assert status == 200, answer
    predictions = pd.DataFrame(answer["predictions"])
    assert len(predictions) == 3
    if task == "regression":
        assert list(predictions.columns) == ["prediction"]
        assert predictions["prediction"].between(0, 500).all()
    else:
        assert list(predictions.columns) == ["label", *(f"probability_{name}" for name in schema.classes)]
        assert set(predictions["label"]) <= set(schema.classes)
        assert predictions.drop(columns=["label"]).sum(axis=1).round(9).eq(1.0).all()
    offline = mlflow.pyfunc.load_model(str(served["folder"] / "runtime")).predict(rows)
    pd.testing.assert_frame_equal(predictions, offline.reset_index(drop=True), check_dtype=False)


def _bad_request(served: dict[str, Any], frame: pd.DataFrame) -> str:
    status, answer = _request(served["url"], _payload(frame))
    assert status == 400, answer
    assert "stack_trace" not in answer, answer
    assert "Traceback" not in answer["message"] and str(served["folder"]) not in answer["message"]
    assert "site-packages" not in answer["message"]
    return answer["message"]


def test_a_request_without_rows_is_a_400_that_says_so(served: dict[str, Any]) -> None:
    assert _bad_request(served, served["rows"].head(0)).endswith("the request has no rows")


def test_a_missing_column_is_a_400_naming_it(served: dict[str, Any]) -> None:
    number, _ = COLUMNS[served["task"]]

    message = _bad_request(served, served["rows"].dropna().head(2).drop(columns=[number]))

    assert "missing" in message and number in message


def test_a_value_of_the_wrong_type_is_a_400_naming_it(served: dict[str, Any]) -> None:
    number, _ = COLUMNS[served["task"]]
    rows = served["rows"].dropna().head(2).reset_index(drop=True).astype({number: object})
    rows.loc[1, number] = "many"

    assert "'many'" in _bad_request(served, rows)
