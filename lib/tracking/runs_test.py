"""runs.py: param flattening, and stage runs in a real local store (nested, resumed, per-epoch)."""

from pathlib import Path

import pytest

from lib.tracking import runs, store
from lib.tracking.runs import flatten

# Each test carries its own marker (no module-wide `pytestmark`): markers add up, and a test that
# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.

# ---- flatten and pip_requirements -------------------------------------------------------------------


@pytest.mark.unittest
def test_flatten_joins_nested_keys_with_dots_and_stringifies_values() -> None:
    params = {"a": {"b": 1, "c": {"d": 0.5}}, "e": [1, 2], "f": None, "g": True}

    assert flatten(params) == {"a.b": "1", "a.c.d": "0.5", "e": "[1, 2]", "f": "None", "g": "True"}


@pytest.mark.unittest
def test_flatten_of_an_empty_mapping_and_with_a_prefix() -> None:
    assert flatten({}) == {}
    assert flatten({"x": {"y": 2}}, prefix="train.") == {"train.x.y": "2"}


# ---- the results line ----------------------------------------------------------------------------


@pytest.mark.unittest
def test_the_results_line_names_the_outputs_and_the_runs_page_on_the_server() -> None:
    line = runs.results_line("stage", [Path("metrics/a.json"), "plots/a"], "http://mlflow:5000/", "3", "abc")

    assert (
        line == "stage: results in metrics/a.json, plots/a; MLflow run abc: http://mlflow:5000/#/experiments/3/runs/abc"
    )


@pytest.mark.unittest
@pytest.mark.parametrize("uri", [None, "sqlite:///tmp/mlflow.db"])
def test_the_results_line_of_a_local_store_points_at_mlflow_ui(uri: str | None) -> None:
    line = runs.results_line("stage", ["models/m.pt"], uri, "0", "abc")

    assert (
        line
        == "stage: results in models/m.pt; MLflow run abc: http://127.0.0.1:5000/#/experiments/0/runs/abc (mlflow ui)"
    )


# ---- a real local MLflow store ----------------------------------------------------------------------


@pytest.mark.integration
def test_stage_run_logs_params_tags_nested_runs_and_plots(local_store: str, tmp_path: Path) -> None:
    import mlflow

    png = tmp_path / "curves.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")  # log_pngs logs the file as it is; its content is not read

    store.prepare("exp")
    with runs.stage_run("stage_x", {"a": {"b": 1}, "seed": 7}, device="cpu") as parent_id:
        runs.log_pngs([png])
        with runs.stage_run("stage_x", {"fold": 0}, nested_name="fold_0") as child_id:
            pass
    assert mlflow.active_run() is None

    client = mlflow.MlflowClient(local_store)
    parent, child = client.get_run(parent_id), client.get_run(child_id)
    experiment = client.get_experiment_by_name("exp")
    assert experiment is not None
    assert parent.info.experiment_id == experiment.experiment_id
    assert parent.info.run_name == "stage_x"
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"a.b": "1", "seed": "7"}
    assert parent.data.tags["dvc.stage"] == "stage_x"
    assert parent.data.tags["pipeline_run_id"] == "pipe-42"
    assert parent.data.tags["device"] == "cpu"
    assert [a.path for a in client.list_artifacts(parent_id, "plots")] == ["plots/curves.png"]
    assert child.info.run_name == "fold_0"
    assert child.data.params == {"fold": "0"}
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert child.data.tags["dvc.stage"] == "stage_x"

    found = mlflow.search_runs(experiment_ids=[experiment.experiment_id], filter_string="tags.dvc.stage = 'stage_x'")
    assert sorted(found["run_id"]) == sorted([parent_id, child_id])


@pytest.mark.integration
def test_stage_run_resumes_a_run_that_exists_and_starts_a_new_one_otherwise(local_store: str) -> None:
    import mlflow

    store.prepare("exp")
    with runs.stage_run("stage_x", {"lr": 0.1}) as first_id:
        mlflow.log_metrics({"train/loss": 0.5}, step=1)
    with runs.stage_run("stage_x", {"lr": 0.1}, resume_run_id=first_id) as resumed_id:
        assert runs.logged_steps(resumed_id, "train/loss") == {1}
        mlflow.log_metrics({"train/loss": 0.4}, step=2)
    with runs.stage_run("stage_x", {"lr": 0.1}, resume_run_id="0" * 32) as new_id:
        pass

    client = mlflow.MlflowClient(local_store)
    assert resumed_id == first_id and new_id != first_id
    assert [m.step for m in client.get_metric_history(first_id, "train/loss")] == [1, 2]
    assert client.get_run(first_id).data.params == {"lr": "0.1"}
    assert client.get_run(new_id).data.params == {"lr": "0.1"}
    assert runs.logged_steps(new_id, "train/loss") == set()
    assert not runs.resumable_run("0" * 32)


@pytest.mark.integration
def test_epoch_logger_logs_the_epochs_a_kill_cut_off_and_skips_those_already_logged(local_store: str) -> None:
    import mlflow

    store.prepare("exp")
    with runs.stage_run("stage_x", {"lr": 0.1}) as run_id:
        mlflow.log_metrics({"train/loss": 0.5, "val/loss": 0.6}, step=1)
    history = [{"epoch": 1, "train/loss": 0.5, "val/loss": 0.6}, {"epoch": 2, "train/loss": 0.4, "val/loss": 0.5}]
    with runs.stage_run("stage_x", {"lr": 0.1}, resume_run_id=run_id):
        log_epoch = runs.epoch_logger(run_id, history, resumed=True)
        log_epoch(2, {"train/loss": 0.4, "val/loss": 0.5})  # already replayed from the history
        log_epoch(3, {"train/loss": 0.3, "val/loss": 0.45})

    client = mlflow.MlflowClient(local_store)
    train_loss = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in train_loss] == [(1, 0.5), (2, 0.4), (3, 0.3)]
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [1, 2, 3]
