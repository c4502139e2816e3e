"""What grid sweeps and the Optuna search share: a point's result, its MLflow runs, and the ranked table
(lab/docs/decisions/0009-one-search-mechanism.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DONE, FAILED, PRUNED, MISSING = "done", "failed", "pruned", "missing"


@dataclass(frozen=True)
class Result:
    """One point's outcome: its name, its params.yaml values, the metric's value and its MLflow runs."""

    name: str  # the DVC experiment or the Optuna trial
    params: Mapping[str, Any]  # dotted params.yaml key -> value (a grid point's values as DVC's -S text)
    value: float | None  # the metric; None when the point did not finish
    state: str = DONE  # done, failed, pruned or missing (never ran)
    runs: str = ""  # its MLflow runs (`run_links`)


def run_links(
    experiment: str, tracking_uri: str | None, filter_string: str, key: str, nested: bool = False
) -> dict[str, str]:
    """The runs of `experiment` that match `filter_string` (nested runs only when `nested`), per value of
    their tag `key` (which names the point), as `link`s; of a stage's runs only the latest: a point run again
    under its name, or restored from DVC's run cache, holds that run's results."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        return {}
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string, max_results=10_000)
    links: dict[str, dict[str, str]] = {}
    for run in runs.sort_values("start_time").to_dict("records"):
        if nested or not isinstance(run.get("tags.mlflow.parentRunId"), str):
            links.setdefault(run[f"tags.{key}"], {})[run.get("tags.dvc.stage")] = link(tracking_uri, run)
    return {name: " ".join(stages.values()) for name, stages in links.items()}


def link(tracking_uri: str | None, run: Mapping[str, Any]) -> str:
    """A `mlflow.search_runs` row as a Markdown link to its page, labelled with its stage, when the store is
    a server; else its id (a local store's runs show under `mlflow ui`)."""
    from lib.tracking.runs import is_server, run_url

    if not is_server(tracking_uri):
        return run["run_id"][:12]
    return f"[{run.get('tags.dvc.stage') or 'run'}]({run_url(tracking_uri, run['experiment_id'], run['run_id'])})"


def ranked_table(results: Sequence[Result], metric: str, maximize: bool) -> str:
    """The results as a Markdown table, best first by `metric`: rank, point, one column per param (its
    key's last part), the metric, the state and the MLflow runs. Points without a value come last, unranked."""
    import pandas as pd

    keys = list(dict.fromkeys(key for result in results for key in result.params))
    names = [key.rsplit(".", 1)[-1] for key in keys]
    rows = [
        [result.name, *(_cell(result.params.get(key)) for key in keys), result.value, result.state, result.runs]
        for result in results
    ]
    table = pd.DataFrame(rows, columns=["point", *names, metric, "state", "MLflow"])
    table[metric] = pd.to_numeric(table[metric], errors="coerce")
    table = table.sort_values(metric, ascending=not maximize, na_position="last", kind="stable")
    table.insert(0, "rank", [str(rank) if value == value else "-" for rank, value in enumerate(table[metric], 1)])
    table[metric] = [f"{value:.4f}" if value == value else "-" for value in table[metric]]
    return table.to_markdown(index=False, disable_numparse=True)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value).replace("|", "\\|")
