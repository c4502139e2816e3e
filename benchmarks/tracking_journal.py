"""Tracking's cost, paired: each stage, its floor and `dvc repro -f` with the run journal against direct logging
(`REPROLAB_TRACKING=direct`), in one project copy and in alternating order so both see the same machine and load.
"""

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from statistics import median

import pandas as pd
import yaml

from benchmarks.pipeline_speed import FLOOR_IMPORTS, STAGES, SYNC, TRACKED_RUN, cli, machine, timed
from lib.paths import PARAMS_FILE
from tests.support import make_project_copy

MODES = ("direct", "journal")


def measure(repeats: int) -> dict[tuple[str, str], float]:
    """Median seconds per (measurement, mode) over `repeats` paired runs."""
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        project = make_project_copy(Path(scratch) / "project", yaml.safe_load(PARAMS_FILE.read_text()))
        timed(["dvc", "repro"], project, REPROLAB_TRACKING="direct")  # creates the store; outputs for the stages alone
        commands = {"dvc repro -f": ["dvc", "repro", "-f"]}
        commands |= {f"stage {name}": ["python", "-m", module] for name, module in STAGES.items()}
        commands |= {
            f"floor {name}": ["python", "-c", imports + TRACKED_RUN.format(stage=name)]
            for name, imports in FLOOR_IMPORTS.items()
        }
        for repeat in range(repeats):
            for mode in MODES if repeat % 2 == 0 else reversed(MODES):
                for name, command in commands.items():
                    samples[name, mode].append(timed(command, project, REPROLAB_TRACKING=mode)[0])
                    if mode == "journal" and name == "dvc repro -f":
                        samples["sync after dvc repro -f", mode].append(timed(SYNC, project, REPROLAB_TRACKING=mode)[0])
                timed(SYNC, project, REPROLAB_TRACKING=mode)  # nothing left behind for the next round
    return {key: median(values) for key, values in samples.items()}


def report(figures: dict[tuple[str, str], float], repeats: int) -> str:
    """The markdown page for lab/docs."""
    names = ["dvc repro -f", *(f"{kind} {name}" for kind in ("stage", "floor") for name in STAGES)]
    table = pd.DataFrame(
        {mode: [figures[(name, mode)] for name in names] for mode in MODES}, index=pd.Index(names, name="seconds")
    )
    table["journal / direct"] = (table["journal"] / table["direct"]).map("{:.2f}x".format)
    catch_up = figures[("sync after dvc repro -f", "journal")]
    return f"""# Tracking's cost: run journal against direct logging

Measured {date.today().isoformat()} on {machine()}. Median of {repeats} paired runs in one copy of the
project with the committed `params.yaml`, the two ways in alternating order. Reproduce with `make bench`
or `.venv/bin/python -m benchmarks.tracking_journal --repeats {repeats} --out lab/docs/benchmarks-tracking.md`.

{table.to_markdown(floatfmt=".2f")}

A stage's floor is a process that imports what the stage needs and records one empty run: with the
journal, that run is a few appended lines and a detached sync; with direct logging, importing mlflow and
opening the store come on top. A stage does not wait for its sync (`REPROLAB_STAGE_SYNC_WAIT`, 0 by
default): after `dvc repro -f` with the journal returns, `python -m lib.tracking.sync --wait` (what
`make run` does) found the background syncs done or finished them in {catch_up:.2f} s more, and MLflow then
had every run.
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and write the report."""
    cli(__doc__, measure, report, argv)


if __name__ == "__main__":
    main()
