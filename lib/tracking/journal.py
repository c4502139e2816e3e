"""A stage's run journal: its MLflow calls as JSON-lines records, appended durably, record by record.

`lib.tracking.sync` replays journals into MLflow; the stage never imports MLflow. The format and why:
lab/docs/decisions/0010-run-journal-replayed-into-mlflow.md.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import pickle
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.environment import env_number

ENV_MODE = "REPROLAB_TRACKING"  # journal (the default): a background sync; direct: replayed in the stage process
KEY_TAG = "reprolab.journal_key"  # on every run a journal creates: how a replay finds it again


def now_ms() -> int:
    """Milliseconds since the epoch, as MLflow stamps runs and metrics."""
    return int(time.time() * 1000)


def journal_dir(root: Path) -> Path:
    """The folder of the journals of the project at `root`."""
    return Path(root, ".reprolab", "journal")


def direct_mode() -> bool:
    """Whether runs are replayed into MLflow inside the stage process (`REPROLAB_TRACKING=direct`)."""
    return os.environ.get(ENV_MODE, "").strip().lower() == "direct"


def read_records(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete records of journal `path` from byte `offset` on, and the offset after the last one.

    A line a crash cut short is not a record."""
    records = []
    with Path(path).open("rb") as file:
        file.seek(offset)
        for line in file:
            if not line.endswith(b"\n"):
                break
            records.append(json.loads(line))
            offset += len(line)
    return records, offset


def journals(root: Path) -> list[Path]:
    """The journal files of the project at `root`, oldest first (none while it has no journal folder)."""
    return sorted(journal_dir(root).glob("*.jsonl"), key=lambda path: path.stat().st_mtime)


class Journal:
    """An append-only journal file: each record written, flushed and fsync'ed before `append` returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.files = self.path.with_suffix("")  # artifacts and models recorded by this journal
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records, end = read_records(self.path) if self.path.exists() else ([], 0)
        self._file = self.path.open("ab")
        self._file.truncate(end)  # a torn last line from a killed writer
        self.sink: Callable[[dict[str, Any]], None] | None = None  # direct mode: applies each record written

    def append(self, run: str, op: str, **fields: Any) -> dict[str, Any]:
        """Write one record durably (and apply it, in direct mode); returns it."""
        record = {"seq": len(self.records), "run": run, "op": op, **fields}
        self._file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records.append(record)
        if self.sink is not None:
            self.sink(record)
        return record

    def keep_file(self, name: str, content: bytes) -> str:
        """Write `content` as `name` into the journal's own folder, durably; returns its path in that folder.

        The stage's outputs may change before the sync reads them."""
        target = self.files / str(len(self.records)) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        with target.open("rb") as file:
            os.fsync(file.fileno())
        return str(target.relative_to(self.files))

    def close(self) -> None:
        self._file.close()


class Run:
    """A run being recorded: the calls a stage makes, as records of its journal."""

    def __init__(self, journal: Journal, key: str, created: dict[str, Any]) -> None:
        self.journal, self.key, self.created = journal, key, created  # created: its create_run record

    def log_params(self, params: Mapping[str, str]) -> None:
        self.journal.append(self.key, "log_batch", params=[{"key": k, "value": str(v)} for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Metrics at `step` (MLflow's default step is 0), stamped now."""
        stamp = now_ms()
        batch = [{"key": k, "value": float(v), "timestamp": stamp, "step": int(step)} for k, v in metrics.items()]
        self.journal.append(self.key, "log_batch", metrics=batch)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.journal.append(self.key, "log_batch", tags=[{"key": k, "value": str(v)} for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Log a file the stage wrote; a copy is kept in the journal."""
        file = self.journal.keep_file(Path(path).name, Path(path).read_bytes())
        self.journal.append(self.key, "log_artifact", file=file, artifact_path=artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """Log `data` as the JSON artifact `name` (at the run's root, as `mlflow.log_dict` does)."""
        file = self.journal.keep_file(name, json.dumps(data, indent=2).encode())
        self.journal.append(self.key, "log_artifact", file=file)

    def log_model(self, flavour: str, model: Any, example: Any, output: Any, packages: Sequence[str]) -> None:
        """Record `model` for `mlflow.<flavour>.log_model`, named "model": it, its input example and output, pickled."""
        content = pickle.dumps({"model": model, "example": example, "output": output}, protocol=5)
        file = self.journal.keep_file("model.pkl", content)
        self.journal.append(self.key, "log_model", flavour=flavour, file=file, name="model", packages=list(packages))

    def steps(self, key: str) -> set[int]:
        """The steps at which this run's journal already holds metric `key`."""
        return {
            metric["step"]
            for record in self.journal.records
            if record["run"] == self.key and record["op"] == "log_batch"
            for metric in record.get("metrics", ())
            if metric["key"] == key
        }

    def end(self, status: str = "FINISHED") -> None:
        self.journal.append(self.key, "update_run", status=status, end_time=now_ms())

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """End the run as its `with` block ends: FINISHED, KILLED by an interrupt, else FAILED."""
        self.end("FINISHED" if kind is None else "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")


def start_run(
    journal: Journal, experiment: str, name: str, tags: Mapping[str, str], tracking_uri: str | None, key: str = "",
    parent: Run | None = None,
) -> Run:  # fmt: skip
    """Record a run's creation (or, for a `key` the journal already holds, its continuation)."""
    key = key or uuid.uuid4().hex
    # The tags MLflow's fluent `start_run` adds from the process that runs.
    source = {"mlflow.user": getpass.getuser(), "mlflow.source.name": sys.argv[0] or "-", "mlflow.source.type": "LOCAL"}
    created = journal.append(
        key, "create_run", experiment=experiment, run_name=name, start_time=now_ms(),
        tags={**source, **tags, KEY_TAG: key}, parent=parent.key if parent else None,
        tracking_uri=tracking_uri, writer={"pid": os.getpid(), "host": socket.gethostname()},
    )  # fmt: skip
    return Run(journal, key, created)


def start_sync(path: Path, root: Path) -> subprocess.Popen:
    """Start the sync that follows journal `path` of the project at `root` live, detached; it logs to `path`.log.

    It runs this code, not the stage's working directory's (a queued experiment's copy)."""
    with path.with_suffix(".log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lib.tracking.sync", "--follow", str(path.resolve()), "--root", str(root)],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def sync_file(path: Path, uri: str, suffix: str) -> Path:
    """The file beside journal `path` where its sync into store `uri` keeps its state (`.state.json`) or lock."""
    return path.with_name(f"{path.stem}.{hashlib.sha1(uri.encode()).hexdigest()[:10]}{suffix}")


class State:
    """What of journal `path` has landed in store `uri`: the last record `applied`, the MLflow run id of each
    run key (`runs`) and the sync's last `error`; saved atomically (write, fsync, rename)."""

    def __init__(self, path: Path, uri: str) -> None:
        self.path, self.uri = sync_file(path, uri, ".state.json"), uri
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):  # before the sync has saved it
            saved = {}
        self.applied: int = saved.get("applied", -1)
        self.runs: dict[str, str] = saved.get("runs", {})
        self.error: str | None = saved.get("error")

    def save(self, **changes: Any) -> None:
        """Set the attributes in `changes` and save the state."""
        vars(self).update(changes)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w") as file:
            json.dump({"uri": self.uri, "applied": self.applied, "runs": self.runs, "error": self.error}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


def sync_wait(variable: str = "REPROLAB_STAGE_SYNC_WAIT", default: float = 0.0) -> float:
    """Seconds to wait for syncs, from `variable`: by default how long a stage waits at its end for its own."""
    return max(0.0, env_number(os.environ, variable, str(default), float, "a number of seconds"))


def wait_synced(
    path: Path, uri: str, last: int, timeout: float, running: Callable[[], bool] = lambda: True
) -> str | None:
    """Wait up to `timeout` s, while `running()`, for the sync of journal `path` into `uri` to apply record
    `last`: None once it has, else why it is behind (the sync's last error, or the wait running out)."""
    deadline = time.monotonic() + timeout
    while True:
        state = State(path, uri)
        if state.applied >= last:
            return None
        if time.monotonic() >= deadline or not running():
            return state.error or f"its sync has not finished within {timeout:g} s"
        time.sleep(0.1)


def new_journal_path(root: Path, stage: str) -> Path:
    """A new journal file for a run of `stage`."""
    return journal_dir(root) / f"{time.strftime('%Y%m%dT%H%M%S')}-{stage}-{uuid.uuid4().hex[:8]}.jsonl"


def find_journal(root: Path, key: str) -> Path | None:
    """The journal whose first run is `key` (a run to continue), if it is still there."""
    for path in journals(root):
        with path.open("rb") as file:
            first = file.readline()
        if first.endswith(b"\n") and json.loads(first).get("run") == key:
            return path
    return None
