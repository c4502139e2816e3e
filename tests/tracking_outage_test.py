"""Tracking never costs a run: a real `mlflow server` stopped mid-training, a sync killed mid-replay, a
fully offline run synced later, and stages tracking at once. The journal and the sync are lib/tracking/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import clean_env, free_port, make_project_copy, run, running_mlflow_server, shrunk_params

pytestmark = pytest.mark.integration

JOURNAL = "journal"  # REPROLAB_TRACKING: what the stages use
SYNC = [sys.executable, "-m", "lib.tracking.sync"]
PREPARE = [sys.executable, "-m", "lab.processes.prepare_data.main"]
CLASSIFIERS = [sys.executable, "-m", "lab.processes.train_standard_classifiers.main"]
# A training loop as the network stage runs it, on the same tracking calls, at a pace a test can steer: it
# trains until the file `outage` exists, then 20 epochs more, and prints how many it trained.
TRAINING = """
import pathlib, time
from lib.tracking import runs, store
store.preflight()
with runs.journal_run("train_dnn_pytorch", "outage", {"epochs": "until stopped"}, device="cpu") as run:
    log_epoch, epoch, left = runs.epoch_logger(run, []), 0, 20
    while left:
        time.sleep(0.25)
        epoch += 1
        log_epoch(epoch, {"train/loss": 1.0 / epoch, "val/loss": 2.0 / epoch})
        left -= pathlib.Path("outage").exists()
    run.log_metrics({"test/accuracy": 0.9})
print(epoch)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project_copy(tmp_path / "project", shrunk_params())


def _client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(uri)


def _runs(uri: str, experiment: str) -> list[Any]:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id]))


def _wait_for(what: str, condition: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = condition()
        except Exception:  # the server restarting, a run not there yet
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _steps(uri: str, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in _client(uri).get_metric_history(run_id, key))


def test_a_server_stopped_mid_training_loses_nothing_and_the_run_ends_finished(project: Path, tmp_path: Path) -> None:
    port = free_port()
    (project / "training.py").write_text(TRAINING)
    with running_mlflow_server(tmp_path / "server", port=port) as uri:
        stage = subprocess.Popen(
            [sys.executable, "training.py"],
            cwd=project,
            env=clean_env(MLFLOW_TRACKING_URI=uri, REPROLAB_TRACKING=JOURNAL, REPROLAB_STAGE_SYNC_WAIT="10"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Followed live: epochs show in MLflow while the stage trains.
        (live,) = _wait_for("the run in MLflow while training", lambda: _runs(uri, "outage"), 240)
        _wait_for("5 epochs", lambda: len(_steps(uri, live.info.run_id, "train/loss")) >= 5, 60)
    (project / "outage").touch()  # the server is down: the stage trains on
    out, err = stage.communicate(timeout=300)
    assert stage.returncode == 0, err
    epochs = int(out)
    assert len(err.splitlines()) <= 1, err  # at most one line: tracking is behind, and why
    assert all(line.startswith("warning: tracking is behind") for line in err.splitlines()), err

    with running_mlflow_server(tmp_path / "server", port=port) as uri:
        finished = _wait_for(
            "the run to end in MLflow", lambda: _client(uri).get_run(live.info.run_id).info.status == "FINISHED", 180
        )
        assert finished
        for key in ("train/loss", "val/loss"):
            assert _steps(uri, live.info.run_id, key) == list(range(1, epochs + 1))  # each epoch exactly once
        assert len(_runs(uri, "outage")) == 1
        assert _client(uri).get_run(live.info.run_id).data.metrics["test/accuracy"] == 0.9


def test_a_sync_killed_mid_replay_then_replayed_lands_each_record_once(project: Path, tmp_path: Path) -> None:
    from lib.tracking import journal

    epochs = 300
    book = journal.Journal(journal.new_journal_path(project, "train_dnn_pytorch"))
    recorded = journal.start_run(book, "killed", "train_dnn_pytorch", {"dvc.stage": "train_dnn_pytorch"}, None)
    for epoch in range(1, epochs + 1):
        recorded.log_metrics({"train/loss": 1.0 / epoch}, step=epoch)
    recorded.end()
    book.close()

    with running_mlflow_server(tmp_path / "server") as uri:
        sync = subprocess.Popen(SYNC, cwd=project, env=clean_env(MLFLOW_TRACKING_URI=uri), stderr=subprocess.PIPE)
        state = journal.sync_file(book.path, uri, ".state.json")

        def applied() -> int:
            return json.loads(state.read_text())["applied"] if state.exists() else -1

        _wait_for("the sync to be part way", lambda: applied() > 30 or sync.poll() is not None, 120)
        os.kill(sync.pid, signal.SIGKILL)
        sync.wait()
        assert 0 < applied() < epochs, "the sync was not killed mid-replay"

        done = run(SYNC, project, MLFLOW_TRACKING_URI=uri)
        assert done.returncode == 0, done.stderr
        (found,) = _runs(uri, "killed")
        assert _steps(uri, found.info.run_id, "train/loss") == list(range(1, epochs + 1))
        assert found.info.status == "FINISHED"


def _signature(uri: str, model_id: str) -> dict[str, Any]:
    """The signature of logged model `model_id` in the store at `uri`."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    saved = utils._tracking_uri  # models:/ URIs resolve against the process-wide store
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.models.get_model_info(f"models:/{model_id}").signature.to_dict()
    finally:
        utils._tracking_uri = saved


def _comparable(uri: str, experiment: str) -> dict[str, Any]:
    """The runs of `experiment` by name, every field that does not name a time, an id or a store."""
    client = _client(uri)
    runs = _runs(uri, experiment)
    names = {r.info.run_id: r.info.run_name for r in runs}

    def artifacts(run_id: str, path: str | None = None) -> list[str]:
        found = []
        for item in client.list_artifacts(run_id, path):
            found += artifacts(run_id, item.path) if item.is_dir else [item.path]
        return sorted(found)

    compared = {}
    for r in runs:
        tags = {k: v for k, v in r.data.tags.items() if k != "reprolab.journal_key"}
        if "mlflow.parentRunId" in tags:
            tags["mlflow.parentRunId"] = names[tags["mlflow.parentRunId"]]
        histories = {key: [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, key)]
                     for key in r.data.metrics}  # fmt: skip
        models = [_signature(uri, output.model_id) for output in r.outputs.model_outputs]
        compared[r.info.run_name] = {
            "status": r.info.status,
            "params": r.data.params,
            "tags": tags,
            "metrics": histories,
            "artifacts": artifacts(r.info.run_id),
            "models": models,
        }
    return compared


def test_a_fully_offline_run_synced_later_equals_direct_logging_field_by_field(project: Path, tmp_path: Path) -> None:
    same = {"REPROLAB_PIPELINE_RUN_ID": "pipe-1", "REPROLAB_SYNC_PATIENCE": "1"}
    with running_mlflow_server(tmp_path / "direct") as direct_uri:
        for stage in (PREPARE, CLASSIFIERS):
            done = run(stage, project, MLFLOW_TRACKING_URI=direct_uri, REPROLAB_TRACKING="direct", **same)
            assert done.returncode == 0, done.stderr
        direct = _comparable(direct_uri, "reprolab-example")
    (project / ".reprolab").rename(tmp_path / "direct-journals")  # what direct logging recorded is in its store

    offline = f"http://127.0.0.1:{free_port()}"  # no server: no route to it
    for stage in (PREPARE, CLASSIFIERS):
        done = run(stage, project, MLFLOW_TRACKING_URI=offline, REPROLAB_TRACKING=JOURNAL, **same)
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith(f"warning: MLflow tracking server {offline} does not answer"), done.stderr
    with running_mlflow_server(tmp_path / "fresh") as fresh_uri:
        synced = run([*SYNC, "--wait", "60"], project, MLFLOW_TRACKING_URI=fresh_uri)
        assert synced.returncode == 0, synced.stderr
        replayed = _comparable(fresh_uri, "reprolab-example")

    assert (
        sorted(replayed)
        == sorted(direct)
        == sorted(["prepare_data", "train_standard_classifiers", "logistic_regression", "naive_bayes", "random_forest"])
    )
    for name, fields in direct.items():
        assert replayed[name] == fields, name
    parent = replayed["train_standard_classifiers"]
    assert "plots/roc.png" in parent["artifacts"] and parent["models"]  # MLflow 3: a model is not a run artifact
    assert {"git.commit", "git.branch", "dvc.stage", "pipeline_run_id", "mlflow.user"} <= set(parent["tags"])


def test_stages_tracking_at_once_lose_and_duplicate_nothing(project: Path, tmp_path: Path) -> None:
    seeds = (1, 2, 3)
    with running_mlflow_server(tmp_path / "server") as uri:
        stages = []
        for seed in seeds:
            (project / f"seed{seed}.yaml").write_text(json.dumps({**shrunk_params(), "seed": seed}))
            args = [*PREPARE, "--params", f"seed{seed}.yaml", "--out-dir", f"out{seed}", "--preprocessing",
                    f"out{seed}/pre.json", "--metrics", f"out{seed}/data.json"]  # fmt: skip
            env = clean_env(MLFLOW_TRACKING_URI=uri, DVC_EXP_NAME=f"seed-{seed}", REPROLAB_TRACKING=JOURNAL)
            stages.append(subprocess.Popen(args, cwd=project, env=env, stderr=subprocess.PIPE, text=True))
        for stage in stages:
            assert stage.wait(timeout=300) == 0, stage.stderr.read() if stage.stderr else ""
        done = run([*SYNC, "--wait", "120"], project, MLFLOW_TRACKING_URI=uri)
        assert done.returncode == 0, done.stderr

        found = _runs(uri, "reprolab-example")
        assert sorted(r.data.params["seed"] for r in found) == [str(seed) for seed in seeds]
        assert sorted(r.data.tags["dvc.experiment"] for r in found) == [f"seed-{seed}" for seed in seeds]
        for r in found:
            assert _steps(uri, r.info.run_id, "train/rows") == [0]
            assert r.info.status == "FINISHED"
