"""How each stage grows with the data: wall time and peak memory at 10 thousand to 1 million rows.

The data is `prepare_data`'s synthetic source (scikit-learn's make_classification, 30 features). The
classifiers are the ones that suit large tables (k-NN and the SVM are skipped by their
`max_train_rows`), and the network trains for a few epochs with large batches. Each stage runs as its
own process under GNU time, in a throw-away copy of the project.

    .venv/bin/python -m benchmarks.scale --rows 10000 100000 1000000 --repeats 3 --out lab/docs/benchmarks-scale.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from benchmarks.pipeline_speed import STAGES
from tests.support import clean_env, make_project_copy, shrunk_params

SCALE_PARAMS = {
    "prepare_data": {"source": "sklearn:make_classification", "synthetic_features": 30},
    "train_standard_classifiers": {
        "models": ["logistic_regression", "naive_bayes", "knn", "linear_svm", "gradient_boosting"],
        "cv_folds": 3,
        "max_train_rows": {"knn": 50_000, "linear_svm": 200_000},
        "hyperparams": {"gradient_boosting": {"max_iter": 50}},
    },
    "train_dnn_pytorch": {"epochs": 3, "batch_size": 1024, "hidden_layers": [64, 32]},
}
# What was changed for scale, with what each change measured when it was made (kept in the report).
CHANGES = """\
- Splits are written to Parquet without dictionary encoding for float columns (`lib/datasets.write_split`).
  Profiling `prepare_data` at 1 million rows showed a third of its own work in `pyarrow.parquet.write_table`:
  pyarrow first tries a dictionary for every column, which continuous features never repeat enough to
  use. Writing a 600,000 x 30 float32 split went from 1.43 s to 0.32 s (4.5x), the file from 89 MB to 73 MB;
  reading it is as fast. Columns that are not floats (categories, the target) keep their dictionaries.
- The synthetic source's features are float32, as the network consumes them: half the memory of
  scikit-learn's float64 for every copy `prepare_data` makes.
- k-NN and the calibrated linear SVM, whose cost grows faster than the rows, are skipped above
  `train_standard_classifiers.max_train_rows` (50,000 and 200,000 train rows) with one log line naming the
  classifier, its rows and the threshold.
- ROC plot data is thinned to at most 1,000 points: before, `roc.csv` held one row per distinct score,
  up to the size of the test split (200,000 rows at 1 million), and `dvc plots show` embedded all of them.
- Not changed: at 1 million rows `train_standard_classifiers` is mostly scikit-learn's histogram gradient
  boosting (its 3 cross-validation fits and the final fit were about 80% of the stage in a profile), and
  the network is its epochs; neither has a per-sample Python loop or a copy left to remove.
"""
TARGET_SECONDS = 300
TARGET_MIB = 4096


def run_stage(project: Path, module: str) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one stage process, measured by GNU time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M", "python", "-m", module],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{done.stderr[-3000:]}")
    seconds, kib = done.stderr.strip().splitlines()[-1].split()[1:]
    return float(seconds), int(kib) / 1024


def measure(sizes: Sequence[int], repeats: int) -> dict[int, dict[str, tuple[float, float]]]:
    """{rows: {stage: (median seconds, largest peak MiB)}} for every size, over `repeats` pipeline runs."""
    results: dict[int, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for rows in sizes:
            overrides = {**SCALE_PARAMS, "prepare_data": {**SCALE_PARAMS["prepare_data"], "synthetic_rows": rows}}
            project = make_project_copy(Path(scratch) / f"rows-{rows}", shrunk_params(overrides))
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in STAGES}
            for _ in range(repeats):  # the whole chain each time: later stages read what prepare_data wrote
                for name, module in STAGES.items():
                    samples[name].append(run_stage(project, module))
            results[rows] = {
                name: (statistics.median(s for s, _ in runs), max(m for _, m in runs)) for name, runs in samples.items()
            }
            print(rows, samples, file=sys.stderr, flush=True)
    return results


def report(results: dict[int, dict[str, tuple[float, float]]], repeats: int) -> str:
    """The markdown page."""
    sizes = sorted(results)
    lines = []
    for name in STAGES:
        previous = None
        for rows in sizes:
            seconds, mib = results[rows][name]
            growth = f"{seconds / previous[0]:.1f}x | {mib / previous[1]:.1f}x" if previous else "- | -"
            lines.append(f"| {name} | {rows:,} | {seconds:.1f} | {mib:.0f} | {growth} |")
            previous = (seconds, mib)
    totals = "\n".join(
        f"| {rows:,} | {sum(s for s, _ in results[rows].values()):.1f} "
        f"| {max(m for _, m in results[rows].values()):.0f} |"
        for rows in sizes
    )
    return f"""# Scale

Measured {date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}. Seconds are the
median of {repeats} runs of the whole chain per size; peak MiB is the largest of those runs. Targets: the whole
pipeline at 1 million rows under {TARGET_SECONDS} s with every stage under {TARGET_MIB} MiB,
and 10x rows costing at most ~10x time.
Reproduce: `.venv/bin/python -m benchmarks.scale --rows {" ".join(str(s) for s in sizes)} --repeats {repeats}
--out lab/docs/benchmarks-scale.md`.

Params on top of the committed ones: `{SCALE_PARAMS}`.

## The pipeline

| rows | seconds, all stages | peak MiB, largest stage |
|---|---|---|
{totals}

## What was changed for scale

{CHANGES}
## Per stage (growth: time and memory against the previous size)

| stage | rows | seconds | peak MiB | time growth | memory growth |
|---|---|---|---|---|---|
{chr(10).join(lines)}
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every size and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="pipeline runs per size; the report shows medians")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    text = report(measure(args.rows, args.repeats), args.repeats)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
