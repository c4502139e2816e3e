"""Grid sweeps as DVC experiments, logged to MLflow.

    python -m sweeps.main run sweeps/dnn_lr.yaml --jobs 2       # make sweep SWEEP=sweeps/dnn_lr.yaml JOBS=2
    python -m sweeps.main matrix --tag sweep-dnn_lr             # the sweep workflow: the grid as a JSON matrix
    python -m sweeps.main point --tag sweep-dnn_lr --index 3    # ... one point, in this workspace
    python -m sweeps.main summary --tag sweep-dnn_lr --out sweep-summary.md   # ... all points, ranked

Run from the project root. Exit status 1 when an experiment failed, 2 for a bad sweep file or params.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from lib import cli
from lib.errors import ReprolabError
from sweeps import grid
from sweeps.search import DONE, ranked_table


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("Grid sweeps as DVC experiments, logged to MLflow.")
    parser.add_argument("--sweeps", type=Path, default=Path("sweeps"), help="sweep files folder (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="queue every point and run them on this machine")
    run.add_argument("sweep", type=Path, help="the sweep file")
    run.add_argument("--jobs", type=int, default=1, help="experiments run at the same time (default: %(default)s)")
    tag = argparse.ArgumentParser(add_help=False)  # what the sweep workflow's commands share
    tag.add_argument("--tag", required=True, help="the sweep-* tag: names the sweep file")
    commands.add_parser("matrix", parents=[tag], help="print the grid of the tag's sweep file as a JSON list")
    point = commands.add_parser("point", parents=[tag], help="run one point of the tag's sweep in this workspace")
    point.add_argument("--index", type=int, required=True, help="the point's 1-based index")
    summary = commands.add_parser(
        "summary", parents=[tag], help="rank the tag's points (after fetching their experiments)"
    )
    summary.add_argument("--remote", default=None, help="git remote to fetch the experiments from first")
    summary.add_argument("--out", type=Path, default=None, help="also write the summary to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run one command; exit status 1, naming them, when experiments failed."""
    from lib.params import ParamsFile
    from lib.tracking.store import TrackingParams

    args = _parser().parse_args(argv)
    repo = Path.cwd()
    experiment = ParamsFile.read(args.params).section("tracking", TrackingParams).experiment
    if args.command == "run":
        sweep, points = grid.read_sweep(args.sweep, args.params)
        results = grid.run_local(repo, sweep, points, args.jobs, experiment)
        print(f"\n{sweep.source}: ranked by {sweep.metric} ({'max' if sweep.maximize else 'min'} first)\n")
        print(ranked_table(results, sweep.metric, sweep.maximize))
        how = "see the logs with `dvc queue logs <name>`, e.g. dvc queue logs {}"
    else:
        sweep, points = grid.read_sweep(grid.sweep_file_for_tag(args.tag, args.sweeps), args.params, args.tag)
        if args.command == "matrix":
            return print(json.dumps(grid.matrix(points), separators=(",", ":")))
        if args.command == "point":
            if not 1 <= args.index <= len(points):
                raise ReprolabError(f"--index: 1 to {len(points)} for {sweep.source}, got {args.index}")
            return grid.run_point(repo, points[args.index - 1])
        text, results = grid.summary(repo, sweep, points, args.tag, experiment, args.remote)
        print(text)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
        how = "see their jobs' logs"
    failed = [result.name for result in results if result.state != DONE]
    if failed:  # SystemExit prints the line to stderr and exits 1
        raise SystemExit(f"error: {len(failed)} experiment(s) failed: {', '.join(failed)}; {how.format(failed[0])}")


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
