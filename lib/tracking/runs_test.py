"""runs.py: param flattening, and journaled stage runs in a real local store (nested, resumed, per-epoch)."""

from pathlib import Path

import pytest

from lib.tracking import journal, runs, sync
from lib.tracking.journal import Run
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


def _run(uri: str) -> Run:
    return Run(None, "k1", {"tracking_uri": uri, "run_name": "stage", "experiment": "exp"})  # type: ignore[arg-type]


@pytest.mark.unittest
def test_the_results_line_names_the_outputs_and_the_run_on_the_server() -> None:
    line = runs.results_line("stage", [Path("metrics/a.json"), "plots/a"], _run("http://mlflow:5000/"))

    assert line == (
        "stage: results in metrics/a.json, plots/a; "
        "MLflow run 'stage' of experiment 'exp' (tag reprolab.journal_key=k1): http://mlflow:5000/#/experiments"
    )


@pytest.mark.unittest
def test_the_results_line_of_a_local_store_points_at_mlflow_ui() -> None:
    line = runs.results_line("stage", ["models/m.pt"], _run("sqlite:///tmp/mlflow.db"))

    assert line.endswith(
        "(tag reprolab.journal_key=k1): http://127.0.0.1:5000 (mlflow ui, store sqlite:///tmp/mlflow.db)"
    )


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("uri", "page"),
    [("http://mlflow:5000/", "http://mlflow:5000/#/experiments/3/runs/abc"),
     (None, "http://127.0.0.1:5000/#/experiments/3/runs/abc")],
)  # fmt: skip
def test_run_url_is_the_runs_page_on_the_server_or_under_mlflow_ui(uri: str | None, page: str) -> None:
    assert runs.run_url(uri, "3", "abc") == page


# ---- a real local MLflow store ----------------------------------------------------------------------


@pytest.mark.integration
def test_journal_run_records_a_run_that_the_sync_puts_into_the_store(local_store: str, tmp_path: Path) -> None:
    import mlflow

    png = tmp_path / "curves.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    with runs.journal_run("stage_x", "exp", {"a": {"b": 1}, "seed": 7}, device="cpu") as run:
        runs.log_pngs(run, [png])
        run.log_metrics({"test/accuracy": 0.9})
        with runs.nested_run(run, "fold_0", {"fold": 0}) as child:
            child.log_metrics({"val/loss": 0.5}, step=3)
    assert sync.sync_all(tmp_path, wait=60) == []

    client = mlflow.MlflowClient(local_store)
    experiment = client.get_experiment_by_name("exp")
    parent, child_run = (
        client.search_runs([experiment.experiment_id], f"tags.`{journal.KEY_TAG}` = '{key}'")[0]
        for key in (run.key, child.key)
    )
    assert (parent.info.run_name, parent.info.status) == ("stage_x", "FINISHED")
    assert parent.data.params == {"a.b": "1", "seed": "7"}
    assert parent.data.tags["dvc.stage"] == "stage_x" and parent.data.tags["pipeline_run_id"] == "pipe-42"
    assert parent.data.tags["device"] == "cpu"
    assert parent.data.metrics == {"test/accuracy": 0.9}
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "plots")] == ["plots/curves.png"]
    assert (child_run.info.run_name, child_run.info.status) == ("fold_0", "FINISHED")
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_run.data.tags["dvc.stage"] == "stage_x"
    assert child_run.data.params == {"fold": "0"}
    assert [(m.step, m.value) for m in client.get_metric_history(child_run.info.run_id, "val/loss")] == [(3, 0.5)]


@pytest.mark.integration
def test_epoch_logger_records_the_epochs_a_kill_cut_off_and_skips_those_already_recorded(
    local_store: str, tmp_path: Path
) -> None:
    import mlflow

    with runs.journal_run("stage_x", "exp", {"lr": 0.1}) as run:
        run.log_metrics({"train/loss": 0.5, "val/loss": 0.6}, step=1)
    history = [{"epoch": 1, "train/loss": 0.5, "val/loss": 0.6}, {"epoch": 2, "train/loss": 0.4, "val/loss": 0.5}]
    with runs.journal_run("stage_x", "exp", {"lr": 0.1}, resume_key=run.key) as resumed:
        log_epoch = runs.epoch_logger(resumed, history)
        log_epoch(2, {"train/loss": 0.4, "val/loss": 0.5})  # already recorded from the history
        log_epoch(3, {"train/loss": 0.3, "val/loss": 0.45})
    with runs.journal_run("stage_x", "exp", {"lr": 0.1}, resume_key="0" * 32) as new:
        pass
    assert sync.sync_all(tmp_path, wait=60) == []

    assert resumed.key == run.key and new.key != run.key
    client = mlflow.MlflowClient(local_store)
    experiment_ids = [client.get_experiment_by_name("exp").experiment_id]
    (found,) = client.search_runs(experiment_ids, f"tags.`{journal.KEY_TAG}` = '{run.key}'")
    train_loss = client.get_metric_history(found.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in train_loss] == [(1, 0.5), (2, 0.4), (3, 0.3)]
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val/loss")] == [1, 2, 3]
    assert (found.data.params, found.info.status) == ({"lr": "0.1"}, "FINISHED")
    assert len(client.search_runs(experiment_ids)) == 2
    (started,) = client.search_runs(experiment_ids, f"tags.`{journal.KEY_TAG}` = '{new.key}'")  # no journal to resume
    assert started.data.params == {"lr": "0.1"} and started.data.metrics == {}
