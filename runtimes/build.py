"""Build the deployable runtime of the current checkout: `python -m runtimes.build --out dist`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from lib import cli


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, build the runtime from the pipeline's outputs, print where it is."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("."), help="repository with the outputs (default: .)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where runtimes go (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=None, help="runtime name and version (runtimes/runtime.yaml)")
    args = parser.parse_args(argv)

    from runtimes import package

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    config = package.read_config(args.config or package.RUNTIME_FILE)
    folder = package.build(args.project, args.out, config)
    print(f"runtime: {folder} (and {folder.name}.zip)")
    print(f"serve it: python -m runtimes.serve --runtime {folder}")


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
