"""Build the deployable runtime of the current checkout: `python -m runtimes.build --out dist`.

`--locate` builds nothing: it prints the model folder of this checkout's runtime, for
`mlflow models serve -m "$(python -m runtimes.build --locate)"` (what `make serve` runs).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from lib import cli


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, build the runtime from the pipeline's outputs (or find it), print where it is."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("."), help="repository with the outputs (default: .)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where runtimes go (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=None, help="runtime name and version (runtimes/runtime.yaml)")
    parser.add_argument("--locate", action="store_true", help="print the built runtime's model folder, build nothing")
    args = parser.parse_args(argv)

    from runtimes import package

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per copied file otherwise
    config = package.read_config(args.config or package.RUNTIME_FILE)
    if args.locate:
        print(package.runtime_dir(args.project, args.out, config) / package.MODEL_DIR)
        return
    folder = package.build(args.project, args.out, config)
    print(f"runtime: {folder} (and {folder.name}.zip)")
    print(f"serve it: mlflow models serve -m {folder / package.MODEL_DIR} --env-manager local (or make serve)")


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
