"""Running a sweep: every point as a DVC experiment, on this machine in parallel or one per CI job.

On one machine (`make sweep`): the MLflow store and experiment are created first, then every point is
queued (`dvc exp run --queue -S ...`) and the queue runs with N workers (`dvc exp run --run-all --jobs N`,
which follows the logs in the foreground). DVC reports failed queued experiments but exits 0, so the
outcome is read back from `dvc exp show --json`. On CI, one job runs one point in its workspace and a
last job ranks them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.errors import ReprolabError
from lib.params import ParamsFile
from lib.tracking import store
from sweeps.grid import Point, Sweep
from sweeps.results import DONE, experiment_states, markdown_table, ranking


@dataclass(frozen=True)
class Outcome:
    """What a sweep left behind: the ranked table and the points that did not produce an experiment."""

    table: str
    failed: list[str]


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_env(jobs: int, cpus: int | None = None) -> dict[str, str]:
    """The environment for `jobs` experiments at once: each gets its share of the CPU cores as threads.

    torch, scikit-learn's OpenMP code and BLAS otherwise each start one thread per core in every
    worker; with more threads than cores they wait on each other (on 2 cores, two trainings of the
    example network ran ten times slower). A thread count already set in the environment is kept.
    """
    env = dict(os.environ)
    threads = str(max(1, (cpus or os.cpu_count() or 1) // jobs))
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    return env


def _dvc(
    args: Sequence[str], repo: Path, capture: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`dvc <args>` in `repo` with this interpreter's DVC; output captured unless `capture` is False."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=capture, text=True, check=False, env=env
    )


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def exp_show(repo: Path) -> list[dict[str, Any]]:
    """`dvc exp show --json` for HEAD and its experiments."""
    done = _dvc(["exp", "show", "--json"], repo)
    if done.returncode != 0:
        raise ReprolabError(f"dvc exp show in {repo} failed: {_last_line(done)}")
    return json.loads(done.stdout)


def prepare_tracking(repo: Path, params_file: Path) -> str:
    """Create the MLflow store and experiment (or check the server) once, before experiments fan out."""
    from lib.tracking.store import TrackingParams

    experiment = ParamsFile.read(params_file).section("tracking", TrackingParams).experiment
    if store.tracking_uri() is None:
        return store.use_local_store(experiment, repo)
    store.prepare(experiment)
    return str(store.tracking_uri())


def queue(repo: Path, grid: Sequence[Point]) -> None:
    """Queue one experiment per point; refuse names that already exist for HEAD (DVC would stop half-way)."""
    states = experiment_states(exp_show(repo), [point.name for point in grid])
    taken = [name for name, state in states.items() if state == DONE or state == "failed"]
    if taken:
        raise ReprolabError(
            f"experiments {', '.join(taken)} already exist for this commit: remove them "
            f"(dvc exp remove {' '.join(taken)}) or give the sweep another name"
        )
    params = ParamsFile.read(repo / "params.yaml").data
    for point in grid:
        args = ["exp", "run", "--queue", "--name", point.name]
        for override in point.overrides():
            args += ["-S", override]
        done = _dvc(args, repo)
        if done.returncode != 0:
            raise ReprolabError(f"could not queue {point.name} ({point.label()}): {_last_line(done)}")
        print(f"queued {point.name}: {point.label()}", flush=True)
        if all(_value_at(params, key) == value for key, value in point.params.items()):
            print(f"  {point.name} has the committed params: its results are the commit's, with no new MLflow run")


def _value_at(params: dict[str, Any] | Any, key: str) -> Any:
    for part in key.split("."):
        params = params.get(part) if isinstance(params, dict) else None
    return params


def outcome(repo: Path, sweep: Sweep, grid: Sequence[Point], links: dict[str, str] | None = None) -> Outcome:
    """The ranked table of the points that ran and the names of those that did not."""
    from lib.experiments import exp_show_frame

    records = exp_show(repo)
    states = experiment_states(records, [point.name for point in grid])
    table = ranking(exp_show_frame(records), sweep, [point for point in grid if states[point.name] == DONE])
    if links:
        table["MLflow"] = [links.get(name, "-") for name in table["experiment"]]
    return Outcome(markdown_table(table), [name for name, state in states.items() if state != DONE])


def run_local(repo: Path, sweep: Sweep, grid: Sequence[Point], jobs: int, params_file: Path) -> Outcome:
    """Queue every point and run the queue with `jobs` workers in `repo`; returns the outcome."""
    if jobs < 1:
        raise ReprolabError(f"jobs: at least 1, got {jobs}")
    uri = prepare_tracking(repo, params_file)
    print(f"MLflow: {uri}", flush=True)
    queue(repo, grid)
    env = worker_env(jobs)
    print(f"running {len(grid)} experiments, {jobs} at a time, {env['OMP_NUM_THREADS']} thread(s) each", flush=True)
    done = _dvc(["exp", "run", "--run-all", "--jobs", str(jobs)], repo, capture=False, env=env)
    if done.returncode != 0:
        raise ReprolabError(f"dvc exp run --run-all failed (exit status {done.returncode})")
    return outcome(repo, sweep, grid)


def run_point(repo: Path, point: Point) -> None:
    """Run one point in the workspace of `repo`, pulling unchanged stages' outputs from the DVC remote."""
    args = ["exp", "run", "--pull", "--name", point.name]
    for override in point.overrides():
        args += ["-S", override]
    print("dvc " + " ".join(args), flush=True)
    done = _dvc(args, repo, capture=False)
    if done.returncode != 0:
        raise ReprolabError(f"experiment {point.name} ({point.label()}) failed: dvc exit status {done.returncode}")


def pull_experiments(repo: Path, remote: str, grid: Sequence[Point]) -> None:
    """Fetch each point's experiment ref from the git remote (no data); a point never pushed is skipped."""
    for point in grid:
        done = _dvc(["exp", "pull", "--no-cache", remote, point.name], repo)
        print(f"{point.name}: {'pulled' if done.returncode == 0 else 'not on ' + remote + ': ' + _last_line(done)}")


def mlflow_links(uri: str, experiment: str, tag: str) -> dict[str, str]:
    """Markdown links to the MLflow stage runs launched by `tag`, per DVC experiment name."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`git.tag` = '{tag}'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    links: dict[str, list[str]] = {}
    for run in runs:
        tags = run.data.tags
        if "mlflow.parentRunId" in tags or "dvc.experiment" not in tags:
            continue
        url = f"{uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        links.setdefault(tags["dvc.experiment"], []).append(f"[{tags.get('dvc.stage', run.info.run_id)}]({url})")
    return {name: " ".join(items) for name, items in links.items()}


def summary(repo: Path, sweep: Sweep, grid: Sequence[Point], tag: str, params_file: Path) -> tuple[str, list[str]]:
    """The CI summary in Markdown (the ranked table, MLflow links, failed points) and the failed points."""
    from lib.tracking.store import TrackingParams

    experiment = ParamsFile.read(params_file).section("tracking", TrackingParams).experiment
    uri = store.tracking_uri()
    links: dict[str, str] = {}
    note = ""
    if uri:
        try:
            links = mlflow_links(uri, experiment, tag)
        except Exception as exc:  # the summary says what it cannot reach; the experiments are already pushed
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            note = f"\nCould not read the MLflow runs from {uri}: {reason}\n"
    result = outcome(repo, sweep, grid, links)
    order = "highest" if sweep.maximize else "lowest"
    lines = [f"## {tag}", "", f"`{sweep.source}`: {len(grid)} points, ranked by `{sweep.metric}` ({order} first)."]
    lines += ["", result.table, note]
    if result.failed:
        lines.append(f"No result from: {', '.join(result.failed)} (see their jobs' logs).")
    lines.append(
        "To look at them: `git fetch origin 'refs/exps/*:refs/exps/*' && dvc exp show`, "
        f"or one of them: `dvc exp pull origin {grid[0].name}`."
    )
    return "\n".join(lines) + "\n", result.failed
