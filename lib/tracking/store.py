"""Where runs go, and whether the server there answers (before any compute: MLflow retries for minutes).

With `MLFLOW_TRACKING_URI` unset: `mlflow.db` and `mlruns/` at `DVC_ROOT` (a queued experiment's parent project).
"""

import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import Field

from lib.errors import ReprolabError
from lib.params import Section
from lib.paths import DEFAULT_EXPERIMENT
from lib.tracking.journal import direct_mode

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_STRICT = "REPROLAB_TRACKING_STRICT"  # 1: an unreachable server fails the stage before any compute
LOCAL_STORE = "mlflow.db"
# Fail in seconds, not minutes, if a server that answered the health check goes away mid-run.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class TrackingParams(Section):
    """The `tracking` section of params.yaml."""

    experiment: str = Field(default=DEFAULT_EXPERIMENT, min_length=1)


class TrackingUnavailable(ReprolabError):
    """The configured MLflow tracking server does not answer."""


def tracking_uri() -> str | None:
    """The tracking URI from the environment, or None for MLflow's default local store."""
    return os.environ.get(ENV_URI) or None


def local_store_root() -> Path:
    """The folder of the default local store: `DVC_ROOT` when DVC runs the stage, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def local_store_uri(root: Path) -> str:
    """The SQLite URI of the local store in `root` (the file MLflow's own default names, made absolute)."""
    return f"sqlite:///{Path(root).resolve() / LOCAL_STORE}"


def local_artifact_location(root: Path, experiment: str) -> str:
    """Where a local store in `root` keeps the artifacts of `experiment`: `root`/mlruns/<experiment>."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-.") or "experiment"
    return (Path(root).resolve() / "mlruns" / folder).as_uri()


def experiment_id(client: Any, name: str, root: Path | None = None) -> str:
    """The id of experiment `name`, created when missing (with its artifacts in `root`, for a local store there)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        location = local_artifact_location(root, name) if root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except Exception:
            found = client.get_experiment_by_name(name)
            if found is None:  # not a concurrent creation: a real error
                raise
    return found.experiment_id


def use_local_store(experiment: str, root: Path | None = None) -> str:
    """Point MLflow at the local store in `root` (default: `local_store_root()`), creating it and `experiment`;
    returns its URI. Sweeps call it before workers start: a new SQLite store created by many at once is corrupted."""
    import mlflow

    root = local_store_root() if root is None else Path(root).resolve()
    uri = local_store_uri(root)
    mlflow.set_tracking_uri(uri)
    experiment_id(mlflow.MlflowClient(uri), experiment, root)
    return uri


def server_problem(uri: str | None, timeout: float = 5.0) -> str | None:
    """Why the server at `uri` does not answer within `timeout` s, or None when it does (or `uri` is local)."""
    if uri is None or not uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        return None
    except urllib.error.HTTPError as exc:  # below 500 it answered: authentication is MLflow's business
        return f"HTTP {exc.code}" if exc.code >= 500 else None
    # ValueError and HTTPException: a malformed URI, or something that answers but does not speak HTTP.
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return " ".join(str(getattr(exc, "reason", exc)).split()) or type(exc).__name__


def check_tracking_server(uri: str | None, timeout: float = 5.0) -> None:
    """Raise TrackingUnavailable unless `uri` is local or its server answers within `timeout` s."""
    reason = server_problem(uri, timeout)
    if reason is not None:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} does not answer ({reason}); "
            f"start it, or unset {ENV_URI} to log to the local store"
        )


warned_unreachable = False  # preflight() said the server is down: the stage's end need not say it again


def preflight() -> None:
    """Before a journaled stage's compute: warn, with the reason, when the tracking server does not answer.

    An error instead, as `prepare` gives, with `REPROLAB_TRACKING_STRICT=1` or `REPROLAB_TRACKING=direct`."""
    global warned_unreachable
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    if direct_mode() or os.environ.get(ENV_STRICT, "").strip() == "1":
        check_tracking_server(uri)
    elif (reason := server_problem(uri)) is not None:
        print(
            f"warning: MLflow tracking server {uri} does not answer ({reason}): the run goes to its journal and "
            f"the sync sends it when the server answers ({ENV_STRICT}=1 stops here instead)",
            file=sys.stderr,
        )
        warned_unreachable = True


def prepare(experiment: str) -> None:
    """Check the server (if any) answers, then select `experiment`: before any compute that logs directly."""
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
        first_line = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise TrackingUnavailable(f"MLflow at {where}: cannot use experiment '{experiment}': {first_line}") from None
