"""Provenance: the tags that tie a run to its code, its launch and its pipeline run."""

import contextlib
import os
import socket
import uuid
from functools import cache

from lib.git import git

ENV_PIPELINE_RUN_ID = "REPROLAB_PIPELINE_RUN_ID"
ENV_BRANCH = "REPROLAB_GIT_BRANCH"
_PIPELINE_NAMESPACE = uuid.UUID("6f1d2b8e-5c0a-4b7e-9a51-3f0c2d9e7a10")


def _dvc_ancestor() -> tuple[int, float] | None:
    """(pid, start time) of the `dvc repro` / `dvc exp run` process running this stage, if any."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for process in psutil.Process().parents():
            command = process.cmdline()
            if "dvc" in [os.path.basename(part) for part in command[:3]] and {"repro", "exp"} & set(command):
                return process.pid, process.create_time()
    return None


@cache
def pipeline_run_id() -> str:
    """One id shared by every stage of a pipeline run: `REPROLAB_PIPELINE_RUN_ID` (make run and CI set it),
    else derived from the `dvc repro` process running the stages; a stage run by hand gets its own."""
    if os.environ.get(ENV_PIPELINE_RUN_ID):
        return os.environ[ENV_PIPELINE_RUN_ID]
    ancestor = _dvc_ancestor()
    if ancestor is None:
        return uuid.uuid4().hex
    pid, started = ancestor
    return uuid.uuid5(_PIPELINE_NAMESPACE, f"{socket.gethostname()}:{pid}:{started}").hex


def run_tags(stage: str, device: str | None = None) -> dict[str, str]:
    """Tags tying a run to its code, launch and pipeline run."""
    commit = os.environ.get("GITHUB_SHA") or git("rev-parse", "HEAD") or "unknown"
    branch = (
        os.environ.get(ENV_BRANCH)
        or os.environ.get("GITHUB_HEAD_REF")
        or (os.environ.get("GITHUB_REF_NAME") if os.environ.get("GITHUB_REF_TYPE") == "branch" else None)
        or git("rev-parse", "--abbrev-ref", "HEAD")
        or "unknown"
    )
    # dvc.lock and the git-tracked metrics change while `dvc repro` runs: they are results, not code.
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)dvc.lock", ":(exclude)metrics")
    tags = {
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.branch": branch,
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        "dvc.stage": stage,
        "pipeline_run_id": pipeline_run_id(),
        "runner": os.environ.get("RUNNER_NAME") or socket.gethostname(),
        "git.tag": os.environ.get("GITHUB_REF_NAME") if os.environ.get("GITHUB_REF_TYPE") == "tag" else None,
        "dvc.experiment": os.environ.get("DVC_EXP_NAME"),
        "device": device,
    }
    return {name: value for name, value in tags.items() if value}  # the optional ones only when known
