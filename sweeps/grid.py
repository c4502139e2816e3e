"""Grid sweeps on DVC's own grid: a sweep file's `-S` overrides, checked against params.yaml, expanded,
queued and ranked as DVC does it; what DVC lacks (the checks, each worker's share of the cores and GPUs,
the MLflow store created first, the ranking) is here. The sweep file's format is in sweeps/README.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.errors import ReprolabError
from lib.training import gpu_slots
from sweeps.search import DONE, FAILED, MISSING, Result, ranked_table, run_links

SWEEP_KEYS = ("name", "metric", "order", "params")
PARAMS_FILE = "params.yaml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")  # a git ref component, kept simple
_LAUNCH_SUFFIX = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{7,40}$")  # what `make sweep-launch` adds to a tag
TAG_PREFIX = "sweep-"
MAX_POINTS = 256  # GitHub's limit on the jobs of one matrix
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
REUSED = "no new run (results reused)"  # the MLflow cell of a point that ran no stage


class SweepError(ReprolabError):
    """A sweep file that is missing, malformed, or names a key or value params.yaml does not have."""


@dataclass(frozen=True)
class Sweep:
    """A sweep file: its experiments' name prefix, the ranking metric and the `-S` overrides."""

    source: str
    name: str
    metric: str
    maximize: bool
    overrides: list[str]


@dataclass(frozen=True)
class Point:
    """One point of the grid: its 1-based index, its experiment name and its `-S` overrides (DVC's text)."""

    index: int
    name: str
    overrides: list[str]

    @property
    def params(self) -> dict[str, str]:
        """{dotted key: value as written}."""
        return dict(override.split("=", 1) for override in self.overrides)

    def label(self) -> str:
        """`lr=0.001 batch_size=32`: the values, each under the last part of its key."""
        return " ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in self.params.items())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "text", list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


def _fits(current: Any, value: Any) -> bool:
    """Whether `value` may replace `current`: a value of its type, any number for a float, anything for or as null."""
    if current is None or value is None:
        return True
    return _kind(value) == "number" if isinstance(current, float) else type(value) is type(current)


def points(sweep: Sweep, params: Mapping[str, Any], prefix: str | None = None) -> list[Point]:
    """The grid as `dvc exp run --queue` expands it (DVC's own function), named `<prefix>-<index>`, each
    point's values checked against `params` (params.yaml's content)."""
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides

    where = f"{sweep.source}: params"
    try:
        grid = [point[PARAMS_FILE] for point in get_hydra_sweeps({PARAMS_FILE: sweep.overrides})]
    except Exception as exc:  # Hydra's and DVC's grammar errors
        raise SweepError(f"{where}: {' '.join(str(exc.__cause__ or exc).split())}") from None
    if len(grid) > MAX_POINTS:
        raise SweepError(f"{where}: {len(grid)} points, more than {MAX_POINTS}")
    for override in (override for point in grid for override in to_hydra_overrides(point)):
        key, value, current = override.key_or_group, override.value(), params
        for part in key.split("."):
            if not isinstance(current, Mapping) or part not in current:
                raise SweepError(f"{where}: {key}: unknown key (not in params.yaml)")
            current = current[part]
        if isinstance(current, Mapping) or override.is_add() or override.is_delete():
            raise SweepError(f"{where}: {key}: set one key of params.yaml to a value, as in {key}.<name>=<value>")
        if not _fits(current, value):
            held = f"{_kind(current)} ({current!r})"
            raise SweepError(f"{where}: {key}: {value!r} is {_kind(value)}, params.yaml holds {held}")
    return [Point(index, f"{prefix or sweep.name}-{index}", point) for index, point in enumerate(grid, start=1)]


def parse_sweep(data: Any, source: str, default_name: str) -> Sweep:
    """A sweep file's parsed YAML `data`, checked; `default_name` is the prefix when it sets no `name`."""
    if not isinstance(data, Mapping):
        raise SweepError(f"{source}: the top level must be a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = [key for key in data if key not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{source}: {unknown[0]}: unknown key (a sweep file has {', '.join(SWEEP_KEYS)})")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".lock"):
        raise SweepError(f"{source}: name: use letters, digits, '.', '_' and '-', got {name!r}")
    metric = data.get("metric")
    if not isinstance(metric, str) or not re.fullmatch(r"[^/\s]+/\S+", metric):
        raise SweepError(f"{source}: metric: <metrics file stem>/<metric>, e.g. dnn/test/roc_auc, got {metric!r}")
    order = data.get("order", "max")
    if order not in ("max", "min"):
        raise SweepError(f"{source}: order: max or min, got {order!r}")
    overrides = data.get("params")
    if not isinstance(overrides, list) or not overrides or not all(isinstance(item, str) for item in overrides):
        raise SweepError(f"{source}: params: a list of `dvc exp run -S` overrides (key=a,b), got {overrides!r}")
    return Sweep(source, name, metric, order == "max", overrides)


def read_sweep(path: Path, params_file: Path, prefix: str | None = None) -> tuple[Sweep, list[Point]]:
    """The sweep file `path` and its points, checked against the params file `params_file`."""
    import yaml

    from lib.params import ParamsFile

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: sweep file not found") from None
    except yaml.YAMLError:
        raise SweepError(f"{path}: not valid YAML") from None
    sweep = parse_sweep(data, str(path), Path(path).stem)
    return sweep, points(sweep, ParamsFile.read(params_file).data, prefix)


def sweep_file_for_tag(tag: str, folder: Path) -> Path:
    """The sweep file a `sweep-<name>[-<date>-<time>-<commit>]` tag names: `folder`/<name>.yaml."""
    if not tag.startswith(TAG_PREFIX):
        raise SweepError(f"tag {tag}: sweep tags start with '{TAG_PREFIX}'")
    name = _LAUNCH_SUFFIX.sub("", tag.removeprefix(TAG_PREFIX))
    for path in (Path(folder) / f"{name}.yaml", Path(folder) / f"{name}.yml"):
        if path.is_file():
            return path
    known = sorted(path.stem for path in Path(folder).glob("*.y*ml"))
    raise SweepError(f"tag {tag}: no sweep file {folder}/{name}.yaml (sweep files: {', '.join(known) or 'none'})")


def matrix(grid: Sequence[Point]) -> list[dict[str, Any]]:
    """The points as a GitHub Actions matrix list: index, experiment name and a label for the job's name."""
    return [{"index": point.index, "name": point.name, "label": point.label()} for point in grid]


def worker_env(jobs: int) -> dict[str, str]:
    """The environment for `jobs` experiments at once: each gets its share of the CPU cores as threads,
    unless a thread count is set already. Else torch, OpenMP and BLAS start one thread per core in every
    worker, which then wait on each other (on 2 cores, two trainings ran ten times slower)."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {**dict.fromkeys(THREAD_VARIABLES, threads), **os.environ}


def _dvc(args: Sequence[str], repo: Path, env: dict[str, str] | None = None) -> int:
    """`dvc <args>` in `repo` with this interpreter's DVC, its output shown; returns the exit status."""
    print("dvc " + " ".join(args), flush=True)
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, check=False).returncode


def results(repo: Path, sweep: Sweep, grid: Sequence[Point], links: Mapping[str, str]) -> list[Result]:
    """Each point's outcome, from the one `dvc exp show` reader (lib.experiments): done, failed or missing."""
    from lib.experiments import dvc_experiments, metric_column

    frame = dvc_experiments(repo, commits=1)
    runs = frame[frame["kind"].str.startswith("branch_") & frame["name"].isin([point.name for point in grid])]
    try:
        column = metric_column(frame, sweep.metric) if not runs.empty else None
    except ReprolabError as exc:
        raise SweepError(f"{sweep.source}: metric: {exc}") from None
    rows = {row["name"]: row for row in runs.to_dict("records")}
    outcome = []
    for point in grid:
        row = rows.get(point.name)
        state = MISSING if row is None else FAILED if row["state"] == "Failed" else DONE
        value = row.get(column) if state == DONE else None
        # A point DVC restored from its caches (its params equal the commit's or an earlier point's) ran no stage.
        runs = links.get(point.name) or (REUSED if links and state == DONE else "")
        outcome.append(Result(point.name, point.params, value, state, runs))
    return outcome


def run_local(repo: Path, sweep: Sweep, grid: Sequence[Point], jobs: int, experiment: str) -> list[Result]:
    """`make sweep`: the MLflow store first, then every point queued at once and run with `jobs` workers."""
    from lib.experiments import dvc_experiments
    from lib.tracking import journal, store
    from lib.tracking.sync import sync_all

    if jobs < 1:
        raise ReprolabError(f"jobs: at least 1, got {jobs}")
    if store.tracking_uri() is None:  # a new SQLite store must not be created by many workers at once
        uri = store.use_local_store(experiment, repo)
    else:
        store.prepare(experiment)
        uri = str(store.tracking_uri())
    print(f"MLflow: {uri}", flush=True)
    names = set(dvc_experiments(repo, commits=1)["name"].dropna())
    taken = [point.name for point in grid if point.name in names]
    if taken:
        raise ReprolabError(
            f"experiments {', '.join(taken)} already exist for this commit: remove them "
            f"(dvc exp remove {' '.join(taken)}) or give the sweep another name"
        )
    sets = [arg for override in sweep.overrides for arg in ("-S", override)]
    if _dvc(["exp", "run", "--queue", "--name", sweep.name, *sets], repo) != 0:
        raise ReprolabError(f"{sweep.source}: DVC could not queue the sweep (its message is above)")
    env = worker_env(jobs)
    gpus, slots = gpu_slots.visible_gpus(env), gpu_slots.slots_per_gpu(env)
    print(f"running {len(grid)} experiments, {jobs} at a time, {env['OMP_NUM_THREADS']} thread(s) each", flush=True)
    if gpus:
        print(f"GPUs {','.join(gpus)}: {slots} training(s) on each, each on a GPU of its own or a share", flush=True)
    with tempfile.TemporaryDirectory(prefix="reprolab-gpu-slots-") as locks:
        env |= gpu_slots.sweep_env(gpus, slots, Path(locks))
        if (status := _dvc(["exp", "run", "--run-all", "--jobs", str(jobs)], repo, env)) != 0:
            raise ReprolabError(f"dvc exp run --run-all failed (exit status {status})")
    for line in sync_all(repo, wait=journal.sync_wait("REPROLAB_SYNC_WAIT", 30)):  # every run before its link
        print(f"warning: tracking is behind: {line}; `make sync` replays it", file=sys.stderr, flush=True)
    where = f"tags.`dvc.experiment` LIKE '{sweep.name}-%'"
    return results(repo, sweep, grid, run_links(experiment, uri, where, "dvc.experiment"))


def run_point(repo: Path, point: Point) -> None:
    """One point in the workspace of `repo` (a CI job), unchanged stages' outputs pulled from the DVC remote."""
    sets = [arg for override in point.overrides for arg in ("-S", override)]
    if _dvc(["exp", "run", "--pull", "--name", point.name, *sets], repo) != 0:
        raise ReprolabError(f"experiment {point.name} ({point.label()}) failed")


def summary(
    repo: Path, sweep: Sweep, grid: Sequence[Point], tag: str, experiment: str, remote: str | None
) -> tuple[str, list[Result]]:
    """The CI summary in Markdown (the tag's experiments fetched from `remote`, ranked, with MLflow links)
    and the points' results."""
    from lib.tracking import store

    for point in grid if remote else []:  # a point never pushed is skipped
        _dvc(["exp", "pull", "--no-cache", remote, point.name], repo)
    uri, links, note = store.tracking_uri(), {}, ""
    if uri:
        try:
            links = run_links(experiment, uri, f"tags.`git.tag` = '{tag}'", "dvc.experiment")
        except Exception as exc:  # the summary says what it cannot reach; the experiments are already pushed
            note = (
                f"\nCould not read the MLflow runs from {uri}: {(str(exc).splitlines() or [type(exc).__name__])[0]}\n"
            )
    order = "highest" if sweep.maximize else "lowest"
    lines = [f"## {tag}", "", f"`{sweep.source}`: {len(grid)} points, ranked by `{sweep.metric}` ({order} first)."]
    outcome = results(repo, sweep, grid, links)
    lines += ["", ranked_table(outcome, sweep.metric, sweep.maximize), note]
    lines.append(
        "To look at them: `git fetch origin 'refs/exps/*:refs/exps/*' && dvc exp show`, "
        f"or one of them: `dvc exp pull origin {grid[0].name}`."
    )
    return "\n".join(lines) + "\n", outcome
