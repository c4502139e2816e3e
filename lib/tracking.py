"""MLflow, wrapped: where runs go, how every run is tagged, and fast model logging.

With `MLFLOW_TRACKING_URI` unset, runs go to a local store at the DVC project root (`DVC_ROOT`, else
the working directory): `mlflow.db`, MLflow's default SQLite file, with artifacts under `mlruns/`, both
git-ignored. Anchoring it at `DVC_ROOT` matters for queued `dvc exp run` experiments: they run in a
temporary copy under .dvc/tmp/exps/, where a store relative to the working directory would be deleted
with the copy, while DVC points `DVC_ROOT` at the parent project. When the URI names a server, it must
answer before any compute starts: MLflow's own retries would otherwise spend minutes against a closed port.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from lib.errors import ReprolabError
from lib.params import Section

if TYPE_CHECKING:
    import pandas as pd

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_PIPELINE_RUN_ID = "REPROLAB_PIPELINE_RUN_ID"
ENV_BRANCH = "REPROLAB_GIT_BRANCH"
ENV_DVC_ROOT = "DVC_ROOT"  # set by DVC for every stage; the parent project's root for queued experiments
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlruns"
SERVER_CHECK_TIMEOUT_S = 5.0
_PIPELINE_NAMESPACE = uuid.UUID("6f1d2b8e-5c0a-4b7e-9a51-3f0c2d9e7a10")
# Fail in seconds, not minutes, if a server that answered the health check goes away mid-run.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class TrackingParams(Section):
    """The `tracking` section of params.yaml."""

    experiment: str = Field(default="reprolab-example", min_length=1)


class TrackingUnavailable(ReprolabError):
    """The configured MLflow tracking server does not answer."""


def tracking_uri() -> str | None:
    """The tracking URI from the environment, or None for MLflow's default local store."""
    return os.environ.get(ENV_URI) or None


def local_store_root() -> Path:
    """The folder of the default local store: `DVC_ROOT` when DVC runs the stage, else the working directory."""
    return Path(os.environ.get(ENV_DVC_ROOT) or os.getcwd()).resolve()


def local_store_uri(root: Path) -> str:
    """The SQLite URI of the local store in `root` (the file MLflow's own default names, made absolute)."""
    return f"sqlite:///{Path(root).resolve() / LOCAL_STORE}"


def local_artifact_location(root: Path, experiment: str) -> str:
    """Where a local store in `root` keeps the artifacts of `experiment`: `root`/mlruns/<experiment>."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-.") or "experiment"
    return (Path(root).resolve() / LOCAL_ARTIFACTS / folder).as_uri()


def use_local_store(experiment: str, root: Path | None = None) -> str:
    """Point MLflow at the local store in `root` (default: `local_store_root()`), creating the store and
    `experiment` when missing, with the experiment's artifacts in the same root; returns the store's URI.

    MLflow would put a new experiment's artifacts under ./mlruns of whatever directory creates it first.
    Creating the store is the step that must not run in many processes at once (a brand-new SQLite file
    is corrupted by concurrent schema creation): `make sweep` calls this once before it starts workers.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    root = local_store_root() if root is None else Path(root).resolve()
    uri = local_store_uri(root)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    if client.get_experiment_by_name(experiment) is None:
        try:
            client.create_experiment(experiment, artifact_location=local_artifact_location(root, experiment))
        except MlflowException:
            if client.get_experiment_by_name(experiment) is None:  # not a concurrent creation: a real error
                raise
    return uri


def check_tracking_server(uri: str | None, timeout: float = SERVER_CHECK_TIMEOUT_S) -> None:
    """Raise TrackingUnavailable unless `uri` is local or its server answers within `timeout` s."""
    if uri is None or not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # it answered; authentication is MLflow's business
            return
        reason = f"HTTP {exc.code}"
    # ValueError and HTTPException: a malformed URI, or something that answers but does not speak HTTP.
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = " ".join(str(getattr(exc, "reason", exc)).split()) or type(exc).__name__
    else:
        return
    raise TrackingUnavailable(
        f"MLflow tracking server {uri} does not answer ({reason}); "
        f"start it, or unset {ENV_URI} to log to the local store"
    )


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dvc_ancestor() -> tuple[int, float] | None:
    """(pid, start time) of the `dvc repro` / `dvc exp run` process running this stage, if any."""
    import psutil

    try:
        for process in psutil.Process().parents():
            command = process.cmdline()
            names = [os.path.basename(part) for part in command[:3]]
            if "dvc" in names and ({"repro", "exp"} & set(command)):
                return process.pid, process.create_time()
    except psutil.Error:
        return None
    return None


@cache
def pipeline_run_id() -> str:
    """One id shared by every stage of the same pipeline run.

    Taken from `REPROLAB_PIPELINE_RUN_ID` when set (make run and CI set it); otherwise derived from
    the `dvc repro` process that runs the stages; a stage run by hand gets an id of its own.
    """
    if os.environ.get(ENV_PIPELINE_RUN_ID):
        return os.environ[ENV_PIPELINE_RUN_ID]
    ancestor = _dvc_ancestor()
    if ancestor is None:
        return uuid.uuid4().hex
    pid, started = ancestor
    return uuid.uuid5(_PIPELINE_NAMESPACE, f"{socket.gethostname()}:{pid}:{started}").hex


def run_tags(stage: str, device: str | None = None) -> dict[str, str]:
    """Tags tying a run to its code, launch and pipeline run."""
    commit = os.environ.get("GITHUB_SHA") or _git("rev-parse", "HEAD") or "unknown"
    branch = (
        os.environ.get(ENV_BRANCH)
        or os.environ.get("GITHUB_HEAD_REF")
        or (os.environ.get("GITHUB_REF_NAME") if os.environ.get("GITHUB_REF_TYPE") == "branch" else None)
        or _git("rev-parse", "--abbrev-ref", "HEAD")
        or "unknown"
    )
    # dvc.lock and the git-tracked metrics change while `dvc repro` runs: they are results, not code.
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)dvc.lock", ":(exclude)metrics")
    tags = {
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.branch": branch,
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        "dvc.stage": stage,
        "pipeline_run_id": pipeline_run_id(),
        "runner": os.environ.get("RUNNER_NAME") or socket.gethostname(),
    }
    if os.environ.get("GITHUB_REF_TYPE") == "tag" and os.environ.get("GITHUB_REF_NAME"):
        tags["git.tag"] = os.environ["GITHUB_REF_NAME"]
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
    if device is not None:
        tags["device"] = device
    return tags


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`: nested params as MLflow param names and values."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def prepare(experiment: str) -> None:
    """Check the server (if any) answers, then select `experiment`. Call before any compute."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    check_tracking_server(uri)
    import mlflow

    try:
        if uri is None:
            use_local_store(experiment)
        mlflow.set_experiment(experiment)
    except Exception as exc:  # MLflow raises its own and requests' errors here
        where = uri or f"the local store {local_store_uri(local_store_root())}"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingUnavailable(f"MLflow at {where}: cannot use experiment '{experiment}': {first_line}") from None


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
    """Start an MLflow run for `stage` (or a nested child run), log `params` flattened, yield its id.

    With `resume_run_id` naming a run that still exists (see `resumable_run`), that run is continued
    instead: its tags are set again, its params (the same, or it would not be resumed) are not.
    """
    import mlflow

    run_name = nested_name or stage
    if resume_run_id is not None and resumable_run(resume_run_id):
        with mlflow.start_run(run_id=resume_run_id, tags=run_tags(stage, device)) as run:
            yield run.info.run_id
    else:
        with mlflow.start_run(run_name=run_name, nested=nested_name is not None, tags=run_tags(stage, device)) as run:
            mlflow.log_params(flatten(params))
            yield run.info.run_id
    mlflow.flush_async_logging()


def logged_steps(run_id: str, key: str) -> set[int]:
    """The steps at which run `run_id` already has metric `key` (to continue a run without duplicates)."""
    import mlflow

    return {metric.step for metric in mlflow.MlflowClient().get_metric_history(run_id, key)}


def epoch_logger(
    run_id: str, history: Sequence[Mapping[str, float]], resumed: bool, key: str = "train/loss"
) -> Callable[[int, dict[str, float]], None]:
    """Per-epoch metric logging for a run that may continue an earlier one without duplicating steps.

    `history` holds the rows (`epoch` and metrics) a resumed training starts from: those whose logging
    a kill cut off are logged now. The callback returned logs each later epoch asynchronously, skipping
    the epochs the run already has (judged by metric `key`) when it was `resumed`.
    """
    import mlflow

    logged = logged_steps(run_id, key) if resumed else set()
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


def pip_requirements(packages: Sequence[str]) -> list[str]:
    """Exact `name==version` pins of installed packages, local build labels (`+cpu`) dropped."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in packages]


@contextmanager
def _pickle_warning_silenced(flavour: str) -> Iterator[None]:
    """Silence MLflow's per-save pickle warning for `flavour` (decision 0002 records the choice)."""
    logger = logging.getLogger(f"mlflow.{flavour}")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def log_sklearn_model(model: Any, example: pd.DataFrame, name: str = "model") -> str:
    """Log a fitted scikit-learn model with a DataFrame signature and pinned requirements.

    Pickled rather than MLflow's default skops: importing skops walks all of scikit-learn (5 s a run).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    with _pickle_warning_silenced("sklearn"):
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
            pip_requirements=pip_requirements(["scikit-learn", "numpy", "pandas", "scipy"]),
        )
    return info.model_uri


def log_torch_model(network: Any, example: pd.DataFrame, name: str = "model") -> str:
    """Log a torch module that maps a float32 feature frame to outputs, with a DataFrame signature."""
    import warnings

    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    example = example.astype("float32")
    with torch.no_grad():
        output = network(torch.tensor(example.to_numpy(dtype=np.float32))).numpy()
    with _pickle_warning_silenced("pytorch"), warnings.catch_warnings():
        # MLflow's own check of the input example wraps a read-only pandas array in a tensor.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        info = mlflow.pytorch.log_model(
            network,
            name=name,
            signature=infer_signature(example, output),
            input_example=example,
            serialization_format="pickle",
            pip_requirements=pip_requirements(["torch", "numpy", "pandas"]),
        )
    return info.model_uri
