"""What every entry point shares: the params argument and the one-line error exit."""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lib.errors import ReprolabError

EXIT_USER_ERROR = 2


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser that already takes `--params` (default: params.yaml in the working dir)."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: %(default)s)")
    return result


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> int:
    """Call `main`; turn a ReprolabError into one line on stderr and a non-zero exit code."""
    try:
        main(argv)
    except ReprolabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
