"""How each stage grows with the data: wall time and peak memory at 10 thousand to 1 million rows.

`prepare_data`'s synthetic source with categorical columns and empty cells; each stage runs alone in a project copy.
"""

import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from benchmarks.pipeline_speed import STAGES, cli, machine, timed
from tests.support import make_project_copy, shrunk_params

SCALE_PARAMS = {
    # As a real table: 3 of the 30 features categorical (8 levels each), 5% of the feature cells empty.
    "prepare_data": {
        "source": "sklearn:make_classification",
        "synthetic_features": 30,
        "synthetic_categorical": 3,
        "synthetic_missing": 0.05,
    },
    "train_standard_classifiers": {
        "models": ["logistic_regression", "naive_bayes", "knn", "linear_svm", "gradient_boosting"],
        "cv_folds": 3,
        "max_train_rows": {"knn": 50_000, "linear_svm": 200_000},
        "hyperparams": {"gradient_boosting": {"max_iter": 50}},
    },
    "train_dnn_pytorch": {"epochs": 3, "batch_size": 1024, "hidden_layers": [64, 32]},
}
TARGET_SECONDS = 300
TARGET_MIB = 4096
STAGE_ORDER = pd.CategoricalDtype(list(STAGES), ordered=True)


def measure(rows: Sequence[int], repeats: int) -> pd.DataFrame:
    """Per stage and size: median seconds and the largest peak MiB over `repeats` runs of the whole chain."""
    samples = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in rows:
            params = {**SCALE_PARAMS, "prepare_data": {**SCALE_PARAMS["prepare_data"], "synthetic_rows": size}}
            project = make_project_copy(Path(scratch) / f"rows-{size}", shrunk_params(params))
            for _ in range(repeats):  # the whole chain each time: later stages read what prepare_data wrote
                samples += [(name, size, *timed(["python", "-m", module], project)) for name, module in STAGES.items()]
    table = pd.DataFrame(samples, columns=["stage", "rows", "seconds", "mib"]).astype({"stage": STAGE_ORDER})
    return table.groupby(["stage", "rows"], observed=True).agg({"seconds": "median", "mib": "max"}).reset_index()


def report(results: pd.DataFrame, repeats: int) -> str:
    """The markdown page."""
    ratio = results[["seconds", "mib"]] / results.groupby("stage", observed=True)[["seconds", "mib"]].shift()
    growth = ratio.map(lambda value: "-" if pd.isna(value) else f"{value:.1f}x")
    stages = results.rename(columns={"mib": "peak MiB"}).join(growth.set_axis(["time growth", "memory growth"], axis=1))
    pipeline = results.groupby("rows").agg({"seconds": "sum", "mib": "max"})
    sizes = " ".join(str(rows) for rows in pipeline.index)
    names = {"seconds": "seconds, all stages", "mib": "peak MiB, largest stage"}
    return f"""# Scale

Measured {date.today().isoformat()} on {machine()}. Seconds are the median of {repeats} runs of the
whole chain per size; peak MiB is the largest of those runs. Targets: the whole pipeline at 1 million
rows under {TARGET_SECONDS} s with every stage under {TARGET_MIB} MiB, and 10x rows costing at most ~10x time.
Reproduce: `.venv/bin/python -m benchmarks.scale --rows {sizes} --repeats {repeats}
--out lab/docs/benchmarks-scale.md`. What was changed for scale: [scale-changes.md](scale-changes.md).

Params on top of the committed ones: `{SCALE_PARAMS}`.

## The pipeline

{pipeline.rename(columns=names).to_markdown(floatfmt=(",", ".1f", ".0f"), intfmt=",")}

## Per stage (growth: time and memory against the previous size)

{stages.to_markdown(index=False, floatfmt=("", "", ".1f", ".0f"), intfmt=",")}
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every size and write the report."""
    cli(__doc__, measure, report, argv, rows={"type": int, "nargs": "+", "default": [10_000, 100_000, 1_000_000]})


if __name__ == "__main__":
    main()
