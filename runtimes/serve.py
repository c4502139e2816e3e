"""Serve a runtime over HTTP with MLflow's scoring server: `python -m runtimes.serve [--runtime DIR]`.

Endpoints: `GET /ping` and `GET /health` (200 once the model is loaded), `GET /version`, and
`POST /invocations` with JSON (`{"dataframe_split": {"columns": [...], "data": [[...]]}}` or
`{"dataframe_records": [...]}`) or CSV. A malformed request gets a 4xx with a message that says why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lib import cli
from lib.errors import ReprolabError


def serve_command(model_dir: Path, host: str, port: int, workers: int) -> list[str]:
    """The `mlflow models serve` command line for `model_dir`, run by this interpreter."""
    return [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
        "-h", host, "-p", str(port), "--workers", str(workers),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """Resolve the runtime folder, then replace this process with MLflow's scoring server."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", type=Path, default=None, help="runtime folder (default: this checkout's)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where runtimes are (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5001, help="port (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default: %(default)s)")
    args = parser.parse_args(argv)

    from runtimes import package

    folder = args.runtime or package.default_runtime_dir(Path("."), args.out, package.read_config())
    model_dir = folder / package.MODEL_DIR
    if not (model_dir / "MLmodel").is_file():
        raise ReprolabError(f"no runtime at {folder}: build it first (make runtime)")
    # MLflow starts uvicorn by name: it must find this environment's, activated or not.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a progress bar per start fills the log
    print(f"serving {folder.name} on http://{args.host}:{args.port} (/ping, /invocations)", flush=True)
    command = serve_command(model_dir, args.host, args.port, args.workers)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
