"""`python -m sweeps.main run` (make sweep), for real: a grid queued as DVC experiments, two at a time.

One project copy, with the pipeline run and committed first so that the unchanged stages come from
DVC's cache. MLFLOW_TRACKING_URI is unset: the local store at the project root must receive every run,
although queued experiments run in temporary copies under .dvc/tmp/exps/.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import mlflow
import pytest
import yaml

from lib.experiments import dvc_experiments
from lib.paths import PROJ_ROOT
from tests.support import make_project_copy, run, shrunk_params

pytestmark = pytest.mark.integration

IDENTITY = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")
# No point equals the committed params (lr 0.001, batch size 64): DVC would reuse the commit's results.
GRID = ["train_dnn_pytorch.lr=0.003,0.01", "train_dnn_pytorch.batch_size=32,64"]
POINTS = [(0.003, 32), (0.003, 64), (0.01, 32), (0.01, 64)]
NAMES = ["grid-1", "grid-2", "grid-3", "grid-4"]


@dataclass
class Swept:
    project: Path
    done: CompletedProcess[str]


def sweep_file(project: Path, name: str, grid: list[str]) -> str:
    path = project / "sweeps" / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "metric": "dnn/val/roc_auc", "params": grid}, sort_keys=False))
    return str(path.relative_to(project))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with sweeps/, its pipeline run once and committed (results included)."""
    project = make_project_copy(tmp_path_factory.mktemp("sweep") / "project", shrunk_params())
    shutil.copytree(PROJ_ROOT / "sweeps", project / "sweeps", ignore=shutil.ignore_patterns("__pycache__", "*_test.py"))
    repro = run(["dvc", "repro"], project)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    for args in (["add", "-A"], [*IDENTITY, "commit", "-qm", "results"]):
        assert run(["git", *args], project).returncode == 0
    return project


@pytest.fixture(scope="module")
def swept(project: Path) -> Swept:
    """The four-point grid, run two at a time."""
    done = run(["python", "-m", "sweeps.main", "run", sweep_file(project, "grid", GRID), "--jobs", "2"], project)
    return Swept(project, done)


def experiments_of(project: Path) -> dict[str, dict]:
    frame = dvc_experiments(project, commits=1)
    return {row["name"]: row for row in frame[frame["kind"] != "baseline"].to_dict("records")}


def stage_runs(project: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("reprolab-example")
    runs = client.search_runs([experiment.experiment_id], "tags.`dvc.stage` = 'train_dnn_pytorch'", max_results=1000)
    return [found for found in runs if "dvc.experiment" in found.data.tags]


def test_every_point_is_an_experiment_with_its_params_and_metrics(swept: Swept) -> None:
    assert swept.done.returncode == 0, swept.done.stdout[-4000:] + swept.done.stderr[-4000:]

    experiments = experiments_of(swept.project)

    assert set(NAMES) <= set(experiments)
    for name, (lr, batch) in zip(NAMES, POINTS, strict=True):  # DVC's expansion: the last key varies fastest
        row = experiments[name]
        assert (row["params.train_dnn_pytorch.lr"], row["params.train_dnn_pytorch.batch_size"]) == (lr, batch)
        assert 0.0 <= float(row["metrics.dnn/val/roc_auc"]) <= 1.0
        assert float(row["metrics.dnn/test/accuracy"]) > 0.0


def test_every_point_is_one_finished_mlflow_run_tagged_with_its_experiment(swept: Swept) -> None:
    assert swept.done.returncode == 0, swept.done.stderr[-4000:]

    runs = [found for found in stage_runs(swept.project) if found.data.tags["dvc.experiment"] in NAMES]

    assert sorted(found.data.tags["dvc.experiment"] for found in runs) == NAMES  # none lost, none twice
    experiments = experiments_of(swept.project)
    table = {line.split("|")[2].strip(): line for line in swept.done.stdout.splitlines() if line.startswith("| ")}
    for found in runs:
        assert found.info.status == "FINISHED"
        row = experiments[found.data.tags["dvc.experiment"]]
        assert float(found.data.params["train_dnn_pytorch.lr"]) == row["params.train_dnn_pytorch.lr"]
        assert float(found.data.params["train_dnn_pytorch.batch_size"]) == row["params.train_dnn_pytorch.batch_size"]
        assert found.info.run_id[:12] in table[found.data.tags["dvc.experiment"]]  # the ranked table names the run
        assert found.data.metrics["val/roc_auc"] == pytest.approx(float(row["metrics.dnn/val/roc_auc"]), abs=1e-6)
        assert Path(found.info.artifact_uri.removeprefix("file://")).is_relative_to(swept.project / "mlruns")
    assert not list((swept.project / ".dvc" / "tmp").rglob("mlflow.db")), "a run went to a temporary copy"


def test_the_sweep_prints_the_points_ranked_by_the_metric(swept: Swept) -> None:
    assert swept.done.returncode == 0, swept.done.stderr[-4000:]
    experiments = experiments_of(swept.project)
    best_first = sorted(NAMES, key=lambda name: -float(experiments[name]["metrics.dnn/val/roc_auc"]))

    table = [line for line in swept.done.stdout.splitlines() if line.startswith("| ") and "grid-" in line]

    assert [line.split("|")[2].strip() for line in table] == best_first
    assert [line.split("|")[1].strip() for line in table] == ["1", "2", "3", "4"]
    assert "running 4 experiments, 2 at a time" in swept.done.stdout


def test_a_failed_point_fails_the_sweep_naming_it_and_its_log_command(swept: Swept) -> None:
    project = swept.project
    grid = ["train_dnn_pytorch.lr=0.01,-1.0"]  # a negative rate: the stage refuses it

    done = run(["python", "-m", "sweeps.main", "run", sweep_file(project, "bad", grid), "--jobs", "2"], project)

    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error: 1 experiment(s) failed: bad-2; see the logs with `dvc queue logs <name>`" in done.stderr
    table = [[cell.strip() for cell in line.split("|")[1:5]] for line in done.stdout.splitlines() if "| bad-" in line]
    assert [row[:2] for row in table] == [["1", "bad-1"], ["-", "bad-2"]]  # the failed point is not ranked
    assert "failed" in next(line for line in done.stdout.splitlines() if "| bad-2" in line)
    assert run(["dvc", "queue", "logs", "bad-2"], project).returncode == 0


def test_rerunning_a_sweep_refuses_names_that_exist(swept: Swept) -> None:
    done = run(["python", "-m", "sweeps.main", "run", "sweeps/grid.yaml"], swept.project)

    assert done.returncode == 2
    assert "error: experiments grid-1, grid-2, grid-3, grid-4 already exist for this commit" in done.stderr


def test_dvcs_own_grid_names_the_points_as_the_sweep_does(project: Path) -> None:
    """`dvc exp run --queue -S key=a,b --name <prefix>` queues one experiment per value, named <prefix>-1..N:
    the names and order `sweeps.grid.points` gives the CI matrix."""
    from sweeps.grid import parse_sweep, points

    sweep = parse_sweep({"metric": "dnn/val/roc_auc", "params": ["train_dnn_pytorch.lr=0.002,0.02"]}, "s", "named")
    try:
        queued = run(["dvc", "exp", "run", "--queue", "-S", sweep.overrides[0], "--name", "named"], project)
        assert queued.returncode == 0, queued.stderr
        listed = run(["dvc", "queue", "status"], project).stdout
        params = yaml.safe_load((project / "params.yaml").read_text())
        expected = [point.name for point in points(sweep, params)]
        assert expected == ["named-1", "named-2"]
        assert all(name in listed for name in expected), listed
        assert "Queueing with overrides '{'params.yaml': ['train_dnn_pytorch.lr=0.002']}'" in queued.stdout
    finally:  # nothing left queued for the next sweep
        run(["dvc", "queue", "remove", "--queued"], project)
