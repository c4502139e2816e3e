"""A sweep's outcome from `dvc exp show --json`: which points ran or failed, and the points ranked by the metric.

Pure functions over the parsed JSON and `lib.experiments.exp_show_frame` rows, so they are unit-tested
without DVC; `sweeps/runner.py` fetches the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lib.errors import ReprolabError
from sweeps.grid import Point, Sweep, override_value

if TYPE_CHECKING:
    import pandas as pd

DONE, FAILED, MISSING = "done", "failed", "missing"


def experiment_states(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """For each of `names`: `done` (it ran), `failed` (DVC recorded an error) or `missing` (not in the records)."""
    found: dict[str, str] = {}
    for record in records:
        for experiment in record.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                name = experiment.get("name") or revision.get("name")
                if name in names:
                    found[name] = FAILED if revision.get("error") else DONE
    return {name: found.get(name, MISSING) for name in names}


def ranking(frame: pd.DataFrame, sweep: Sweep, grid: Sequence[Point]) -> pd.DataFrame:
    """The points of `grid` that ran, best first by the sweep's metric, with their swept params.

    Args:
        frame: `lib.experiments.exp_show_frame` rows (one per experiment, `params.*` and `metrics.*`).
        sweep: the sweep, for its metric and order.
        grid: the sweep's points, for their names and params.

    Returns:
        Columns `rank`, `experiment`, one per swept key (its last part), and the metric; points without a
        value for the metric come last, unranked.
    """
    import pandas as pd

    column = f"metrics.{sweep.metric}"
    runs = frame[(frame["kind"] == "experiment") & frame["name"].isin([point.name for point in grid])]
    if not runs.empty and column not in runs.columns:
        known = sorted(name.removeprefix("metrics.") for name in frame.columns if name.startswith("metrics."))
        raise ReprolabError(f"{sweep.source}: metric: no metric {sweep.metric} (metrics: {', '.join(known)})")
    values = dict(zip(runs["name"], runs[column], strict=True)) if not runs.empty else {}
    rows = []
    for point in grid:
        if point.name not in values:
            continue
        value = pd.to_numeric(values[point.name], errors="coerce")
        rows.append(
            {
                "experiment": point.name,
                **{key.rsplit(".", 1)[-1]: override_value(item) for key, item in point.params.items()},
                sweep.metric: value,
            }
        )
    table = pd.DataFrame(rows, columns=["experiment", *(key.rsplit(".", 1)[-1] for key in sweep.grid), sweep.metric])
    table = table.sort_values(sweep.metric, ascending=not sweep.maximize, na_position="last", kind="stable")
    ranks = [str(rank) for rank in range(1, table[sweep.metric].notna().sum() + 1)]
    table.insert(0, "rank", ranks + ["-"] * table[sweep.metric].isna().sum())
    return table.reset_index(drop=True)


def markdown_table(frame: pd.DataFrame) -> str:
    """`frame` as a Markdown table (floats with 4 decimals, missing values as `-`)."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(str(column) for column in frame.columns) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
