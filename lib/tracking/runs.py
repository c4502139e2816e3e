"""A stage's run: its params, continuing a killed run, per-epoch metrics and plot files.

`journal_run` records the run in a local journal that a background sync replays into MLflow (the stage
never waits for MLflow, never imports it).
"""

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from lib.tracking import journal, store, sync
from lib.tracking.journal import Journal, Run
from lib.tracking.provenance import run_tags

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`: nested params as MLflow param names and values."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


@contextmanager
def journal_run(
    stage: str, experiment: str, params: Mapping[str, Any], device: str | None = None, resume_key: str | None = None
) -> Iterator[Run]:
    """Record a run of `stage` in `experiment` with `params` flattened, in a new journal followed by a
    background sync; or continue run `resume_key` in its journal if that is still there (its tags set
    again, its params, the same, not). `REPROLAB_TRACKING=direct` replays each record at once instead."""
    root = store.local_store_root()
    found = journal.find_journal(root, resume_key) if resume_key else None
    book = Journal(found or journal.new_journal_path(root, stage))
    uri = sync.target_uri(book.records, root)  # a resumed run's journal still goes to the store it names
    if journal.direct_mode():  # an unreachable store fails the stage, as direct logging always did
        book.sink = sync.Replayer(book.path, uri, root).apply
    run = journal.start_run(book, experiment, stage, run_tags(stage, device), uri, key=resume_key if found else "")
    if not found:
        run.log_params(flatten(params))
    follower = None if book.sink else journal.start_sync(book.path, root)
    with closing(book), run:
        yield run
    # Bounded: the run is safe in its journal, so an outage costs at most this wait, never the stage. With no
    # wait (the default), only what the sync has already hit is reported.
    wait, why = journal.sync_wait(), None
    if follower is not None and wait:
        why = journal.wait_synced(book.path, uri, len(book.records) - 1, wait, lambda: follower.poll() is None)
    elif follower is not None:
        why = journal.State(book.path, uri).error
    if why and not store.warned_unreachable:
        print(f"warning: tracking is behind ({why}); the sync retries, `make sync` replays the rest", file=sys.stderr)


def nested_run(parent: Run, name: str, params: Mapping[str, Any]) -> Run:
    """A child run of `parent` named `name`, with `params` flattened and the parent's provenance tags; a `with`
    block on it ends it."""
    created = parent.created  # its tags too: start_run replaces the key tag with the child's own
    tags, uri = created["tags"], created["tracking_uri"]
    run = journal.start_run(parent.journal, created["experiment"], name, tags, uri, parent=parent)
    run.log_params(flatten(params))
    return run


def epoch_logger(run: Run, history: Sequence[Mapping[str, float]]) -> Callable[[int, dict[str, float]], None]:
    """Per-epoch logging for a run that may continue an earlier one, skipping epochs its journal holds.

    The rows of `history` (`epoch` and metrics) a kill cut off are recorded now (judged by `train/loss`)."""
    logged = run.steps("train/loss")

    def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch not in logged:
            run.log_metrics(metrics, step=epoch)
            logged.add(epoch)

    for row in history:
        log_epoch(int(row["epoch"]), {name: value for name, value in row.items() if name != "epoch"})
    return log_epoch


def log_pngs(run: Run, paths: Sequence[Path]) -> None:
    """Log PNG files the stage already wrote as artifacts under `plots/` (no second rendering)."""
    for path in paths:
        run.log_artifact(path, artifact_path="plots")


def is_server(tracking_uri: str | None) -> bool:
    """Whether `tracking_uri` names a tracking server (else a local store, shown by `mlflow ui`)."""
    return str(tracking_uri).startswith(("http://", "https://"))


def run_url(tracking_uri: str | None, experiment_id: str, run_id: str) -> str:
    """The page of run `run_id`: on the tracking server, or for a local store under `mlflow ui`."""
    server = str(tracking_uri) if is_server(tracking_uri) else LOCAL_UI
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def results_line(stage: str, outputs: Sequence[Path | str], run: Run) -> str:
    """A stage's last line: where its results are, its output files and the MLflow run the sync makes of it."""
    uri = run.created["tracking_uri"]
    ui = f"{uri.rstrip('/')}/#/experiments" if is_server(uri) else f"{LOCAL_UI} (mlflow ui, store {uri})"
    name, experiment = run.created["run_name"], run.created["experiment"]
    return (
        f"{stage}: results in {', '.join(map(str, outputs))}; "
        f"MLflow run '{name}' of experiment '{experiment}' (tag {journal.KEY_TAG}={run.key}): {ui}"
    )
