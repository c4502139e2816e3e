"""The stage's entry point for real, in a project copy: killed and resumed, and data-parallel under torchrun.

One project copy (prepare_data run once) serves every test; each run writes its outputs and checkpoints
to folders of its own, so runs can be compared file by file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

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


def test_a_killed_run_resumes_and_ends_with_the_same_bytes(project: Path, uninterrupted: Path) -> None:
    resumed = project / "runs/resumed"
    with open(os.devnull, "w") as devnull:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, *_paths("resumed")],
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

    done = _train(project, "resumed")

    assert f"resuming from checkpoint runs/resumed/checkpoints/epoch-{killed_at:04d}.pt" in done.stderr
    for name in ("dnn.pt", "dnn.json", "plots/history.csv"):
        assert (resumed / name).read_bytes() == (uninterrupted / name).read_bytes(), name
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
