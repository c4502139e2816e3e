"""The launch workflow's job summary, in Markdown on stdout: what ran, what changed, where the runs are.

Run from the repository root after `dvc repro`, with GITHUB_REF_NAME, GITHUB_SHA, REPROLAB_PIPELINE_RUN_ID and
MLFLOW_TRACKING_URI set: `python .ci/job_summary.py >>"$GITHUB_STEP_SUMMARY"`
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml


def _command(*args: str) -> str | None:
    """stdout of the command, stripped, or None when it fails."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def mlflow_section(uri: str, experiment: str, pipeline_run_id: str) -> str:
    """Links to this pipeline run's MLflow runs (stage runs and their nested runs)."""
    # A server that does not answer costs the summary seconds, not MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        query = f"tags.pipeline_run_id = '{pipeline_run_id}'"
        order = ["attributes.start_time ASC"]
        runs = found and client.search_runs([found.experiment_id], query, max_results=1000, order_by=order)
    except Exception as exc:  # the summary reports what it cannot reach; the results are already safe
        return f"Could not read the runs from {uri}: {(str(exc) or type(exc).__name__).splitlines()[0]}"
    if not runs:
        return f"No MLflow runs with `pipeline_run_id` `{pipeline_run_id}` (no stage ran)."
    lines = ["| stage | run | status |", "|---|---|---|"]
    for run in runs:
        tags, info = run.data.tags, run.info
        link = f"{uri.rstrip('/')}/#/experiments/{info.experiment_id}/runs/{info.run_id}"
        nested = "↳ " if "mlflow.parentRunId" in tags else ""
        name = tags.get("mlflow.runName", info.run_id)
        lines.append(f"| {tags.get('dvc.stage', '')} | {nested}[{name}]({link}) | {info.status} |")
    return "\n".join(lines)


def summary(tag: str, commit: str, pipeline_run_id: str, uri: str, experiment: str) -> str:
    """The whole summary: the commit, params and metrics against its first parent, and the MLflow runs."""
    parent = _command("git", "rev-parse", "--verify", "--quiet", "--short", f"{commit}^")  # None: a root commit
    if parent is None:
        params, metrics = "No parent commit to compare with.", _command("dvc", "metrics", "show", "--md")
    else:
        params = _command("dvc", "params", "diff", parent, "--md") or f"None: the same as in `{parent}`."
        metrics = _command("dvc", "metrics", "diff", parent, "--all", "--md")
    subject = _command("git", "log", "-1", "--format=%s", commit) or ""
    parent_note = f", parent `{parent}`" if parent else ""
    return "\n\n".join(
        [
            f"## {tag}",
            f"Commit `{commit[:8]}` ({subject}){parent_note}; pipeline run `{pipeline_run_id}`.",
            "### Params changed since the parent commit",
            params,
            "### Metrics, against the parent commit",
            metrics or "No metrics.",
            f"### MLflow runs (experiment `{experiment}`)",
            mlflow_section(uri, experiment, pipeline_run_id),
        ]
    )


def main() -> None:
    """Print the summary for the run described by the workflow's environment."""
    experiment = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["tracking"]["experiment"]
    names = ("GITHUB_REF_NAME", "GITHUB_SHA", "REPROLAB_PIPELINE_RUN_ID", "MLFLOW_TRACKING_URI")
    print(summary(*(os.environ[name] for name in names), experiment))


if __name__ == "__main__":
    main()
