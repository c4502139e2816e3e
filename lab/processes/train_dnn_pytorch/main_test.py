"""The stage's entry point for real, in a project copy: killed and resumed, and data-parallel under torchrun.

One project copy (prepare_data run once) serves every test; each run writes its outputs and checkpoints
to folders of its own, so runs can be compared file by file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from lib.datasets import Schema, Splits
from lib.evaluation import TASK_METRICS
from tests.data import MULTICLASS, REGRESSION, write_processed
from tests.support import VENV_BIN, clean_env, make_project_copy, run, shrunk_params

pytestmark = pytest.mark.integration

MODULE = "lab.processes.train_dnn_pytorch.main"
EPOCHS = 30
# Small batches make epochs long enough to kill the run between two of them. No dropout, so that the
# data-parallel run computes the same gradients as the single process; the cosine schedule has state.
NETWORK = {
    "epochs": EPOCHS,
    "batch_size": 8,
    "hidden_layers": [8],
    "dropout": 0.0,
    "lr_schedule": "cosine",
    "device": "cpu",
}
KILL_AFTER_EPOCH = 3


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with the processed data in place and an MLflow store of its own."""
    project = make_project_copy(
        tmp_path_factory.mktemp("dnn") / "project", shrunk_params({"train_dnn_pytorch": NETWORK})
    )
    done = run([sys.executable, "-m", "lab.processes.prepare_data.main"], project, **_tracking(project))
    assert done.returncode == 0, done.stderr
    return project


def _tracking(project: Path) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}


def _paths(name: str) -> list[str]:
    """Command-line paths that put one run's outputs and checkpoints under `runs/<name>/`."""
    base = f"runs/{name}"
    return [
        "--model",
        f"{base}/dnn.pt",
        "--metrics",
        f"{base}/dnn.json",
        "--plots-dir",
        f"{base}/plots",
        "--checkpoint-dir",
        f"{base}/checkpoints",
    ]


def _train(project: Path, name: str) -> subprocess.CompletedProcess[str]:
    done = run([sys.executable, "-m", MODULE, *_paths(name)], project, **_tracking(project))
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def uninterrupted(project: Path) -> Path:
    """The outputs of a run that was never interrupted."""
    _train(project, "uninterrupted")
    return project / "runs/uninterrupted"


def _epochs_saved(checkpoints: Path) -> int:
    return max((int(p.stem.removeprefix("epoch-")) for p in checkpoints.glob("epoch-*.pt")), default=0)


def _stage_runs(project: Path) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=_tracking(project)["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("reprolab-example")
    runs = client.search_runs([experiment.experiment_id], "tags.`dvc.stage` = 'train_dnn_pytorch'")
    return sorted(runs, key=lambda r: r.info.start_time)


def _kill_and_resume(project: Path, name: str) -> subprocess.CompletedProcess[str]:
    """Start a run, SIGKILL it once `KILL_AFTER_EPOCH` epochs are checkpointed, check it left no outputs, and
    run it again to the end; the second run's result."""
    resumed = project / "runs" / name
    with open(os.devnull, "w") as devnull:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, *_paths(name)],
            cwd=project,
            env=clean_env(**_tracking(project)),
            stdout=devnull,
            stderr=devnull,
        )
    try:
        deadline = time.monotonic() + 120
        while _epochs_saved(resumed / "checkpoints") < KILL_AFTER_EPOCH:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    killed_at = _epochs_saved(resumed / "checkpoints")
    assert process.returncode == -signal.SIGKILL
    assert KILL_AFTER_EPOCH <= killed_at < EPOCHS
    assert not (resumed / "dnn.pt").exists() and not (resumed / "dnn.json").exists()

    done = _train(project, name)

    assert f"resuming from checkpoint runs/{name}/checkpoints/epoch-{killed_at:04d}.pt" in done.stderr
    return done


def _assert_same_outputs(resumed: Path, uninterrupted: Path) -> None:
    for name in ("dnn.pt", "dnn.json", "plots/history.csv"):
        assert (resumed / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_a_killed_run_resumes_and_ends_with_the_same_bytes(project: Path, uninterrupted: Path) -> None:
    resumed = project / "runs/resumed"

    _kill_and_resume(project, "resumed")

    _assert_same_outputs(resumed, uninterrupted)
    assert not (resumed / "checkpoints").exists(), "checkpoints are removed once the outputs are written"
    # The resumed run continued the killed run's MLflow run: every epoch logged there, once.
    first, second = _stage_runs(project)[:2]
    client = mlflow.MlflowClient(tracking_uri=_tracking(project)["MLFLOW_TRACKING_URI"])
    resumed_run = second if first.info.run_id != second.info.run_id else first
    steps = [m.step for m in client.get_metric_history(resumed_run.info.run_id, "train/loss")]
    assert sorted(steps) == list(range(1, EPOCHS + 1))
    assert "test/accuracy" in resumed_run.data.metrics
    assert resumed_run.data.tags["device.torch"] == torch.__version__  # on CUDA also the GPU, CUDA, cuDNN, driver


@pytest.mark.parametrize("start", ["torchrun", "REPROLAB_NPROC_PER_NODE"])
def test_torchrun_with_two_processes_matches_one_process(project: Path, uninterrupted: Path, start: str) -> None:
    """Under torchrun, or started with REPROLAB_NPROC_PER_NODE=2 (GPUS_PER_JOB in the launch workflow)."""
    runs_before = len(_stage_runs(project))
    if start == "torchrun":
        command = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", MODULE]
        env = _tracking(project)
    else:
        command = [sys.executable, "-m", MODULE]
        env = {**_tracking(project), "REPROLAB_NPROC_PER_NODE": "2"}
    parallel = project / f"runs/parallel-{start}"

    done = run([*command, *_paths(parallel.name)], project, **env)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("train_dnn_pytorch: kept epoch") == 1, "rank 0 alone reports"
    runs = _stage_runs(project)
    assert len(runs) == runs_before + 1, "rank 0 alone logs to MLflow"
    assert runs[-1].data.params["processes"] == "2"
    assert not (parallel / "checkpoints").exists()
    assert sorted(p.name for p in (parallel / "plots").iterdir()) == sorted(
        p.name for p in (uninterrupted / "plots").iterdir()
    )
    one, two = (torch.load(path / "dnn.pt", weights_only=True)["state_dict"] for path in (uninterrupted, parallel))
    assert list(one) == list(two)
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-4, rtol=1e-4), key
    assert not all(torch.equal(one[key], two[key]) for key in one), "a different sum order, not the same run"


# --- other tasks, and a network of the user's own ----------------------------------------------------

# A different architecture, plugged in the way the README says: one function in network.py, listed in
# ARCHITECTURES. It is made of stock torch layers, so its MLflow model loads anywhere.
PLUGGED = '''

def wide(n_inputs: int, n_outputs: int, params: NetworkParams) -> nn.Module:
    """One wide layer with layer norm and GELU."""
    from torch import nn

    width = 4 * params.hidden_layers[0]
    return nn.Sequential(nn.Linear(n_inputs, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, n_outputs))


ARCHITECTURES["wide"] = wide
'''
# Run in the project copy: the MLflow model of the stage's run must give what the saved network gives.
SERVED_LIKE_SAVED = """
import json, sys, mlflow, numpy as np, pandas as pd, torch
from lab.processes.train_dnn_pytorch.network import load_network
network, features = load_network(sys.argv[1])
test = pd.read_parquet("data/processed/test.parquet")[features].astype("float32")
client = mlflow.MlflowClient()
(model,) = client.search_logged_models(
    experiment_ids=[client.get_experiment_by_name("reprolab-example").experiment_id],
    filter_string=f"source_run_id = '{sys.argv[2]}'",
)
served = np.asarray(mlflow.pyfunc.load_model(model.model_uri).predict(test))
with torch.no_grad():
    probability = torch.softmax(network(torch.tensor(test.to_numpy())), 1).numpy()
layers = [type(layer).__name__ for layer in network]
print(json.dumps({"layers": layers, "shape": served.shape, "difference": float(abs(served - probability).max())}))
"""


def _task_project(tmp_path: Path, splits: Splits, schema: Schema, network: dict) -> Path:
    params = shrunk_params({"train_dnn_pytorch": {**network, "device": "cpu"}})
    project = make_project_copy(tmp_path / "project", params)
    write_processed(splits, schema, project / "data/processed")
    return project


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_each_task_trains_its_own_output_layer_and_loss(
    task: str, tmp_path: Path, multiclass_splits: Splits, regression_splits: Splits
) -> None:
    splits, schema = (multiclass_splits, MULTICLASS) if task == "multiclass" else (regression_splits, REGRESSION)
    project = _task_project(tmp_path, splits, schema, {"epochs": 20, "lr": 0.01, "batch_size": 16})

    done = _train(project, "task")

    outputs = project / "runs/task"
    metrics = json.loads((outputs / "dnn.json").read_text())
    history = pd.read_csv(outputs / "plots/history.csv")
    (stage_run,) = _stage_runs(project)
    assert stage_run.data.tags["task"] == task
    if task == "multiclass":
        assert set(TASK_METRICS["multiclass"]) <= {key.removeprefix("test/") for key in metrics}
        assert metrics["test/accuracy"] > 0.6 and metrics["test/roc_auc"] > 0.75
        assert set(pd.read_csv(outputs / "plots/confusion.csv")["actual"]) == set(MULTICLASS.classes)
        assert pd.read_csv(outputs / "plots/predictions.csv").empty
        assert "test/accuracy" in done.stdout
    else:
        assert {"test/rmse", "test/mae", "test/r2"} <= set(metrics) and "test/accuracy" not in metrics
        assert metrics["test/r2"] > 0.8
        predictions = pd.read_csv(outputs / "plots/predictions.csv")
        assert len(predictions) == len(splits["test"].labels)
        assert abs(predictions["predicted"].mean() - predictions["actual"].mean()) < 20  # in the target's units
        assert pd.read_csv(outputs / "plots/confusion.csv").empty
        assert "train/accuracy" not in history and "val/rmse" in history
    tables = ["history.csv", "confusion.csv", "roc.csv", "predictions.csv"]
    figures = ["training_curves.png", "confusion_matrix.png", "roc.png", "predicted_vs_actual.png", "residuals.png"]
    assert sorted(p.name for p in (outputs / "plots").iterdir()) == sorted([*tables, *figures])
    client = mlflow.MlflowClient(tracking_uri=_tracking(project)["MLFLOW_TRACKING_URI"])
    (model,) = client.search_logged_models(
        experiment_ids=[stage_run.info.experiment_id], filter_string=f"source_run_id = '{stage_run.info.run_id}'"
    )
    test = splits["test"].features.astype("float32")
    mlflow.set_tracking_uri(_tracking(project)["MLFLOW_TRACKING_URI"])
    try:
        served = np.asarray(mlflow.pyfunc.load_model(model.model_uri).predict(test))
    finally:
        mlflow.set_tracking_uri(None)
    if task == "multiclass":
        np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
        accuracy = (served.argmax(axis=1) == splits["test"].labels).mean()
        assert accuracy == pytest.approx(metrics["test/accuracy"], abs=1e-6)
    else:
        rmse = float(np.sqrt(np.mean((served.ravel() - splits["test"].labels) ** 2)))
        assert rmse == pytest.approx(metrics["test/rmse"], rel=1e-4)


def test_a_plugged_in_architecture_trains_resumes_with_the_same_bytes_and_is_served(
    tmp_path: Path, multiclass_splits: Splits
) -> None:
    network = {**NETWORK, "architecture": "wide"}
    project = _task_project(tmp_path, multiclass_splits, MULTICLASS, network)
    network_file = project / "lab/processes/train_dnn_pytorch/network.py"
    network_file.write_text(network_file.read_text() + PLUGGED)

    _train(project, "uninterrupted")
    _kill_and_resume(project, "resumed")

    _assert_same_outputs(project / "runs/resumed", project / "runs/uninterrupted")
    resumed_run = _stage_runs(project)[-1]
    assert resumed_run.data.params["train_dnn_pytorch.architecture"] == "wide"
    done = run(
        [sys.executable, "-c", SERVED_LIKE_SAVED, "runs/resumed/dnn.pt", resumed_run.info.run_id],
        project,
        **_tracking(project),
    )
    assert done.returncode == 0, done.stderr
    served = json.loads(done.stdout)
    assert served["layers"] == ["Linear", "LayerNorm", "GELU", "Linear"]
    assert served["shape"] == [len(multiclass_splits["test"].labels), 3]
    assert served["difference"] < 1e-6
