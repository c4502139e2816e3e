"""The sync: replays run journals into MLflow through its own client, each record exactly once.

`python -m lib.tracking.sync` (`make sync`) replays every journal not yet in its store; a stage starts
`--follow FILE`. How each record lands once: lab/docs/decisions/0010-run-journal-replayed-into-mlflow.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import os
import pickle
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lib.environment import env_number
from lib.tracking import store
from lib.tracking.journal import KEY_TAG, State, journals, read_records, sync_file

ENV_PATIENCE = "REPROLAB_SYNC_PATIENCE"  # how long a following sync retries an unreachable store (s)


def target_uri(records: Sequence[dict[str, Any]], root: Path) -> str:
    """The store a journal goes to: `MLFLOW_TRACKING_URI` now, else the one its stage used, else the local store."""
    named = next((r.get("tracking_uri") for r in records if r["op"] == "create_run"), None)
    return store.tracking_uri() or named or store.local_store_uri(root)


class Replayer:
    """Applies a journal's records to one MLflow store, saving its state after each."""

    def __init__(self, journal: Path, uri: str, root: Path) -> None:
        import mlflow

        self.files, self.uri = journal.with_suffix(""), uri
        self.client = mlflow.MlflowClient(uri)
        self.state = State(journal, uri)
        # A crash between sending a record and saving the state leaves only the next one in doubt.
        self.in_doubt = self.state.applied + 1
        # A local store keeps its artifacts beside it.
        self.artifacts = root if uri == store.local_store_uri(root) else None
        self.experiments: dict[str, str] = {}

    def apply(self, record: dict[str, Any]) -> None:
        """Apply one record to the MLflow run its run key has by now (if any), checking first if it is in doubt."""
        getattr(self, "_" + record["op"])(record, self.state.runs.get(record["run"]), record["seq"] == self.in_doubt)
        self.state.save(applied=record["seq"], error=None)

    def _create_run(self, record: dict[str, Any], run_id: str | None, verify: bool) -> None:
        from mlflow.entities import RunTag

        name = record["experiment"]
        if name not in self.experiments:
            self.experiments[name] = store.experiment_id(self.client, name, self.artifacts)
        tags = dict(record["tags"])
        if record.get("parent"):
            tags["mlflow.parentRunId"] = self.state.runs[record["parent"]]
        if run_id is None:  # the run may exist: created before a crash, or by a sync into this store elsewhere
            where = f"tags.`{KEY_TAG}` = '{record['run']}'"
            found = self.client.search_runs([self.experiments[name]], where, max_results=1)
            run_id = found[0].info.run_id if found else None
        if run_id is None:
            run = self.client.create_run(self.experiments[name], record["start_time"], tags, record["run_name"])
            run_id = run.info.run_id
        else:  # a continued run: its tags set again, RUNNING again, as `start_run(run_id=...)` does
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
            self.client.update_run(run_id, "RUNNING")
        self.state.runs[record["run"]] = run_id

    def _log_batch(self, record: dict[str, Any], run_id: str, verify: bool) -> None:
        from mlflow.entities import Metric, Param, RunTag

        metrics = [Metric(**m) for m in record.get("metrics", ())]
        if verify and metrics:
            landed = {
                (m.key, m.step, m.timestamp, m.value)
                for key in {m.key for m in metrics}
                for m in self.client.get_metric_history(run_id, key)
            }
            metrics = [m for m in metrics if (m.key, m.step, m.timestamp, m.value) not in landed]
        params = [Param(**p) for p in record.get("params", ())]
        tags = [RunTag(**t) for t in record.get("tags", ())]
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)  # nothing left: MLflow sends nothing

    def _log_artifact(self, record: dict[str, Any], run_id: str, verify: bool) -> None:
        # Writing the same file again at the same path is harmless: no check needed.
        self.client.log_artifact(run_id, str(self.files / record["file"]), record.get("artifact_path"))

    def _log_model(self, record: dict[str, Any], run_id: str, verify: bool) -> None:
        import mlflow

        from lib.tracking.models import log_model

        where = f"source_run_id = '{run_id}' AND name = '{record['name']}'"
        if verify and self.client.search_logged_models([self.client.get_run(run_id).info.experiment_id], where):
            return
        saved = pickle.loads((self.files / record["file"]).read_bytes())
        flavour = importlib.import_module(f"mlflow.{record['flavour']}")
        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(run_id=run_id):
            log_model(flavour, saved["model"], saved["example"], saved["output"], record["packages"], record["name"])
        self.client.update_run(run_id, "RUNNING")  # ending the fluent run finished it; its end record says when

    def _update_run(self, record: dict[str, Any], run_id: str, verify: bool) -> None:
        self.client.set_terminated(run_id, record["status"], record["end_time"])


def finished(records: Sequence[dict[str, Any]]) -> bool:
    """Whether the journal's first run has ended (its last record ends it)."""
    return bool(records) and records[-1]["op"] == "update_run" and records[-1]["run"] == records[0]["run"]


def writer_alive(records: Sequence[dict[str, Any]]) -> bool:
    """Whether the process that writes the journal still runs (on this machine; elsewhere: assume not)."""
    import psutil

    writer = next((r["writer"] for r in reversed(records) if r["op"] == "create_run"), None)
    return bool(writer) and writer["host"] == socket.gethostname() and psutil.pid_exists(writer["pid"])


@contextlib.contextmanager
def locked(journal: Path, uri: str, wait: float) -> Iterator[bool]:
    """Hold the lock of the journal's sync into `uri` (one at a time); yields False when `wait` s did not get it."""
    with sync_file(journal, uri, ".lock").open("a") as file:  # closing the file releases the lock
        deadline, held = time.monotonic() + wait, False
        while not held:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
        yield held


def replay(journal: Path, root: Path, follow: bool = False, patience: float = 0.0, wait: float = 0.0) -> str | None:
    """Replay `journal` into its store from where it stands, one sync at a time (a running one gets `wait` s);
    None when every record landed, else why not.

    `follow`: also what the stage writes next, until its run ends (or its writer is gone), saying in its log
    when the store does not answer. Retries an unreachable store with backoff for `patience` s."""
    records, offset = read_records(journal)
    uri = target_uri(records, root)
    if not records or (finished(records) and State(journal, uri).applied == records[-1]["seq"]):
        return None
    with locked(journal, uri, wait) as held:
        if not held:
            return State(journal, uri).error or "a sync still replays it"
        replayer: Replayer | None = None
        failures, deadline, warned = 0, time.monotonic() + patience, False
        while True:
            try:
                replayer = replayer or Replayer(journal, uri, root)
                for record in [r for r in records if r["seq"] > replayer.state.applied]:
                    replayer.apply(record)
                failures = 0
            except Exception as exc:  # MLflow raises its own, requests' and SQLAlchemy's errors: all mean "retry"
                why = f"MLflow at {uri}: {' '.join((str(exc).strip() or type(exc).__name__).split())[:300]}"
                if replayer is not None:
                    replayer.in_doubt = replayer.state.applied + 1  # the server may have taken it, the answer lost
                    with contextlib.suppress(OSError):
                        replayer.state.save(error=why)
                if time.monotonic() >= deadline:
                    return why
                if follow and not warned:  # in the following sync's log; sync_all reports what is left
                    print(f"warning: tracking is behind for {journal.name}: {why}; retrying", file=sys.stderr)
                    warned = True
                failures += 1
                time.sleep(min(30.0, 0.5 * 2**failures, max(0.0, deadline - time.monotonic())))
                continue
            more, offset = read_records(journal, offset)
            if more:
                records += more
            elif finished(records) or not follow or not writer_alive(records):
                return None
            else:
                time.sleep(0.2)


def sync_all(root: Path, wait: float = 0.0, patience: float = 0.0) -> list[str]:
    """Replay every journal under `root` not yet fully in its store; a journal a running sync holds gets up
    to `wait` s. Returns one line per journal left behind, saying why."""
    left = []
    deadline = time.monotonic() + wait
    for path in journals(root):
        why = replay(path, root, patience=patience, wait=max(0.0, deadline - time.monotonic()))
        if why:
            left.append(f"{path.name}: {why}")
    return left


def main(argv: Sequence[str] | None = None) -> int:
    """Replay journals into MLflow; exit 1 when some are left behind, each named with why."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--follow", type=Path, help="follow this journal live until its run ends")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to give running syncs (default 0)")
    parser.add_argument("--retry", type=float, default=0.0, help="seconds to retry an unreachable store (default 0)")
    parser.add_argument("--root", type=Path, help="the project whose journals to replay (default: DVC_ROOT or .)")
    args = parser.parse_args(argv)
    # The replay retries with backoff and says why it is behind; MLflow's own retries (7, with a backoff of
    # minutes) would hold each call to a stopped server for minutes, past any `--wait`.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    root = (args.root or store.local_store_root()).resolve()
    if args.follow:
        # Background work: the stage it follows, and the next one, come first for the CPU.
        with contextlib.suppress(OSError):
            os.nice(10)
        patience = env_number(os.environ, ENV_PATIENCE, "3600", float, "a number of seconds")
        # A sync of the run's earlier part (before a resume) may still hold the lock.
        why = replay(args.follow, root, follow=True, patience=patience, wait=patience)
        if why:
            print(f"warning: tracking gave up on {args.follow.name}: {why}; `make sync` replays it", file=sys.stderr)
        return 1 if why else 0
    left = sync_all(root, wait=args.wait, patience=args.retry)
    total = len(journals(root))
    if left:
        header = f"tracking: {len(left)} of {total} run journals not in MLflow; `make sync` replays them:"
        print("\n  ".join([header, *left]), file=sys.stderr)
        return 1
    print(f"tracking: all {total} run journals are in MLflow")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
