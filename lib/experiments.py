"""Results side by side: MLflow runs and DVC's commits and experiments as tables a notebook shows.

Both sources become frames with the same column conventions: `params.<name>` (params flattened with
dots, `train_dnn_pytorch.lr`) and `metrics.<name>` (`metrics.dnn/test/roc_auc` for DVC, where the
metrics file's stem says which model; a stage run's own names for MLflow). `differing_params` then
works on either. The readers are thin; the shaping functions are pure and unit-tested.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib.errors import ReprolabError
from lib.tracking.runs import flatten

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow.entities import Metric, Run

RUN_COLUMNS = ("run_id", "run_name", "stage", "pipeline_run_id", "commit", "parent_run_id", "start_time", "status")


def runs_filter(tags: Mapping[str, str] | None = None, pipeline_run_id: str | None = None) -> str:
    """An MLflow search filter matching every tag in `tags` (and the pipeline run id, when given)."""
    wanted = dict(tags or {})
    if pipeline_run_id:
        wanted["pipeline_run_id"] = pipeline_run_id
    clauses = []
    for key, value in wanted.items():
        escaped = str(value).replace("'", "\\'")
        clauses.append(f"tags.`{key}` = '{escaped}'")
    return " and ".join(clauses)


def runs_to_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per run: identity columns (RUN_COLUMNS), then `params.*` and `metrics.*`, oldest first."""
    import pandas as pd

    rows = []
    for run in runs:
        tags = run.data.tags
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "stage": tags.get("dvc.stage"),
                "pipeline_run_id": tags.get("pipeline_run_id"),
                "commit": (tags.get("git.commit") or "")[:7] or None,
                "parent_run_id": tags.get("mlflow.parentRunId"),
                "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
                "status": run.info.status,
                **{f"params.{key}": value for key, value in sorted(run.data.params.items())},
                **{f"metrics.{key}": value for key, value in sorted(run.data.metrics.items())},
            }
        )
    frame = pd.DataFrame(rows, columns=None if rows else list(RUN_COLUMNS))
    return frame.sort_values("start_time", kind="stable").reset_index(drop=True)


def runs_frame(
    experiment: str,
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    pipeline_run_id: str | None = None,
    nested: bool = False,
) -> pd.DataFrame:
    """The runs of `experiment` in the store at `tracking_uri`, filtered by tags, as `runs_to_frame` rows.

    Args:
        experiment: the MLflow experiment name (params.yaml: tracking.experiment).
        tracking_uri: the store; None is MLFLOW_TRACKING_URI or MLflow's default.
        tags: keep runs carrying all of these tags, e.g. `{"git.branch": "main"}`.
        pipeline_run_id: keep the runs of one `dvc repro`.
        nested: include the nested runs (one per standard classifier); by default only stage runs.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ReprolabError(f"MLflow at {client.tracking_uri}: no experiment '{experiment}' (run the pipeline first)")
    runs = []
    token = None
    while True:
        page = client.search_runs(
            [found.experiment_id], filter_string=runs_filter(tags, pipeline_run_id), max_results=1000, page_token=token
        )
        runs += [run for run in page if nested or "mlflow.parentRunId" not in run.data.tags]
        token = page.token
        if not token:
            return runs_to_frame(runs)


def pipeline_table(runs: pd.DataFrame, metrics: Sequence[str] = ("test/accuracy", "test/roc_auc")) -> pd.DataFrame:
    """One row per pipeline run (`dvc repro`): its commit, start, and each stage's `metrics` as `<stage>/<metric>`."""
    import pandas as pd

    stage_runs = runs[runs["parent_run_id"].isna() & runs["stage"].notna() & runs["pipeline_run_id"].notna()]
    rows = []
    for pipeline_run_id, group in stage_runs.groupby("pipeline_run_id", sort=False):
        row: dict[str, Any] = {
            "pipeline_run_id": pipeline_run_id,
            "commit": group["commit"].iloc[0],
            "started": group["start_time"].min(),
        }
        for _, run in group.iterrows():
            for metric in metrics:
                value = run.get(f"metrics.{metric}")
                if value is not None and not pd.isna(value):
                    row[f"{run['stage']}/{metric}"] = value
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["pipeline_run_id", "commit", "started"])
    return pd.DataFrame(rows).sort_values("started", kind="stable").set_index("pipeline_run_id")


def history_frame(histories: Mapping[str, Mapping[str, Sequence[Metric]]]) -> pd.DataFrame:
    """Long format (`run_id`, `metric`, `step`, `value`) from {run_id: {metric: MLflow metric history}}."""
    import pandas as pd

    rows = [
        {"run_id": run_id, "metric": name, "step": point.step, "value": point.value}
        for run_id, by_metric in histories.items()
        for name, points in by_metric.items()
        for point in points
    ]
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"])


def metric_histories(
    run_ids: Sequence[str], metrics: Sequence[str], tracking_uri: str | None = None, first_step: int = 1
) -> pd.DataFrame:
    """The per-step values of `metrics` for each run, as `history_frame` rows, from step `first_step` on.

    The network logs epochs as steps 1, 2, ...; its kept epoch's summary goes in at step 0, left out by default.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    history = history_frame(
        {run_id: {name: client.get_metric_history(run_id, name) for name in metrics} for run_id in run_ids}
    )
    return history[history["step"] >= first_step].reset_index(drop=True)


def curves_figure(history: pd.DataFrame, labels: Mapping[str, str] | None = None) -> Figure:
    """One panel per metric, one line per run: training curves side by side. `labels` names the runs."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    names = list(dict.fromkeys(history["metric"]))
    figure = Figure(figsize=(4.2 * max(len(names), 1), 3.4), layout="constrained")
    axes_list = figure.subplots(1, max(len(names), 1), squeeze=False)[0]
    for axes, name in zip(axes_list, names, strict=False):
        for run_id, points in history[history["metric"] == name].groupby("run_id", sort=False):
            axes.plot(points["step"], points["value"], marker=".", label=(labels or {}).get(run_id, run_id[:8]))
        axes.set(xlabel="epoch", title=name)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize=7)
    return figure


def differing_params(frame: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """The `params.*` columns whose values are not all equal across rows, after the `keep` columns.

    A param missing from some rows (NaN) differs from one that is set.
    """
    params = [column for column in frame.columns if column.startswith("params.")]
    differing = [column for column in params if frame[column].astype(str).nunique(dropna=False) > 1]
    return frame[[*keep, *differing]]


def _exp_row(record: Mapping[str, Any], kind: str, baseline: str | None, name: str | None) -> dict[str, Any]:
    data = record.get("data") or {}
    row: dict[str, Any] = {
        "rev": record.get("rev", "")[:7] if kind != "workspace" else "workspace",
        "name": name or record.get("name"),
        "kind": kind,
        "baseline": baseline,
        "created": data.get("timestamp"),
    }
    for file in (data.get("params") or {}).values():
        row.update({f"params.{key}": value for key, value in flatten(file.get("data") or {}).items()})
    for path, file in (data.get("metrics") or {}).items():
        stem = Path(path).stem
        row.update({f"metrics.{stem}/{key}": value for key, value in (file.get("data") or {}).items()})
    return row


def exp_show_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """`dvc exp show --json` as one row per workspace, commit and experiment (`kind`), newest commit first."""
    import pandas as pd

    rows = []
    for record in records:
        kind = "workspace" if record.get("rev") == "workspace" else "commit"
        baseline = _exp_row(record, kind, None, record.get("name"))
        rows.append(baseline)
        for experiment in record.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                rows.append(_exp_row(revision, "experiment", baseline["rev"], experiment.get("name")))
    return pd.DataFrame(rows)


def dvc_experiments(repo: Path, commits: int = 5, revs: Sequence[str] = ()) -> pd.DataFrame:
    """Commits of `repo` and their DVC experiments, with params and metrics (`exp_show_frame` rows).

    Args:
        repo: the DVC project (a git repository).
        commits: how many commits back from HEAD (or from each of `revs`) to show.
        revs: git revisions (commits, tags, branches) to start from instead of HEAD.
    """
    import sys

    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", "-n", str(commits)]
    for rev in revs:
        command += ["--rev", rev]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReprolabError(f"dvc exp show in {repo} failed: {message}")
    return exp_show_frame(json.loads(done.stdout))
