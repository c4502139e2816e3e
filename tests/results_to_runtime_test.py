"""From results to decisions and deployment, on a real pipeline history in a project copy.

One module fixture builds the history: `dvc repro` and a results commit, a params change with a second
`dvc repro` and commit, and a DVC experiment. On it, the analysis notebook runs headless; a runtime is
built from the outputs and served over HTTP, and its predictions are compared bit for bit with the
pipeline's own model; and the runtime is registered as a candidate once its goals pass.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.support import add_goals_and_runtimes, make_project_copy, run, serving_runtime, shrunk_params

pytestmark = pytest.mark.integration

NOTEBOOK = PROJ_ROOT / "lab" / "analysis" / "compare_experiments.ipynb"
MODEL = Path("model_dir", "model")  # the runtime's model, where `mlflow models generate-dockerfile` puts it
# Goals the shrunk pipeline (three epochs) meets, and goals no model meets.
LENIENT_GOALS = """
models:
  classifier: {metrics: metrics/classifiers.json, label: the selected classifier, minimum: {test/roc_auc: 0.9}}
  network: {metrics: metrics/dnn.json, label: the network, minimum: {test/accuracy: 0.6}}
comparisons:
  - {model: network, baseline: classifier, max_shortfall: {test/accuracy: 0.5}}
"""
STRICT_GOALS = """
models:
  classifier: {metrics: metrics/classifiers.json, label: the selected classifier, minimum: {test/roc_auc: 0.9}}
  network: {metrics: metrics/dnn.json, label: the network, minimum: {test/accuracy: 0.999}}
"""


def _git(project: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project copy with two results commits (the network's layers changed between them) and a DVC experiment."""
    project = make_project_copy(tmp_path_factory.mktemp("history") / "project", shrunk_params())
    add_goals_and_runtimes(project)

    _ok(run(["dvc", "repro"], project))
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "results 1")
    first = _git(project, "rev-parse", "HEAD")

    params = shrunk_params({"train_dnn_pytorch": {"hidden_layers": [16]}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    _ok(run(["dvc", "repro"], project))
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "results 2")
    second = _git(project, "rev-parse", "HEAD")

    _ok(run(["dvc", "exp", "run", "-S", "train_dnn_pytorch.lr=0.01", "-n", "lr-high"], project))
    # The experiment's results are applied to the workspace; go back to the committed ones.
    _git(project, "checkout", "--", ".")
    _ok(run(["dvc", "checkout", "--force"], project))
    assert _git(project, "status", "--porcelain", "--untracked-files=no") == ""
    return {"project": project, "first": first, "second": second}


# --- the analysis notebook ------------------------------------------------------------------------


def _tagged_outputs(notebook: Any, tag: str) -> str:
    """The text (plain and HTML) of every output of the cells tagged `tag`."""
    texts = []
    for cell in notebook.cells:
        if tag in cell.metadata.get("tags", []):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                texts += [output.get("text", ""), data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(texts)


def test_the_notebook_runs_headless_and_compares_runs_commits_and_experiments(
    history: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    # As under `make lab`: the kernel starts in the notebook's folder with the repository on PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", str(PROJ_ROOT))
    monkeypatch.setenv("REPROLAB_REPO", str(history["project"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    runs = _tagged_outputs(notebook, "mlflow-table")
    assert "train_dnn_pytorch/test/roc_auc" in runs and "train_standard_classifiers/test/accuracy" in runs
    for commit in (history["first"], history["second"]):  # the runs that produced results 2 and the experiment
        assert commit[:7] in runs
    assert "params.train_dnn_pytorch.hidden_layers" in _tagged_outputs(notebook, "mlflow-params")
    assert any("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
               if "curves" in cell.metadata.get("tags", []))  # fmt: skip

    revisions = _tagged_outputs(notebook, "dvc-table")
    assert history["first"][:7] in revisions and history["second"][:7] in revisions
    assert "lr-high" in revisions and "metrics.dnn/test/roc_auc" in revisions
    differing = _tagged_outputs(notebook, "dvc-params")
    assert "params.train_dnn_pytorch.hidden_layers" in differing and "params.train_dnn_pytorch.lr" in differing
    assert "params.seed" not in differing


# --- the runtime: build and serve ------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime(history: dict[str, Any]) -> Path:
    """The runtime built from the project's committed outputs with the real command."""
    project = history["project"]
    done = _ok(run([sys.executable, "-m", "runtimes.build", "--out", "dist"], project))
    folder = project / "dist" / f"breast-cancer-classifier-2.0.0-{history['second'][:7]}"
    assert f"runtime: {folder}" in done.stdout
    return folder


def _request(url: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET, or of a POST when `body` is given."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


@pytest.fixture(scope="module")
def server(history: dict[str, Any], runtime: Path) -> Iterator[str]:
    """`make serve` (MLflow's scoring server for this checkout's runtime) on 127.0.0.1; yields its base URL."""
    with serving_runtime(history["project"], runtime.parent / "server.log") as url:
        yield url


def test_the_runtime_is_a_versioned_artefact_that_names_its_sources(history: dict[str, Any], runtime: Path) -> None:
    from mlflow import __version__ as mlflow_version

    project = history["project"]
    assert runtime.with_name(f"{runtime.name}.zip").is_file()
    model = "model_dir/model"
    for path in ("MLmodel", "serving_input_example.json", "requirements.txt"):
        assert (runtime / model / path).is_file(), path
    dockerfile = (runtime / "Dockerfile").read_text()  # MLflow's own, generated for this model
    assert f"COPY {model} /opt/ml/model" in dockerfile and f"mlflow=={mlflow_version}" in dockerfile
    info = json.loads((runtime / "runtime.json").read_text())
    assert info["artifact"] == runtime.name
    assert info["git"] == {"commit": history["second"], "short": history["second"][:7], "dirty": False}
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    recorded = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    assert info["dvc_lock_outs"] == recorded and info["data_version"] == recorded["data/processed"]
    for path in ("metrics/classifiers.json", "metrics/dnn.json", "metrics/data.json"):
        assert info["metrics"][path] == json.loads((project / path).read_text())
    assert info["params"]["train_dnn_pytorch"]["hidden_layers"] == [16]
    assert "scikit-learn==" in (runtime / model / "requirements.txt").read_text()
    signature = yaml.safe_load((runtime / model / "MLmodel").read_text())["signature"]
    features = pickle.loads((project / "models/preprocessing.pkl").read_bytes()).feature_names_in_.tolist()
    assert [column["name"] for column in json.loads(signature["inputs"])] == features
    outputs = [column["name"] for column in json.loads(signature["outputs"])]
    assert outputs == ["label", "probability_0", "probability_1"]


def _raw_test_split(project: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The test split's raw rows, re-derived from the source as prepare_data does, and its processed rows."""
    from lab.processes.prepare_data.params import PrepareParams
    from lab.processes.prepare_data.splitting import split_dataset
    from lab.processes.prepare_data.tables import load_raw, validate_table
    from lib.datasets import read_split
    from lib.params import ParamsFile

    params = ParamsFile.read(project / "params.yaml")
    config = params.section("prepare_data", PrepareParams)
    table = validate_table(load_raw(config.source, config.target, params.seed()), config)
    splits = split_dataset(table.features, table.target, config.val_size, config.test_size, params.seed())
    test = splits["test"].features
    processed, _ = read_split(project / "data" / "processed" / "test.parquet")
    return test.reset_index(drop=True), processed


def _payload(frame: pd.DataFrame) -> bytes:
    """`dataframe_split` JSON with every float at full precision (json writes repr, which round-trips)."""
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}).encode()


def test_the_server_predicts_exactly_what_the_pipeline_model_predicts(
    history: dict[str, Any], runtime: Path, server: str
) -> None:
    import mlflow.pyfunc

    project = history["project"]
    offline = mlflow.pyfunc.load_model(str(runtime / MODEL))

    example = (runtime / MODEL / "serving_input_example.json").read_bytes()
    status, answer = _request(f"{server}/invocations", example)
    assert status == 200, answer
    split = json.loads(example)["dataframe_split"]
    expected = offline.predict(pd.DataFrame(split["data"], columns=split["columns"]))
    assert pd.DataFrame(answer["predictions"]).equals(expected.reset_index(drop=True))

    raw, processed = _raw_test_split(project)
    preprocessing = pickle.loads((project / "models/preprocessing.pkl").read_bytes())
    rescaled = preprocessing.transform(raw).astype("float64")
    assert rescaled.equals(processed), "the raw test rows do not scale to the processed ones"
    status, answer = _request(f"{server}/invocations", _payload(raw))
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"])
    assert len(served) == len(raw) == 114
    assert served.equals(offline.predict(raw).reset_index(drop=True))
    with (project / "models/classifier.pkl").open("rb") as file:
        classifier = pickle.load(file)
    pipeline = classifier.predict_proba(processed)
    assert served["probability_1"].tolist() == pipeline[:, 1].tolist()  # bit for bit, not approximately
    assert served["probability_0"].tolist() == pipeline[:, 0].tolist()
    assert served["label"].tolist() == np.where(pipeline[:, 1] >= 0.5, "1", "0").tolist()


def test_a_malformed_request_gets_a_clear_4xx_and_the_server_keeps_serving(runtime: Path, server: str) -> None:
    invocations = f"{server}/invocations"
    status, answer = _request(invocations, b'{"dataframe_split": ')
    assert status == 400 and "valid JSON" in answer["message"]

    example = json.loads((runtime / MODEL / "serving_input_example.json").read_text())
    split = example["dataframe_split"]
    missing = {"dataframe_split": {"columns": split["columns"][1:], "data": [row[1:] for row in split["data"]]}}
    status, answer = _request(invocations, json.dumps(missing).encode())
    assert status == 400 and "missing inputs" in answer["message"] and split["columns"][0] in answer["message"]

    wrong_type = {"dataframe_split": {"columns": split["columns"], "data": [["many", *split["data"][0][1:]]]}}
    status, answer = _request(invocations, json.dumps(wrong_type).encode())
    assert status == 400 and "could not convert string to float: 'many'" in answer["message"]

    status, answer = _request(invocations, json.dumps({"rows": []}).encode())
    assert status == 400 and "dataframe_split" in answer["message"]

    status, answer = _request(invocations, b"hello", content_type="text/plain")
    assert status == 415 and "content types" in answer

    no_rows = {"dataframe_split": {"columns": split["columns"], "data": []}}
    status, answer = _request(invocations, json.dumps(no_rows).encode())
    assert status == 400 and answer["message"].endswith("Error: the request has no rows"), answer
    assert "stack_trace" not in answer and "Traceback" not in answer["message"]

    with_gap = {"dataframe_split": {"columns": split["columns"], "data": [[None, *split["data"][0][1:]]]}}
    status, answer = _request(invocations, json.dumps(with_gap).encode())
    assert status == 200 and len(answer["predictions"]) == 1, answer  # the gap gets the train median

    assert _request(f"{server}/ping")[0] == 200
    status, answer = _request(invocations, json.dumps(example).encode())
    assert status == 200 and len(answer["predictions"]) == len(split["data"])


# --- the registry ----------------------------------------------------------------------------------


def test_the_runtime_is_registered_as_candidate_only_once_its_goals_pass(
    history: dict[str, Any], runtime: Path, tmp_path: Path
) -> None:
    import mlflow

    project = history["project"]
    store = f"sqlite:///{tmp_path / 'registry.db'}"
    (tmp_path / "lenient.yaml").write_text(LENIENT_GOALS)
    (tmp_path / "strict.yaml").write_text(STRICT_GOALS)
    register = [sys.executable, "-m", "runtimes.register", "--runtime", str(runtime)]

    done = run([*register, "--goals-file", str(tmp_path / "strict.yaml")], project, MLFLOW_TRACKING_URI=store)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "goals not met: test/accuracy of the network is" in done.stderr and "below the goal 0.999" in done.stderr
    assert not (tmp_path / "registry.db").exists(), "a refused runtime touched the registry"

    # As `make register` does: the goals over the outputs first, then the registration.
    _ok(run([sys.executable, "-m", "pytest", "goals", "--goals-file", str(tmp_path / "lenient.yaml")], project))
    done = _ok(run([*register, "--goals-file", str(tmp_path / "lenient.yaml")], project, MLFLOW_TRACKING_URI=store))
    assert "registered breast-cancer-classifier version 1 as @candidate" in done.stdout

    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    version = client.get_model_version_by_alias("breast-cancer-classifier", "candidate")
    assert str(version.version) == "1"
    assert version.tags["git.commit"] == history["second"]
    assert version.tags["runtime.artifact"] == runtime.name
    assert history["second"] in version.description and runtime.name in version.description
    artifacts = {item.path for item in client.list_artifacts(version.run_id, "runtime")}
    assert artifacts == {"runtime/runtime.json", f"runtime/{runtime.name}.zip"}
    assert client.get_run(version.run_id).data.tags["git.commit"] == history["second"]

    previous = mlflow.get_registry_uri(), mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        registered = mlflow.pyfunc.load_model("models:/breast-cancer-classifier@candidate")
    finally:
        mlflow.set_registry_uri(previous[0])
        mlflow.set_tracking_uri(previous[1])
    example = json.loads((runtime / MODEL / "serving_input_example.json").read_text())["dataframe_split"]
    frame = pd.DataFrame(example["data"], columns=example["columns"])
    offline = mlflow.pyfunc.load_model(str(runtime / MODEL))
    assert registered.predict(frame).equals(offline.predict(frame))


# --- only current outputs ----------------------------------------------------------------------------


def test_goals_and_the_runtime_refuse_outputs_that_are_not_current_naming_the_stage(
    history: dict[str, Any], tmp_path: Path
) -> None:
    project = history["project"]
    (tmp_path / "lenient.yaml").write_text(LENIENT_GOALS)
    goals = [sys.executable, "-m", "pytest", "goals", "--goals-file", str(tmp_path / "lenient.yaml")]
    build = [sys.executable, "-m", "runtimes.build", "--out", str(tmp_path / "dist")]
    params, metrics = project / "params.yaml", project / "metrics" / "dnn.json"
    committed = params.read_text(), metrics.read_text()
    try:
        # A param changed after the run, as when `dvc repro` then failed in the network's stage.
        params.write_text(committed[0].replace("epochs: 3", "epochs: 4"))
        done = run(goals, project)
        assert done.returncode != 0
        assert (done.stdout + done.stderr).strip().splitlines() == [
            "ERROR: the outputs are not the ones dvc.lock, params and data describe: stage train_dnn_pytorch "
            "(params.yaml train_dnn_pytorch modified): run `dvc repro` (a stage that failed must succeed), "
            "or `dvc pull` for missing outputs"
        ], done.stdout + done.stderr
        done = run(build, project)
        assert done.returncode == 2 and "stage train_dnn_pytorch (params.yaml" in done.stderr
        assert not (tmp_path / "dist").exists()

        params.write_text(committed[0])
        metrics.unlink()
        done = run(goals, project)
        assert done.returncode != 0 and "stage train_dnn_pytorch (metrics/dnn.json deleted)" in done.stderr
    finally:
        params.write_text(committed[0])
        metrics.write_text(committed[1])
    _ok(run(goals, project))
