"""sync.py and journal.py: durable records, and a replay that lands each record once, crash or not."""

import contextlib
from pathlib import Path

import pytest

from lib.errors import ReprolabError
from lib.tracking import journal, sync
from lib.tracking.journal import Journal

# Each test carries its own marker (no module-wide `pytestmark`): markers add up, and a test that
# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.


def _record_run(path: Path, epochs: int, uri: str | None = None) -> journal.Run:
    """A journal at `path` holding a finished run with `epochs` epochs of two metrics, a tag and a child."""
    book = Journal(path)
    run = journal.start_run(book, "exp", "stage_x", {"dvc.stage": "stage_x"}, uri)
    run.log_params({"lr": "0.1"})
    for epoch in range(1, epochs + 1):
        run.log_metrics({"train/loss": 1 / epoch, "val/loss": 2 / epoch}, step=epoch)
    child = journal.start_run(book, "exp", "child", {"dvc.stage": "stage_x"}, uri, parent=run)
    child.set_tags({"kind": "fold"})
    child.end()
    run.end()
    book.close()
    return run


@pytest.mark.unittest
def test_a_journal_keeps_whole_records_only_and_continues_after_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    run = _record_run(path, epochs=2)
    whole = path.read_bytes()
    with path.open("ab") as file:
        file.write(b'{"seq": 99, "run"')  # a writer killed mid-line

    records, offset = journal.read_records(path)
    assert offset == len(whole) and [r["seq"] for r in records] == list(range(len(records)))
    book = Journal(path)
    resumed = journal.start_run(book, "exp", "stage_x", {}, None, key=run.key)
    resumed.log_metrics({"train/loss": 0.1}, step=3)
    book.close()

    records, _ = journal.read_records(path)
    assert path.read_bytes().startswith(whole)
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert resumed.steps("train/loss") == {1, 2, 3}
    assert sync.finished(records[: len(records) - 2]) and not sync.finished(records)


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("error", "status"), [(None, "FINISHED"), (ValueError, "FAILED"), (KeyboardInterrupt, "KILLED")]
)
def test_a_run_in_a_with_block_ends_finished_failed_or_killed(
    tmp_path: Path, error: type[BaseException] | None, status: str
) -> None:
    book = Journal(tmp_path / "j.jsonl")
    raised = pytest.raises(error) if error else contextlib.nullcontext()
    with raised, journal.start_run(book, "exp", "stage_x", {}, None) as run:
        run.log_metrics({"train/loss": 0.5}, step=1)
        if error:
            raise error
    book.close()

    (*_, last), _ = journal.read_records(book.path)
    assert (last["run"], last["op"], last["status"]) == (run.key, "update_run", status)


@pytest.mark.unittest
def test_a_stage_waits_for_its_sync_a_bounded_time_and_then_says_why_it_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, uri = tmp_path / "j.jsonl", "http://127.0.0.1:1"
    state = journal.sync_file(path, uri, ".state.json")

    assert journal.wait_synced(path, uri, 5, 0.0) == "its sync has not finished within 0 s"
    state.write_text('{"applied": 3, "error": "ConnectionError: refused"}')
    assert journal.wait_synced(path, uri, 5, 0.2) == "ConnectionError: refused"
    assert journal.wait_synced(path, uri, 5, 60.0, running=lambda: False) == "ConnectionError: refused"  # no sync
    state.write_text('{"applied": 5, "error": null}')
    assert journal.wait_synced(path, uri, 5, 60.0) is None  # at once: the last record has landed

    monkeypatch.delenv("REPROLAB_STAGE_SYNC_WAIT", raising=False)
    assert journal.sync_wait() == 0.0  # by default a stage does not wait: its sync finishes in the background
    monkeypatch.setenv("REPROLAB_STAGE_SYNC_WAIT", "2.5")
    assert journal.sync_wait() == 2.5
    monkeypatch.setenv("REPROLAB_SYNC_WAIT", "45")
    assert journal.sync_wait("REPROLAB_SYNC_WAIT", 30) == 45.0
    monkeypatch.setenv("REPROLAB_STAGE_SYNC_WAIT", "soon")
    must = "environment variable REPROLAB_STAGE_SYNC_WAIT: must be a number of seconds, got 'soon'"
    with pytest.raises(ReprolabError, match=must):
        journal.sync_wait()


@pytest.mark.integration
@pytest.mark.parametrize("crash_after", [1, 4, 10])
def test_a_replay_that_crashed_between_sending_and_saving_lands_each_record_once(
    local_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    """The crash leaves the record it sent unsaved (the worst moment); the next replay lands the rest."""
    import mlflow

    path = journal.journal_dir(tmp_path) / "j.jsonl"
    run = _record_run(path, epochs=8)
    saves = 0
    save = journal.State.save

    def crashing_save(self: journal.State, **changes: object) -> None:
        nonlocal saves
        if "applied" in changes:
            saves += 1
            if saves == crash_after:
                raise SystemExit("killed")
        save(self, **changes)

    monkeypatch.setattr(journal.State, "save", crashing_save)
    with pytest.raises(SystemExit):
        sync.replay(path, tmp_path)
    monkeypatch.setattr(journal.State, "save", save)
    assert sync.replay(path, tmp_path) is None
    assert sync.sync_all(tmp_path) == []  # nothing left: it does not run again

    client = mlflow.MlflowClient(local_store)
    experiment_ids = [client.get_experiment_by_name("exp").experiment_id]
    runs = client.search_runs(experiment_ids)
    assert sorted(r.info.run_name for r in runs) == ["child", "stage_x"]
    (parent,) = [r for r in runs if r.data.tags[journal.KEY_TAG] == run.key]
    for key, scale in (("train/loss", 1), ("val/loss", 2)):
        history = client.get_metric_history(parent.info.run_id, key)
        assert sorted((m.step, m.value) for m in history) == [(e, scale / e) for e in range(1, 9)]
    assert parent.data.params == {"lr": "0.1"} and parent.info.status == "FINISHED"
