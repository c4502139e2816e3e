"""MLflow runs (`mlflow.search_runs`) and DVC's commits and experiments (`dvc.api.exp_show`) as tables.

Both frames name columns `params.<dotted name>` and `metrics.<name>` (`metrics.dnn/test/roc_auc` for DVC: the
metrics file's stem, then the name), so `differing_params` works on either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lib.errors import ReprolabError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

RUN_COLUMNS = ("run_id", "run_name", "stage", "pipeline_run_id", "commit", "parent_run_id", "start_time", "status")
_RUN_TAGS = {"run_name": "mlflow.runName", "stage": "dvc.stage", "pipeline_run_id": "pipeline_run_id",
             "commit": "git.commit", "parent_run_id": "mlflow.parentRunId"}  # fmt: skip
_EXP_COLUMNS = {"Experiment": "name", "rev": "rev", "typ": "kind", "Created": "created", "State": "state"}


def runs_filter(tags: Mapping[str, str] | None = None, pipeline_run_id: str | None = None) -> str:
    """An MLflow search filter matching every tag in `tags` (and the pipeline run id, when given)."""
    wanted = {**(tags or {}), **({"pipeline_run_id": pipeline_run_id} if pipeline_run_id else {})}
    escaped = {key: str(value).replace("'", "\\'") for key, value in wanted.items()}
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in escaped.items())


def runs_frame(
    experiment: str,
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    pipeline_run_id: str | None = None,
    nested: bool = False,
) -> pd.DataFrame:
    """The runs of `experiment` carrying all `tags` (and of one `dvc repro`, given its `pipeline_run_id`), oldest
    first: RUN_COLUMNS, then `params.*`, `metrics.*`; stage runs only unless `nested` (a run per classifier)."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        where = mlflow.get_tracking_uri()
        raise ReprolabError(f"MLflow at {where}: no experiment '{experiment}' (run the pipeline first)")
    found = mlflow.search_runs(experiment_names=[experiment], filter_string=runs_filter(tags, pipeline_run_id))
    if found.empty:
        return found.reindex(columns=list(RUN_COLUMNS))
    found = found.assign(**{column: found.get(f"tags.{tag}") for column, tag in _RUN_TAGS.items()})
    found["commit"] = found["commit"].str[:7]
    if not nested:
        found = found[found["parent_run_id"].isna()]
    data = sorted(column for column in found.columns if column.startswith(("params.", "metrics.")))
    return found[[*RUN_COLUMNS, *data]].sort_values("start_time", kind="stable").reset_index(drop=True)


def pipeline_table(runs: pd.DataFrame, metrics: Sequence[str] = ("test/accuracy", "test/roc_auc")) -> pd.DataFrame:
    """One row per pipeline run (`dvc repro`): its commit, start, and each stage's `metrics` as `<stage>/<metric>`."""
    stage_runs = runs[runs["parent_run_id"].isna() & runs["stage"].notna() & runs["pipeline_run_id"].notna()]
    present = [f"metrics.{metric}" for metric in metrics if f"metrics.{metric}" in runs]
    values = stage_runs.melt(["pipeline_run_id", "stage"], present, var_name="metric").dropna(subset=["value"])
    values["column"] = values["stage"] + "/" + values["metric"].str.removeprefix("metrics.")
    table = values.pivot_table("value", "pipeline_run_id", "column", aggfunc="last")
    grouped = stage_runs.groupby("pipeline_run_id")
    table = grouped.agg(commit=("commit", "first"), started=("start_time", "min")).join(table)
    return table.sort_values("started", kind="stable")


def metric_histories(run_ids: Sequence[str], metrics: Sequence[str], tracking_uri: str | None = None) -> pd.DataFrame:
    """Long format (`run_id`, `metric`, `step`, `value`): each run's per-epoch values of `metrics`."""
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    rows = [
        (run_id, name, point.step, point.value)
        for run_id in run_ids
        for name in metrics
        for point in client.get_metric_history(run_id, name)
        if point.step >= 1  # epochs are steps 1, 2, ...; step 0 holds the kept epoch's summary
    ]
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"])


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
    """The `keep` columns, then the `params.*` columns whose values differ across rows (missing differs from set)."""
    params = [column for column in frame.columns if column.startswith("params.")]
    differing = [column for column in params if frame[column].astype(str).nunique(dropna=False) > 1]
    return frame[[*keep, *differing]]


def dvc_experiments(repo: Path, commits: int = 5) -> pd.DataFrame:
    """The last `commits` commits of `repo` and their DVC experiments (`dvc.api.exp_show`), newest commit first.

    Columns: `name`, `rev` (short commit), `kind` (`baseline` for the workspace and commits, `branch_commit`/
    `branch_base` for experiments), `baseline` (an experiment's commit), `created`, `state` (`Failed` for an
    experiment that failed), `params.*` and `metrics.*`.
    """
    import dvc.api
    import pandas as pd
    import yaml
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError

    from lib.git import git
    from lib.tracking.runs import flatten

    try:
        frame = pd.DataFrame(dvc.api.exp_show(str(repo), num=commits))
    except (DvcException, SCMError) as exc:
        raise ReprolabError(
            f"dvc exp show in {repo} failed: {' '.join(str(exc).split()) or type(exc).__name__}"
        ) from None
    params_file = Path(repo) / "params.yaml"
    params = flatten(yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}) if params_file.is_file() else {}
    columns = {}
    for column in frame.columns.difference([*_EXP_COLUMNS, "parent", "Executor"], sort=False):
        path, _, name = column.rpartition(":")
        if path == "params.yaml" or (not path and name in params):
            columns[column] = f"params.{name}"
        elif path or not (Path(repo) / name).exists():  # the rest that is not a dependency's hash
            columns[column] = f"metrics.{Path(path).stem + '/' if path else ''}{name}"
    frame = frame.rename(columns={**_EXP_COLUMNS, **columns})[[*_EXP_COLUMNS.values(), *columns.values()]]
    frame = frame.replace("!", None).infer_objects()  # "!": a commit without the file, e.g. before its first run
    commit = (frame["kind"] == "baseline") & (frame["rev"] != "workspace")
    shown = frame.loc[commit, "rev"]  # DVC shows a branch's or tag's name instead of the commit
    short = shown.map(lambda rev: git("rev-parse", "--short=7", rev, cwd=repo) or rev)
    frame.loc[commit, "name"], frame.loc[commit, "rev"] = shown.where(shown != short), short
    frame.insert(3, "baseline", frame["rev"].where(commit).ffill().where(~commit & (frame["rev"] != "workspace")))
    return frame


def metric_column(frame: pd.DataFrame, metric: str) -> str:
    """The column of `metric` (`<metrics file stem>/<name>`) in a `dvc_experiments` frame; DVC leaves the
    file out when only one metrics file has the name. An error lists the metrics when there is none."""
    for column in (f"metrics.{metric}", f"metrics.{metric.split('/', 1)[1]}"):
        if column in frame:
            return column
    known = sorted(name.removeprefix("metrics.") for name in frame.columns if name.startswith("metrics."))
    raise ReprolabError(f"no metric {metric} (metrics: {', '.join(known)})")
