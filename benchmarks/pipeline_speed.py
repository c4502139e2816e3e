"""How fast the example pipeline runs, next to its floor (the same DVC stages that only import what each
stage needs and record a run as the stages do), in throw-away project copies; Linux only (GNU time,
/proc/cpuinfo). Also the benchmarks' shared harness: `timed`, `machine`, `cli`.
"""

import argparse
import os
import platform
import pstats
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import date
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd
import yaml

from lib.paths import PARAMS_FILE
from tests.support import make_project_copy, run

STAGES = {
    name: f"lab.processes.{name}.main" for name in ("prepare_data", "train_standard_classifiers", "train_dnn_pytorch")
}
# What each stage must import before it can do anything: the floor's stage commands import these.
FLOOR_IMPORTS = {
    "prepare_data": "import pandas, pyarrow.parquet, sklearn.datasets, sklearn.model_selection",
    "train_standard_classifiers": "import pandas, pyarrow.parquet, sklearn.ensemble, sklearn.linear_model, "
    "matplotlib.figure",
    "train_dnn_pytorch": "import pandas, pyarrow.parquet, matplotlib.figure, torch; "
    "torch.optim.Adam(torch.nn.Linear(1, 1).parameters())",
}
# A stage's tracking: one empty run recorded in its journal, which a detached sync replays into MLflow.
TRACKED_RUN = "\nfrom lib.tracking import runs\nwith runs.journal_run('{stage}', 'floor', {{}}):\n    pass\n"
SYNC = ["python", "-m", "lib.tracking.sync", "--wait", "600"]  # waits for the syncs a command left running
TRACKING_CODE = re.compile("/site-packages/mlflow/|/lib/tracking/")
ANCESTOR_SECONDS = 18.0  # the same three stages in the template reprolab descends from (issue figure)


def timed(args: Sequence[str], cwd: Path, **env: str) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one command with `env`, as GNU time reports them; it must succeed."""
    done = run(["/usr/bin/time", "-f", "%e %M", *args], cwd, timeout=3600, **env)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    seconds, kib = done.stderr.split()[-2:]
    return float(seconds), int(kib) / 1024


def drained(args: Sequence[str], cwd: Path, **env: str) -> float:
    """Wall seconds of one command, as `timed`; then, not counted, the syncs it left running are waited for."""
    seconds = timed(args, cwd, **env)[0]
    timed(SYNC, cwd, **env)
    return seconds


def machine() -> str:
    """Cores, CPU model, Python and the main libraries' versions."""
    cpu = re.search(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())
    versions = [f"{name} {metadata.version(name)}" for name in ("dvc", "mlflow", "torch", "scikit-learn", "pandas")]
    cpu_name = cpu[1] if cpu else platform.machine()
    return f"{os.cpu_count()} cores ({cpu_name}), Python {platform.python_version()}, {', '.join(versions)}"


def tracking_share(project: Path, module: str) -> tuple[float, float]:
    """(cumulative seconds of the project's calls into lib/tracking/ or MLflow, total) of `module` under cProfile."""
    drained(["python", "-m", "cProfile", "-o", "stage.prof", "-m", module], project)
    stats = pstats.Stats(str(project / "stage.prof"))
    spent = sum(
        timing[3]
        for function, (*_, callers) in stats.stats.items()  # type: ignore[attr-defined]
        if TRACKING_CODE.search(function[0])
        for caller, timing in callers.items()
        if caller[0].startswith(str(project)) and not TRACKING_CODE.search(caller[0])
    )
    return spent, stats.total_tt  # type: ignore[attr-defined]


def floor_project(root: Path) -> Path:
    """A DVC project of three chained stages that only import and record a run (`lib` on PYTHONPATH)."""
    stages, deps = {}, []
    root.mkdir(parents=True)
    for name, imports in FLOOR_IMPORTS.items():
        code = f"{imports}{TRACKED_RUN.format(stage=name)}open('{name}.out', 'w').write('done')\n"
        (root / f"{name}.py").write_text(code)
        stages[name] = {"cmd": f"python {name}.py", "deps": [f"{name}.py", *deps], "outs": [f"{name}.out"]}
        deps = [f"{name}.out"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        timed(command, root)
    return root


def measure(repeats: int) -> dict[str, float]:
    """Every figure of the report: median seconds over `repeats` runs, each run's syncs finished before the next."""
    with tempfile.TemporaryDirectory() as scratch:
        project = make_project_copy(Path(scratch) / "project", yaml.safe_load(PARAMS_FILE.read_text()))
        floor, on_path = floor_project(Path(scratch) / "floor"), {"PYTHONPATH": str(project)}
        figures = {"first dvc repro": drained(["dvc", "repro"], project)}
        drained(["dvc", "repro"], floor, **on_path)
        commands = {
            "dvc repro -f": ["dvc", "repro", "-f"],
            "dvc repro, nothing changed": ["dvc", "repro"],
            **{f"stage {name}": ["python", "-m", module] for name, module in STAGES.items()},
            **{f"dvc repro {name}, nothing changed": ["dvc", "repro", "--single-item", name] for name in STAGES},
            **{f"{name} --help": ["python", "-m", module, "--help"] for name, module in STAGES.items()},
            "python start-up": ["python", "-c", "pass"],
            "a tracked empty run": ["python", "-c", TRACKED_RUN.format(stage="empty")],
            **{
                f"floor {name}": ["python", "-c", imports + TRACKED_RUN.format(stage=name)]
                for name, imports in FLOOR_IMPORTS.items()
            },
        }
        for name, command in commands.items():
            figures[name] = median(drained(command, project) for _ in range(repeats))
        floor_runs = [drained(["dvc", "repro", "-f"], floor, **on_path) for _ in range(repeats)]
        figures["floor dvc repro -f"] = median(floor_runs)
        for name, module in STAGES.items():
            shares = [tracking_share(project, module) for _ in range(repeats)]
            figures[f"profiled {name}"] = median(total for _, total in shares)
            figures[f"profiled, in tracking {name}"] = median(spent for spent, _ in shares)
    return figures


def report(figures: dict[str, float], repeats: int) -> str:
    """The markdown page for lab/docs."""
    full, floor = figures["dvc repro -f"], figures["floor dvc repro -f"]
    tracked, noop = figures["a tracked empty run"], figures["dvc repro, nothing changed"]
    columns = {"stage": "alone", "floor": "floor", "profiled": "profiled", "profiled, in tracking": "in tracking"}
    stages = pd.DataFrame({column: [figures[f"{kind} {name}"] for name in STAGES] for kind, column in columns.items()})
    stages.index = pd.Index(list(STAGES), name="stage")
    stages.insert(2, "work on top", stages["alone"] - stages["floor"])
    stages["tracking's share"] = (stages["in tracking"] / stages["profiled"]).map("{:.0%}".format)
    every = pd.Series(figures, name="seconds").rename_axis("measurement")
    return f"""# Pipeline speed

Measured {date.today().isoformat()} on {machine()}. Each figure is the median of {repeats} runs, in
seconds, in a throw-away copy of the project with the committed `params.yaml` (the full example:
6 classifiers with 5-fold CV, 50 epochs), tracked as by default: each run recorded in its journal and
replayed into the local MLflow store by a background sync, which is waited for after each measured command
and not counted. Reproduce with `make bench`, or
`.venv/bin/python -m benchmarks.pipeline_speed --repeats {repeats} --out lab/docs/benchmarks.md`.

| | seconds |
|---|---|
| `dvc repro -f`, the whole example | {full:.2f} |
| the floor: the same three DVC stages that only import their libraries and record an empty run | {floor:.2f} |
| example / floor | {full / floor:.2f} |
| example / the ancestor's {ANCESTOR_SECONDS:.0f} s (issue figure, other hardware) | {full / ANCESTOR_SECONDS:.2f} |

## Per stage

Each stage alone, its floor (imports + an empty tracked run) and the work on top. Then the stage under
cProfile, which slows Python-heavy code: the time its code spends in calls into `lib/tracking/` and MLflow
(recording the run, its params, per-epoch metrics, PNGs and model) against the whole profiled process.

{stages.to_markdown(floatfmt=".2f")}

## Where the time goes

- Tracking alone (Python, importing `lib.tracking`, an empty run in a journal, starting its sync) costs
  {tracked:.2f} s in each stage process, {3 * tracked / full:.0%} of the forced run. The stages never import mlflow:
  the sync does, in its own process.
- The rest of the floor is importing pandas, scikit-learn, torch and matplotlib. The first torch
  optimiser imports `torch._dynamo`, which costs as much again as importing torch. It cannot be
  removed while the network uses `torch.optim`: torch 2.13's `Optimizer.__init__` calls `add_param_group`,
  which `torch._disable_dynamo` wraps so that its first call imports `torch._dynamo`, and every `step()`
  goes through `_use_grad_for_differentiable`, which imports it too, whatever `foreach`/`fused` say. Only an
  optimiser written outside `torch.optim` would avoid it, at the price of other numerics than Adam's.
- The paired comparison against logging straight to MLflow from the stage (`REPROLAB_TRACKING=direct`)
  is in [benchmarks-tracking.md](benchmarks-tracking.md) (`make bench`).
- `dvc repro` with nothing to do takes {noop:.2f} s: DVC's own floor for reading the pipeline and checking hashes.
- Against the issue's 9 s target, the floor alone takes {floor:.2f} s while each stage runs in its own
  Python process and records its run. What is left to trim is the work on top of it: {full - floor:.2f} s for
  cross-validating six classifiers, training 50 epochs, drawing six PNGs and logging two models.

## Every figure

{every.to_markdown(floatfmt=".2f")}
"""


def cli(
    doc: str, measure: Callable[..., Any], report: Callable[[Any, int], str], argv: Sequence[str] | None, **options: Any
) -> None:
    """A benchmark's command line: `--repeats` and `--{name}` per `options` (`add_argument` keywords) go to
    `measure`; its report is printed and written to `--out`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write (default: print only)")
    for name, keywords in options.items():
        parser.add_argument(f"--{name}", **keywords)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    text = report(measure(**args), args["repeats"])
    print(text)
    if out is not None:
        out.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and write the report."""
    cli(__doc__, measure, report, argv)


if __name__ == "__main__":
    main()
