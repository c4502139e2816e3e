"""A stage's MLflow run: its params, continuing a killed run, per-epoch metrics and plot files."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lib.tracking.provenance import run_tags

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`: nested params as MLflow param names and values."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def resumable_run(run_id: str) -> bool:
    """Whether run `run_id` exists in the tracking store and is not deleted, so it can be continued."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return run.info.lifecycle_stage == "active"


@contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    device: str | None = None,
    nested_name: str | None = None,
    resume_run_id: str | None = None,
) -> Iterator[str]:
    """Start an MLflow run for `stage` (or a nested child run), log `params` flattened, yield its id; or
    continue run `resume_run_id` if it still exists (its tags set again, its params, the same, not)."""
    import mlflow

    tags = run_tags(stage, device)
    if resume_run_id is not None and resumable_run(resume_run_id):
        with mlflow.start_run(run_id=resume_run_id, tags=tags) as run:
            yield run.info.run_id
    else:
        with mlflow.start_run(run_name=nested_name or stage, nested=nested_name is not None, tags=tags) as run:
            mlflow.log_params(flatten(params))
            yield run.info.run_id
    mlflow.flush_async_logging()


def logged_steps(run_id: str, key: str) -> set[int]:
    """The steps at which run `run_id` already has metric `key` (to continue a run without duplicates)."""
    import mlflow

    return {metric.step for metric in mlflow.MlflowClient().get_metric_history(run_id, key)}


def epoch_logger(
    run_id: str, history: Sequence[Mapping[str, float]], resumed: bool
) -> Callable[[int, dict[str, float]], None]:
    """Per-epoch logging for a run that may continue an earlier one: the rows of `history` (`epoch` and
    metrics) a kill cut off are logged now; the callback returned logs later epochs asynchronously,
    skipping those the run already has (judged by `train/loss`) when it was `resumed`."""
    import mlflow

    logged = logged_steps(run_id, "train/loss") if resumed else set()
    for row in history:
        epoch = int(row["epoch"])
        if epoch not in logged:
            mlflow.log_metrics({name: value for name, value in row.items() if name != "epoch"}, step=epoch)
            logged.add(epoch)

    def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch not in logged:
            mlflow.log_metrics(metrics, step=epoch, synchronous=False)

    return log_epoch


def log_pngs(paths: Sequence[Path]) -> None:
    """Log PNG files the stage already wrote as artifacts under `plots/` (no second rendering)."""
    import mlflow

    for path in paths:
        mlflow.log_artifact(str(path), artifact_path="plots")


def is_server(tracking_uri: str | None) -> bool:
    """Whether `tracking_uri` names a tracking server (else a local store, shown by `mlflow ui`)."""
    return str(tracking_uri).startswith(("http://", "https://"))


def run_url(tracking_uri: str | None, experiment_id: str, run_id: str) -> str:
    """The page of run `run_id`: on the tracking server, or for a local store under `mlflow ui`."""
    server = str(tracking_uri) if is_server(tracking_uri) else LOCAL_UI
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def results_line(
    stage: str, outputs: Sequence[Path | str], tracking_uri: str | None, experiment_id: str, run_id: str
) -> str:
    """A stage's last line: where its results are, its output files and its MLflow run."""
    url = run_url(tracking_uri, experiment_id, run_id) + ("" if is_server(tracking_uri) else " (mlflow ui)")
    return f"{stage}: results in {', '.join(map(str, outputs))}; MLflow run {run_id}: {url}"
