"""What the tests share: project copies with a shrunk params file, a clean environment, and real servers
(MLflow, an S3 API, PostgreSQL) started on 127.0.0.1 and stopped after. Fixtures built on these live in
conftest.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from lib.paths import PROJ_ROOT

VENV_BIN = Path(sys.executable).parent
# What a project copy needs to run the pipeline: code, pipeline definition, params, DVC config.
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", ".gitignore")
PROJECT_DIRS = ("lab", "lib")

SHRUNK = {
    "train_standard_classifiers": {
        "models": ["logistic_regression", "naive_bayes", "random_forest"],
        "cv_folds": 3,
        "hyperparams": {"random_forest": {"n_estimators": 10, "max_depth": 4}},
    },
    "train_dnn_pytorch": {"epochs": 3, "hidden_layers": [8], "batch_size": 64},
}


def shrunk_params(overrides: dict | None = None) -> dict:
    """The project's real params.yaml with SHRUNK (and `overrides`) merged into its sections."""
    params = yaml.safe_load((PROJ_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for source in (SHRUNK, overrides or {}):
        for section, values in source.items():
            if isinstance(values, dict):
                params[section] = {**params[section], **values}
            else:
                params[section] = values
    return params


def clean_env(**extra: str) -> dict[str, str]:
    """This environment with the project's venv first on PATH and no tracking or CI variables, but the stages'
    wait for their sync (under pytest, conftest.py sets one: tests read MLflow right after a stage)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "GITHUB_", "REPROLAB_", "DVC_")) and k != "RUNNER_NAME"
    }
    if "REPROLAB_STAGE_SYNC_WAIT" in os.environ:
        env["REPROLAB_STAGE_SYNC_WAIT"] = os.environ["REPROLAB_STAGE_SYNC_WAIT"]
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # tests never reach the network
    env.update(extra)
    return env


def run(args: Sequence[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd` with `clean_env`, capturing text output."""
    return subprocess.run(
        list(args), cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def make_project_copy(destination: Path, params: dict) -> Path:
    """Copy the project's code and pipeline into `destination`, as a git repo with one commit."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJ_ROOT / name, target)
    for name in PROJECT_DIRS:
        shutil.copytree(
            PROJ_ROOT / name,
            destination / name,
            ignore=shutil.ignore_patterns("__pycache__", "*_test.py", "conftest.py"),
        )
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=destination, check=True, capture_output=True)
    return destination


def add_goals_and_runtimes(project: Path) -> None:
    """Add to a project copy, in a second commit, what `make goals`, `make runtime` and `make serve` need: goals/
    (its acceptance tests too: `pytest goals` runs them), runtimes/ without its tests, pytest's config and the
    Makefile; dist/, where runtimes are built, is ignored."""
    for folder in ("runtimes", "goals"):
        tests = ["*_test.py"] if folder == "runtimes" else []
        shutil.copytree(PROJ_ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__", *tests))
    for name in ("pytest.ini", "conftest.py", "Makefile"):
        shutil.copy2(PROJ_ROOT / name, project / name)
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + "\n/dist/\n")
    for command in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "goals, runtimes"],
    ):
        subprocess.run(command, cwd=project, check=True, capture_output=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(args: Sequence[str], root: Path, url: str, what: str, **env: str) -> Iterator[None]:
    """Run the server `args` in `root` (its log in `root`/server.log, `env` added to clean_env) until `url`
    answers; stop it after."""
    import time
    import urllib.error
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    log = root / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(list(args), cwd=root, env=clean_env(**env), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 240  # a loaded machine (tests run two at a time) starts MLflow slowly
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def running_mlflow_server(
    root: Path, database: str | None = None, s3: str | None = None, port: int | None = None
) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1; yields its URI.

    Args:
        root: its folder: the server's log, and by default its SQLite store and its artefacts.
        database: the SQLAlchemy URI of its store (e.g. running_postgres's) instead of SQLite in `root`.
        s3: the endpoint of an S3 API server (running_s3_server's) whose bucket ARTIFACTS takes the
            artefacts, which clients then send through the server, as on the team's stack.
        port: its port (to start it again where its clients expect it); by default a free one.
    """
    uri = f"http://127.0.0.1:{port or free_port()}"
    artifacts = f"s3://{ARTIFACTS}/mlflow" if s3 else str(root / "artifacts")
    args = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        uri.rsplit(":", 1)[1],
        "--backend-store-uri",
        database or f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination",
        artifacts,
        "--workers",
        "1",
    ]
    env = {"MLFLOW_S3_ENDPOINT_URL": s3, **S3_KEYS} if s3 else {}
    with serving(args, root, f"{uri}/health", "mlflow server", **env):
        yield uri


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs: on PATH, or Debian's (`make test` installs it)."""
    on_path = shutil.which("pg_ctl")
    found = [Path(on_path).parent] if on_path else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if not found or not (found[0] / "initdb").exists():
        raise RuntimeError("PostgreSQL's server programs were not found: `make postgres` installs Debian's package")
    return found[0]


@contextmanager
def running_postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server on a free port of 127.0.0.1 that trusts local connections; yields the
    SQLAlchemy URI of its database for MLflow. Its files are in a new folder under the system's temporary
    folder, deleted after. PostgreSQL refuses to run as root: under root it runs as Debian's `postgres` user.
    """
    bindir = postgres_bin()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="reprolab-postgres-"))
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()

    def postgres(program: str, *args: str) -> None:
        done = subprocess.run(
            [*as_user, str(bindir / program), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = folder / "server.log"
            raise RuntimeError(f"PostgreSQL: {program} failed: {done.stderr}{log.read_text() if log.exists() else ''}")

    data = str(folder / "data")
    try:
        postgres("initdb", "-D", data, "-U", "mlflow", "--auth=trust", "--no-sync", "--locale=C", "-E", "UTF8")
        # fsync off: the database lives as long as the test.
        options = f"-h 127.0.0.1 -p {port} -k {folder} -F"
        postgres("pg_ctl", "-D", data, "-l", str(folder / "server.log"), "-o", options, "-w", "start")
        yield f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/postgres"
    finally:
        if (folder / "data" / "postmaster.pid").exists():
            postgres("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto accepts any
ARTIFACTS = "mlflow-artifacts"  # the S3 bucket of running_mlflow_server's artefacts


@contextmanager
def running_s3_server(root: Path, bucket: str) -> Iterator[str]:
    """An S3 API server (moto's) on 127.0.0.1 holding an empty `bucket` and ARTIFACTS; yields its endpoint."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with serving([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], root, endpoint, "S3 server"):
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        )
        for name in {bucket, ARTIFACTS}:
            s3.create_bucket(Bucket=name)
        yield endpoint


@contextmanager
def running_team_stack(root: Path, bucket: str = ARTIFACTS) -> Iterator[tuple[str, str]]:
    """The team's stack (lab/docs/runners.md): an S3 API server holding `bucket`, and an `mlflow server` on
    PostgreSQL with its artefacts on that S3 server; yields the MLflow URI and the S3 endpoint."""
    with (
        running_s3_server(root / "s3", bucket) as s3,
        running_postgres() as database,
        running_mlflow_server(root / "mlflow", database, s3) as mlflow_uri,
    ):
        yield mlflow_uri, s3


@contextmanager
def serving_scorer(command: Sequence[str], cwd: Path, log_path: Path, port: int) -> Iterator[str]:
    """Run the scoring server `command`, which listens on `port` of 127.0.0.1, in `cwd`, its output in
    `log_path`; yields its base URL once /ping answers 200, and stops it with its workers after the block."""
    import signal
    import time
    import urllib.request

    with log_path.open("w") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server and its uvicorn worker, stopped together below
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet, or an HTTP error
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the scoring server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def serving_runtime(project: Path, log_path: Path) -> contextlib.AbstractContextManager[str]:
    """`make serve` (MLflow's scoring server for the project's built runtime) on a free port of 127.0.0.1, as
    `serving_scorer`; -o: the environment is this one, no `pipenv sync` into the copy."""
    port = free_port()
    return serving_scorer(["make", "-o", ".venv/.synced-run", "serve", f"PORT={port}"], project, log_path, port)
