"""The example pipeline end to end: `dvc repro` in a project copy, its outputs, and its MLflow runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.support import make_project_copy, run, shrunk_params

pytestmark = pytest.mark.integration

STAGES = ("prepare_data", "train_standard_classifiers", "train_dnn_pytorch")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A project copy after one `dvc repro` on the shrunk params, with MLflow's default local store."""
    project = make_project_copy(tmp_path_factory.mktemp("repro") / "project", shrunk_params())
    done = run(["dvc", "repro"], project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project, done


@contextmanager
def _tracking_uri(project: Path) -> Iterator[None]:
    """Point MLflow's fluent API at the project copy's default local store for the block."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def _metrics(project: Path, name: str) -> dict:
    return json.loads((project / "metrics" / f"{name}.json").read_text())


def _runs(project: Path) -> tuple[list, mlflow.MlflowClient]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("reprolab-example")
    assert experiment is not None, "no experiment in the default local store"
    return client.search_runs([experiment.experiment_id], max_results=1000), client


def test_every_stage_writes_its_outputs(reproduced: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = reproduced
    for path in (
        "data/processed/train.parquet",
        "data/processed/val.parquet",
        "data/processed/test.parquet",
        "data/processed/schema.json",
        "models/preprocessing.pkl",
        "models/classifier.pkl",
        "models/dnn.pt",
        "plots/classifiers/confusion_matrix.png",
        "plots/classifiers/roc.csv",
        "plots/dnn/history.csv",
        "plots/dnn/training_curves.png",
    ):
        assert (project / path).stat().st_size > 0, path


def test_stages_write_nothing_but_their_declared_outputs(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    import yaml

    project, _ = reproduced
    declared = set()
    for stage in yaml.safe_load((project / "dvc.yaml").read_text())["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            declared |= {next(iter(item)) if isinstance(item, dict) else item for item in stage.get(kind, [])}
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # Everything new or changed since the commit, less the tools' own files: DVC's lock, cache and
    # .gitignore entries, MLflow's default store and artifacts, the run journal, Python's bytecode caches.
    produced = [
        path
        for path in (line[3:] for line in status)
        if not path.startswith((".dvc/", "mlruns/", ".reprolab/"))
        and "__pycache__" not in path
        and path not in ("mlflow.db", "dvc.lock")
        and not path.endswith(".gitignore")
    ]
    assert produced, "nothing was written"
    for path in produced:
        assert path in declared or any(path.startswith(f"{d}/") for d in declared), f"undeclared output: {path}"


def test_metrics_hold_the_expected_values(reproduced: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = reproduced
    data = _metrics(project, "data")
    assert (data["train/rows"], data["val/rows"], data["test/rows"], data["features"]) == (341, 114, 114, 30)
    classifiers = _metrics(project, "classifiers")
    assert classifiers["selected"] in SHRUNK_MODELS
    assert classifiers["test/accuracy"] > 0.9 and classifiers["test/roc_auc"] > 0.95
    dnn = _metrics(project, "dnn")
    assert 1 <= dnn["best_epoch"] <= 3
    assert 0.5 < dnn["test/accuracy"] <= 1.0
    history = (project / "plots/dnn/history.csv").read_text().splitlines()
    assert history[0] == "epoch,train/loss,train/accuracy,val/loss,val/accuracy,val/roc_auc"
    assert len(history) == 1 + 3


SHRUNK_MODELS = ("logistic_regression", "naive_bayes", "random_forest")


def test_every_stage_is_tracked_in_the_default_local_store(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = reproduced
    runs, client = _runs(project)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    by_stage = {r.data.tags["dvc.stage"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert set(by_stage) == set(STAGES)
    assert len({r.data.tags["pipeline_run_id"] for r in by_stage.values()}) == 1, "one id per dvc repro"
    for run_ in by_stage.values():
        assert run_.data.tags["git.commit"] == commit
        assert run_.data.tags["git.branch"] == "main"
        assert run_.data.params["seed"] == "42"

    children = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == by_stage["train_standard_classifiers"].info.run_id
    ]
    assert sorted(r.info.run_name for r in children) == sorted(SHRUNK_MODELS)
    assert all("cv/roc_auc_mean" in r.data.metrics and "val/accuracy" in r.data.metrics for r in children)

    dnn = by_stage["train_dnn_pytorch"]
    assert dnn.data.params["train_dnn_pytorch.epochs"] == "3"
    assert dnn.data.tags["device"] == "cpu"
    steps = [m.step for m in client.get_metric_history(dnn.info.run_id, "train/loss")]
    assert steps == [1, 2, 3]
    assert dnn.data.metrics["test/accuracy"] == _metrics(project, "dnn")["test/accuracy"]

    for stage in ("train_standard_classifiers", "train_dnn_pytorch"):
        artifacts = {a.path for a in client.list_artifacts(by_stage[stage].info.run_id, "plots")}
        assert "plots/confusion_matrix.png" in artifacts and "plots/roc.png" in artifacts
        models = client.search_logged_models(
            experiment_ids=[by_stage[stage].info.experiment_id],
            filter_string=f"source_run_id = '{by_stage[stage].info.run_id}'",
        )
        assert len(models) == 1, stage
        with _tracking_uri(project):
            info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
        assert info.signature is not None and len(info.signature.inputs.input_names()) == 30
        assert info.saved_input_example_info is not None


def test_each_stage_ends_with_where_its_results_are_and_the_network_reports_each_epoch(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, done = reproduced
    runs, _ = _runs(project)
    by_stage = {r.data.tags["dvc.stage"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    outputs = {
        "prepare_data": "data/processed, models/preprocessing.pkl, metrics/data.json",
        "train_standard_classifiers": "models/classifier.pkl, metrics/classifiers.json, plots/classifiers",
        "train_dnn_pytorch": "models/dnn.pt, metrics/dnn.json, plots/dnn",
    }
    # Each stage's own stdout, as dvc repro passes it on between its "Running stage" lines.
    printed = {}
    for part in done.stdout.split("Running stage '")[1:]:
        stage, _, rest = part.partition("'")
        printed[stage] = [line for line in rest.splitlines()[1:] if line.startswith(f"{stage}: ")]
    for stage, run_ in by_stage.items():
        key = run_.data.tags["reprolab.journal_key"]
        where = f"{stage}: results in {outputs[stage]}; MLflow run '{stage}' of experiment "
        assert printed[stage][-1].startswith(where), printed[stage]
        assert f"(tag reprolab.journal_key={key}): http://127.0.0.1:5000 (mlflow ui, store " in printed[stage][-1]
    # Without a terminal: a line per epoch of the network (3 in the shrunk params), a line per fold and model.
    lines = done.stderr.splitlines()
    epochs = [line.split(":")[1] for line in lines if line.startswith("train_dnn_pytorch: epoch ")]
    assert epochs == [" epoch 1/3", " epoch 2/3", " epoch 3/3"], done.stderr
    for model in SHRUNK_MODELS:
        assert [line for line in lines if line.startswith(f"train_standard_classifiers: {model}: fold ")] == [
            f"train_standard_classifiers: {model}: fold {fold}/3" for fold in (1, 2, 3)
        ]


def test_logged_models_predict_like_the_stage_outputs(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    import pickle

    import pandas as pd

    project, _ = reproduced
    runs, client = _runs(project)
    test = pd.read_parquet(project / "data/processed/test.parquet").drop(columns=["target"])
    parent = next(
        r
        for r in runs
        if r.data.tags["dvc.stage"] == "train_standard_classifiers" and "mlflow.parentRunId" not in r.data.tags
    )
    (model,) = client.search_logged_models(
        experiment_ids=[parent.info.experiment_id], filter_string=f"source_run_id = '{parent.info.run_id}'"
    )
    with _tracking_uri(project):
        served = mlflow.pyfunc.load_model(model.model_uri).predict(test)
    with (project / "models/classifier.pkl").open("rb") as file:
        offline = pickle.load(file).predict(test)
    assert (served == offline).all()


def test_dvc_plots_show_renders_every_plot(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    project, _ = reproduced
    done = run(["dvc", "plots", "show", "--out", str(tmp_path / "html")], project)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    for image in ("classifiers_confusion_matrix.png", "classifiers_roc.png", "dnn_training_curves.png"):
        assert image in html
    for title in ("ROC on test", "Confusion on test", "Dense network loss", "Classifiers on val"):
        assert title in html


def test_a_second_repro_does_no_stage_work(reproduced: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = reproduced
    runs_before = len(_runs(project)[0])
    done = run(["dvc", "repro"], project)
    assert done.returncode == 0, done.stderr
    assert "Running stage" not in done.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in done.stdout
    assert len(_runs(project)[0]) == runs_before


def test_changing_one_params_section_reruns_only_its_stage(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(reproduced[0], project, symlinks=True)  # its pipeline has run: every stage is up to date
    params = shrunk_params({"train_dnn_pytorch": {"epochs": 2}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = run(["dvc", "repro"], project)
    assert done.returncode == 0, done.stderr
    assert "Running stage 'train_dnn_pytorch'" in done.stdout
    assert "Running stage 'prepare_data'" not in done.stdout
    assert "Running stage 'train_standard_classifiers'" not in done.stdout
    assert _metrics(project, "dnn")["best_epoch"] <= 2


def test_forced_repro_twice_gives_a_byte_identical_lock(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = reproduced
    first = (project / "dvc.lock").read_bytes()
    done = run(["dvc", "repro", "-f"], project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Running stage") == 3
    assert (project / "dvc.lock").read_bytes() == first
    lock = (project / "dvc.lock").read_text()
    for out in ("models/dnn.pt", "models/classifier.pkl", "data/processed", "plots/dnn/training_curves.png"):
        assert f"path: {out}" in lock


def _commit_all(project: Path, message: str) -> None:
    for command in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message],
    ):
        subprocess.run(command, cwd=project, check=True, capture_output=True)


def test_make_verify_reproduces_committed_results_and_names_a_metric_that_differs(
    reproduced: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(reproduced[0], project, symlinks=True)
    _commit_all(project, "results")

    same = run(["python", "-m", "lib.reproduction"], project)

    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[-1] == "verify: identical: every output has the committed bytes"

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train_dnn_pytorch"]["lr"] = 0.05  # committed without re-running: the results no longer match the code
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _commit_all(project, "params changed, results not re-run")

    different = run(["python", "-m", "lib.reproduction"], project)

    assert different.returncode == 1, different.stdout + different.stderr
    verdict = different.stdout.splitlines()[-1]
    assert verdict.startswith("verify: not reproduced: metrics/dnn.json ")
    committed = json.loads((project / "metrics/dnn.json").read_text())["test/log_loss"]
    assert f"metrics/dnn.json test/log_loss: committed {committed!r}, now " in verdict
    assert "metrics/classifiers.json" not in verdict and "metrics/data.json" not in verdict
