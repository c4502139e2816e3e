"""The launch workflow's job summary, in Markdown on stdout: what ran, what changed, where the runs are.

Run from the repository root after `dvc repro`, in the workflow's environment (GITHUB_REF_NAME,
GITHUB_SHA, REPROLAB_PIPELINE_RUN_ID, MLFLOW_TRACKING_URI):

    python .ci/job_summary.py >>"$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml


def _command(args: Sequence[str]) -> str | None:
    """stdout of `args`, stripped, or None when the command fails."""
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def parent_commit(commit: str) -> str | None:
    """The first parent of `commit` as a short SHA, or None for a root commit."""
    return _command(["git", "rev-parse", "--verify", "--quiet", "--short", f"{commit}^"])


def params_section(parent: str | None) -> str:
    """The params that differ from the parent commit's, as a Markdown table."""
    if parent is None:
        return "No parent commit to compare with."
    table = _command(["dvc", "params", "diff", parent, "--md"])
    return table or f"None: the same as in `{parent}`."


def metrics_section(parent: str | None) -> str:
    """Every metric, with its value at the parent commit and the change, as a Markdown table."""
    if parent is None:
        return _command(["dvc", "metrics", "show", "--md"]) or "No metrics."
    return _command(["dvc", "metrics", "diff", parent, "--all", "--md"]) or "No metrics."


def mlflow_section(uri: str, experiment: str, pipeline_run_id: str) -> str:
    """Links to this pipeline run's MLflow runs (stage runs and their nested runs)."""
    # A server that does not answer costs the summary seconds, not MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        runs = (
            client.search_runs(
                [found.experiment_id],
                filter_string=f"tags.pipeline_run_id = '{pipeline_run_id}'",
                order_by=["attributes.start_time ASC"],
                max_results=1000,
            )
            if found is not None
            else []
        )
    except Exception as exc:  # the summary reports what it cannot reach; the results are already safe
        return f"Could not read the runs from {uri}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if not runs:
        return f"No MLflow runs with `pipeline_run_id` `{pipeline_run_id}` (no stage ran)."
    base = uri.rstrip("/")
    lines = ["| stage | run | status |", "|---|---|---|"]
    for run in runs:
        tags = run.data.tags
        link = f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        name = tags.get("mlflow.runName", run.info.run_id)
        nested = "↳ " if "mlflow.parentRunId" in tags else ""
        lines.append(f"| {tags.get('dvc.stage', '')} | {nested}[{name}]({link}) | {run.info.status} |")
    return "\n".join(lines)


def summary(tag: str, commit: str, pipeline_run_id: str, uri: str, experiment: str) -> str:
    """The whole summary."""
    parent = parent_commit(commit)
    subject = _command(["git", "log", "-1", "--format=%s", commit]) or ""
    parent_note = f", parent `{parent}`" if parent else ""
    return "\n\n".join(
        [
            f"## {tag}",
            f"Commit `{commit[:8]}` ({subject}){parent_note}; pipeline run `{pipeline_run_id}`.",
            "### Params changed since the parent commit",
            params_section(parent),
            "### Metrics, against the parent commit",
            metrics_section(parent),
            f"### MLflow runs (experiment `{experiment}`)",
            mlflow_section(uri, experiment, pipeline_run_id),
        ]
    )


def main() -> None:
    """Print the summary for the run described by the workflow's environment."""
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    print(
        summary(
            tag=os.environ["GITHUB_REF_NAME"],
            commit=os.environ["GITHUB_SHA"],
            pipeline_run_id=os.environ["REPROLAB_PIPELINE_RUN_ID"],
            uri=os.environ["MLFLOW_TRACKING_URI"],
            experiment=params["tracking"]["experiment"],
        )
    )


if __name__ == "__main__":
    main()
