"""tune.py: the search space, seeded trials, the study's storage, MLflow runs, the ranking; adopt end to end."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml

from lib.datasets import Split
from lib.params import ParamsError, ParamsFile
from sweeps import tune
from sweeps.search import ranked_table
from sweeps.tune import Choice, FloatRange, IntRange, TuneError, TuneParams

Splits = dict[str, Split]

BASE = {"hidden_layers": [8], "dropout": 0.1, "lr": 0.01, "batch_size": 32, "epochs": 3, "device": "cpu"}
SPACE = {
    "lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "epochs": {"low": 2, "high": 4},
    "hidden_layers": {"choices": [[8], [16, 8]]},
    "batch_size": {"choices": [16, 64]},
}


def _config(**overrides: Any) -> TuneParams:
    return TuneParams.model_validate({"search_space": SPACE, **overrides})


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- params and the search space ----------------------------------------------------------------


@pytest.mark.unittest
def test_each_dimension_is_read_by_its_shape() -> None:
    space = _config().search_space

    assert isinstance(space["lr"], FloatRange) and space["lr"].log
    assert isinstance(space["dropout"], FloatRange)
    assert isinstance(space["epochs"], IntRange) and space["epochs"].step == 1
    assert isinstance(space["hidden_layers"], Choice) and space["hidden_layers"].choices == [[8], [16, 8]]


@pytest.mark.unittest
def test_params_defaults_and_directions() -> None:
    config = _config()

    assert (config.n_trials, config.metric, config.study) == (20, "val/log_loss", "train_dnn_pytorch")
    assert config.pruning is not None and config.pruning.startup_trials == 5
    assert tune.direction("val/log_loss") == "minimize"
    assert tune.direction("val/roc_auc") == tune.direction("val/accuracy") == "maximize"


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metric": "val/f2"}, "tune_dnn_pytorch.metric: input should be"),
        ({"search_space": {}}, "tune_dnn_pytorch.search_space: dictionary should have at least 1 item"),
        ({"search_space": {"lr": {"low": 0.1}}}, "tune_dnn_pytorch.search_space.lr.float.high: required key"),
        ({"search_space": {"lr": {"choices": []}}}, "tune_dnn_pytorch.search_space.lr.choices.choices: list"),
        ({"search_space": SPACE, "n_trials": 0}, "tune_dnn_pytorch.n_trials: input should be greater than"),
        ({"search_space": SPACE, "sampler": "tpe"}, "tune_dnn_pytorch.sampler: unknown key"),
    ],
)
def test_bad_params_name_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError) as caught:
        ParamsFile(Path("params.yaml"), {"tune_dnn_pytorch": values}).section("tune_dnn_pytorch", TuneParams)

    assert message in str(caught.value)


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"learning_rate": {"low": 0.1, "high": 0.2}}, "tune_dnn_pytorch.search_space.learning_rate: not a"),
        ({"lr": {"low": 0.2, "high": 0.1}}, "tune_dnn_pytorch.search_space.lr: low 0.2 is above high 0.1"),
        ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, "search_space.lr: a log range needs low > 0, got 0.0"),
        ({"lr": {"low": 0.1, "high": 2.0}}, "tune_dnn_pytorch.search_space.lr: 2.0 is not a valid train_dnn"),
        ({"hidden_layers": {"choices": [[8], [0]]}}, "search_space.hidden_layers: [0] is not a valid"),
        ({"batch_size": {"choices": [32, "64"]}}, "search_space.batch_size: '64' is not a valid"),
    ],
)
def test_check_space_names_a_bad_key_or_value(space: dict[str, Any], message: str) -> None:
    config = _config(search_space=space)

    with pytest.raises(TuneError) as caught:
        tune.check_space(config.search_space, BASE)

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.unittest
def test_check_space_accepts_the_committed_params() -> None:
    from lib.paths import PARAMS_FILE

    params = ParamsFile.read(PARAMS_FILE)
    config = params.section("tune_dnn_pytorch", TuneParams)

    tune.check_space(config.search_space, params.data["train_dnn_pytorch"])


@pytest.mark.unittest
def test_trial_params_update_the_section_as_written_and_keep_the_rest() -> None:
    params = tune.trial_params(BASE, {"lr": 0.05, "hidden_layers": [16, 8]})

    assert (params.lr, params.hidden_layers, params.dropout, params.epochs) == (0.05, [16, 8], 0.1, 3)


@pytest.mark.unittest
def test_suggest_draws_within_the_space_and_decodes_list_choices() -> None:
    config = _config()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(20):
        trial = study.ask()
        drawn.append(tune.suggest(trial, config.search_space))
        assert tune.decode_params(config.search_space, trial.params) == drawn[-1]
        study.tell(trial, 0.0)

    for values in drawn:
        assert 1e-3 <= values["lr"] <= 1e-1 and 0 <= values["dropout"] <= 0.5
        assert values["epochs"] in (2, 3, 4) and isinstance(values["epochs"], int)
        assert values["hidden_layers"] in ([8], [16, 8]) and values["batch_size"] in (16, 64)
    assert {tuple(v["hidden_layers"]) for v in drawn} == {(8,), (16, 8)}


@pytest.mark.unittest
def test_settings_digest_changes_with_what_a_result_depends_on_only() -> None:
    digest = tune.settings_digest(_config(), BASE, 1, "data")

    assert tune.settings_digest(_config(n_trials=50), BASE, 1, "data") == digest
    assert tune.settings_digest(_config(metric="val/roc_auc"), BASE, 1, "data") != digest
    assert tune.settings_digest(_config(), {**BASE, "lr": 0.1}, 1, "data") != digest
    assert tune.settings_digest(_config(), BASE, 2, "data") != digest
    assert tune.settings_digest(_config(), BASE, 1, "other data") != digest


# --- the study: seeded trials, pruning, resuming ------------------------------------------------


def _toy_objective(config: TuneParams, log: list[int]) -> tune.Objective:
    """A cheap stand-in for training: reports a falling curve, pruned like the real objective."""

    def objective(trial: optuna.Trial) -> float:
        values = tune.suggest(trial, config.search_space)
        log.append(trial.number)
        for epoch in range(1, values["epochs"] + 1):
            trial.report(values["lr"] / epoch, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return values["lr"] + values["dropout"]

    return objective


@pytest.mark.unittest
def test_a_study_is_reproducible_and_resumes_to_the_same_trials(tmp_path: Path) -> None:
    config = _config(pruning=None, random_trials=2)
    params_of = {}
    for name, stops in (("straight", [6]), ("resumed", [2, 4, 6])):
        storage = f"sqlite:///{tmp_path / name}.db"
        for n_trials in stops:
            study = tune.open_study(storage, config, "digest", fresh=False)
            tune.run_trials(study, _toy_objective(config, []), n_trials, seed=3, random_trials=2)
        params_of[name] = [trial.params for trial in study.trials]

    assert len(params_of["straight"]) == 6
    assert params_of["resumed"] == params_of["straight"]


@pytest.mark.unittest
def test_a_finished_study_runs_no_more_trials_and_fresh_starts_over(tmp_path: Path) -> None:
    config = _config(pruning=None)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = tune.open_study(storage, config, "digest", fresh=False)
    assert tune.run_trials(study, _toy_objective(config, []), 3, seed=0, random_trials=2) == 3

    again = tune.open_study(storage, config, "digest", fresh=False)
    assert tune.run_trials(again, _toy_objective(config, []), 3, seed=0, random_trials=2) == 0

    fresh = tune.open_study(storage, config, "digest", fresh=True)
    assert len(fresh.trials) == 0


@pytest.mark.unittest
def test_a_stored_study_with_other_settings_is_an_error(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tune.open_study(storage, _config(), "one", fresh=False)

    with pytest.raises(TuneError) as caught:
        tune.open_study(storage, _config(), "two", fresh=False)

    assert str(caught.value) == (
        f"tune_dnn_pytorch.study: study 'train_dnn_pytorch' in {storage} was run with other params or data; "
        "run again with --fresh to start it over, or set another study name"
    )


@pytest.mark.unittest
def test_a_trial_left_running_is_failed_and_not_counted(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config = _config(pruning=None)
    tune.open_study(storage, config, "digest", fresh=False).ask()  # a search killed mid-trial

    study = tune.open_study(storage, config, "digest", fresh=False)

    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert tune.run_trials(study, _toy_objective(config, []), 1, seed=0, random_trials=2) == 1  # not counted


@pytest.mark.unittest
def test_pruning_stops_a_worse_trial_and_best_trial_counts_both(tmp_path: Path) -> None:
    config = _config(pruning={"startup_trials": 1, "warmup_epochs": 0}, random_trials=1)
    study = tune.open_study(f"sqlite:///{tmp_path / 'study.db'}", config, "digest", fresh=False)

    tune.run_trials(study, _toy_objective(config, []), 8, seed=0, random_trials=1)
    study.set_user_attr(tune.USER_ATTR_RUN_KEY, "search-key")
    best = tune.best_file(study, config, {"search-key": "parent"})

    states = [trial.state for trial in study.trials]
    assert optuna.trial.TrialState.PRUNED in states
    assert best["trials"]["completed"] + best["trials"]["pruned"] == best["trials"]["total"] == 8
    assert best["best_value"] == min(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert best["params"] == tune.decode_params(config.search_space, study.best_trial.params)
    assert (best["section"], best["direction"], best["mlflow_run_id"]) == ("train_dnn_pytorch", "minimize", "parent")


@pytest.mark.unittest
def test_every_trial_pruned_is_an_error() -> None:
    study = optuna.create_study()
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)

    with pytest.raises(TuneError, match="every trial was pruned"):
        tune.best_file(study, _config(), {})


@pytest.mark.unittest
def test_the_trials_rank_like_a_sweeps_points(tmp_path: Path) -> None:
    config = _config(pruning={"startup_trials": 1, "warmup_epochs": 0}, random_trials=1)
    study = tune.open_study(f"sqlite:///{tmp_path / 'study.db'}", config, "digest", fresh=False)
    tune.run_trials(study, _toy_objective(config, []), 6, seed=0, random_trials=1)

    results = tune.trial_results(study, config.search_space, {"0": "run-of-0"})
    table = ranked_table(results, "val/log_loss", maximize=False).splitlines()

    completed = sorted((t.value, t.number) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    ranked = [line.split("|")[2].strip() for line in table[2:] if line.split("|")[1].strip() != "-"]
    assert ranked == [f"trial-{number}" for _, number in completed]
    header = [cell.strip() for cell in table[0].split("|")[1:-1]]
    assert header == [
        "rank",
        "point",
        "lr",
        "dropout",
        "epochs",
        "hidden_layers",
        "batch_size",
        "val/log_loss",
        "state",
        "MLflow",
    ]
    assert results[0].params["train_dnn_pytorch.hidden_layers"] in ([8], [16, 8]) and results[0].runs == "run-of-0"
    assert {result.state for result in results} <= {"done", "pruned"}


@pytest.mark.unittest
def test_the_search_uses_no_private_optuna_api() -> None:
    for path in (path for path in Path(tune.__file__).parent.glob("*.py") if not path.name.endswith("_test.py")):
        text = path.read_text(encoding="utf-8")
        assert "optuna._" not in text and "._storage" not in text and "._trial_id" not in text, path


def _splits() -> Splits:
    """A small learnable binary problem split into train and val."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=200, n_features=6, n_informative=4, random_state=0)
    features, labels = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]), y.astype(np.int64)
    return {
        "train": Split(features[:150], labels[:150]),
        "val": Split(features[150:].reset_index(drop=True), labels[150:]),
    }


@pytest.mark.integration  # a real MLflow store, through the run journal and its sync
def test_the_objective_trains_the_network_with_the_trial_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lib.datasets import BINARY
    from lib.tracking import runs
    from lib.tracking.journal import State
    from lib.tracking.sync import sync_all

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("REPROLAB_TRACKING", "journal")
    splits = _splits()
    config = _config(pruning=None, search_space={"lr": {"choices": [0.01]}, "epochs": {"choices": [2]}})
    study = optuna.create_study(direction="minimize")
    with runs.journal_run("tune_dnn_pytorch", "tune-test", {}, device="cpu") as parent:
        study.optimize(tune.make_objective(parent, config, BASE, splits, torch.device("cpu"), 0, BINARY), n_trials=1)
    assert sync_all(tmp_path, wait=60) == []
    train = tune.network()[1]
    expected = train(tune.trial_params(BASE, {"lr": 0.01, "epochs": 2}), splits, torch.device("cpu"), 0)
    synced = State(parent.journal.path, parent.created["tracking_uri"]).runs
    run_id = synced[study.best_trial.user_attrs[tune.USER_ATTR_RUN_KEY]]
    run = mlflow.MlflowClient(uri).get_run(run_id)

    assert study.best_value == expected.val_metrics["val/log_loss"]
    assert run.info.run_name == "trial-0" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == synced[parent.key]
    assert run.data.tags["optuna.state"] == "completed" and run.data.tags[tune.TRIAL_TAG] == "0"
    assert run.data.tags["device.torch"] == torch.__version__
    assert run.data.params["lr"] == "0.01" and run.data.params["epochs"] == "2"
    assert run.data.metrics["val/log_loss"] == study.best_value
    assert len(mlflow.MlflowClient(uri).get_metric_history(run_id, "val/loss")) == 2


# --- the search and adopt end to end --------------------------------------------------------------

SHRUNK_SEARCH = {
    "n_trials": 3,
    "metric": "val/roc_auc",
    "random_trials": 2,
    "pruning": {"startup_trials": 1, "warmup_epochs": 0},
    "search_space": {
        "lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True},
        "hidden_layers": {"choices": [[8], [16, 8]]},
        "dropout": {"low": 0.0, "high": 0.3},
    },
}


def with_sweeps(project: Path) -> Path:
    """The project copy with this package, which the copy leaves out (it is no pipeline code)."""
    source = Path(tune.__file__).parent
    shutil.copytree(source, project / source.name, ignore=shutil.ignore_patterns("__pycache__", "*_test.py"))
    return project


@pytest.mark.integration
def test_tune_logs_nested_trials_writes_the_best_and_adopt_puts_it_in_params(tmp_path: Path) -> None:
    from tests.support import make_project_copy, run, shrunk_params

    params = shrunk_params({"train_dnn_pytorch": {"epochs": 2, "device": "cpu"}, "tune_dnn_pytorch": SHRUNK_SEARCH})
    project = with_sweeps(make_project_copy(tmp_path / "project", params))
    uri = f"sqlite:///{project}/mlflow.db"
    done = run([sys.executable, "-m", "lab.processes.prepare_data.main"], project, MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 0, done.stderr
    search = [sys.executable, "-m", "sweeps.tune", "--trials"]

    first = run([*search, "2"], project, MLFLOW_TRACKING_URI=uri)  # then resumed to 3
    second = run([*search, "3"], project, MLFLOW_TRACKING_URI=uri)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "tune_dnn_pytorch: 1 trials run now" in second.stdout
    table = [line for line in second.stdout.splitlines() if line.startswith("| ") and "trial-" in line]
    assert sorted(line.split("|")[2].strip() for line in table) == ["trial-0", "trial-1", "trial-2"]
    best = yaml.safe_load((project / "tuning/train_dnn_pytorch.yaml").read_text())
    assert best["section"] == "train_dnn_pytorch" and best["metric"] == "val/roc_auc"
    assert best["trials"]["total"] == 3 and set(best["params"]) == {"lr", "hidden_layers", "dropout"}

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("reprolab-example")
    parents = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tune_dnn_pytorch'")
    assert [parent.info.run_id for parent in parents] == [best["mlflow_run_id"]]  # resumed, not a second one
    parent = parents[0]
    assert parent.data.tags["dvc.stage"] == "tune_dnn_pytorch" and "git.commit" in parent.data.tags
    assert parent.data.params["tune_dnn_pytorch.search_space.lr.high"] == "0.1"
    assert parent.data.metrics["best/val/roc_auc"] == best["best_value"]
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(child.info.run_name for child in children) == ["trial-0", "trial-1", "trial-2"]
    assert {child.data.tags["optuna.state"] for child in children} <= {"completed", "pruned"}
    for child in children:
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "val/loss")) >= 1
    best_child = next(child for child in children if child.info.run_id == best["best_mlflow_run_id"])
    assert best_child.info.run_name == f"trial-{best['best_trial']}"
    assert {key: best_child.data.params[key] for key in best["params"]} == {
        key: str(value) for key, value in best["params"].items()
    }
    completed = [c.data.metrics["val/roc_auc"] for c in children if c.data.tags["optuna.state"] == "completed"]
    assert best_child.data.metrics["val/roc_auc"] == best["best_value"] == max(completed)

    adopted = run([sys.executable, "-m", "sweeps.adopt", "tuning/train_dnn_pytorch.yaml"], project)

    assert adopted.returncode == 0, adopted.stderr
    after = yaml.safe_load((project / "params.yaml").read_text())
    assert after["train_dnn_pytorch"] == {**params["train_dnn_pytorch"], **best["params"]}
    assert {k: v for k, v in after.items() if k != "train_dnn_pytorch"} == {
        k: v for k, v in params.items() if k != "train_dnn_pytorch"
    }


@pytest.mark.integration
def test_tune_without_a_val_split_fails_in_one_line(tmp_path: Path) -> None:
    from tests.support import make_project_copy, run, shrunk_params

    params = shrunk_params({"prepare_data": {"split": "train_test"}, "tune_dnn_pytorch": SHRUNK_SEARCH})
    project = with_sweeps(make_project_copy(tmp_path / "project", params))
    uri = f"sqlite:///{project}/mlflow.db"
    assert (
        run([sys.executable, "-m", "lab.processes.prepare_data.main"], project, MLFLOW_TRACKING_URI=uri).returncode == 0
    )

    done = run([sys.executable, "-m", "sweeps.tune"], project, MLFLOW_TRACKING_URI=uri)

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: the hyperparameter search (tune_dnn_pytorch) needs a val split: "
        "set prepare_data.split to train_val_test and run prepare_data"
    )
    assert not (project / "tuning").exists()


@pytest.mark.unittest
@pytest.mark.parametrize(("metric", "task"), [("val/log_loss", "regression"), ("val/rmse", "multiclass")])
def test_a_metric_the_network_does_not_report_for_the_task_is_an_error(metric: str, task: str) -> None:
    with pytest.raises(tune.TuneError, match=rf"^tune_dnn_pytorch.metric: {metric} does not apply to task {task}"):
        tune.check_metric(metric, task)


@pytest.mark.unittest
@pytest.mark.parametrize(("metric", "expected"), [("val/rmse", "minimize"), ("val/r2", "maximize")])
def test_regression_metrics_have_their_direction(metric: str, expected: str) -> None:
    tune.check_metric(metric, "regression")

    assert tune.direction(metric) == expected
