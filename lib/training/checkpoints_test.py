"""checkpoints.py: atomic per-epoch files, refusing another fingerprint, clearing, random states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lib.paths import CHECKPOINTS_DIR
from lib.training.checkpoints import CheckpointStore, restore_rng, rng_state, stderr_log

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")


def _store(directory: Path, key: str = "a" * 64) -> tuple[CheckpointStore, list[str]]:
    lines: list[str] = []
    return CheckpointStore(directory, key, log=lines.append), lines


def test_save_keeps_only_the_newest_checkpoint_and_latest_reads_it(tmp_path: Path) -> None:
    store, lines = _store(tmp_path / "ckpt")
    store.extra["mlflow_run_id"] = "run-1"

    for epoch in (1, 2, 3):
        store.save({"epoch": epoch, "weights": torch.full((2,), float(epoch))})

    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch-0003.pt"]
    state, _ = _store(tmp_path / "ckpt")
    latest = state.latest
    assert latest is not None
    assert (latest["epoch"], latest["mlflow_run_id"]) == (3, "run-1")
    assert torch.equal(latest["weights"], torch.full((2,), 3.0))
    state.save({"epoch": 4})
    assert state.latest is latest  # read once, when the store is made
    assert lines == []


def test_a_checkpoint_with_another_fingerprint_is_not_resumed(tmp_path: Path) -> None:
    store, _ = _store(tmp_path, key="a" * 64)
    store.save({"epoch": 2})
    other, lines = _store(tmp_path, key="b" * 64)

    assert other.latest is None
    assert len(lines) == 1 and "other params, seed, data" in lines[0] and "starting from scratch" in lines[0]


def test_an_unreadable_checkpoint_is_not_resumed(tmp_path: Path) -> None:
    (tmp_path / "epoch-0004.pt").write_bytes(b"half a zip")
    store, lines = _store(tmp_path)

    assert store.latest is None
    assert "is unreadable" in lines[0]


def test_no_checkpoint_is_none_without_a_log_line(tmp_path: Path) -> None:
    store, lines = _store(tmp_path / "missing")

    assert store.latest is None
    assert lines == []


def test_clear_removes_checkpoints_leftovers_and_the_empty_folders(tmp_path: Path) -> None:
    directory = tmp_path / CHECKPOINTS_DIR / "train_dnn_pytorch"
    store, _ = _store(directory)
    store.save({"epoch": 1})
    (directory / ".epoch-0002.pt.tmp-123").write_bytes(b"cut off by a kill")

    store.clear()
    store.clear()  # nothing left: no error

    assert not (tmp_path / CHECKPOINTS_DIR).exists()


def test_clear_leaves_a_parent_folder_it_did_not_make(tmp_path: Path) -> None:
    store, _ = _store(tmp_path / "mine")
    store.save({"epoch": 1})

    store.clear()

    assert not (tmp_path / "mine").exists() and tmp_path.is_dir()


def test_rng_state_restores_the_global_and_the_shuffling_generator() -> None:
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(6)
    state = rng_state(generator, CPU)
    first = (torch.rand(3), torch.randperm(10, generator=generator))

    restore_rng(state, generator, CPU)

    again = (torch.rand(3), torch.randperm(10, generator=generator))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_stderr_log_writes_one_prefixed_line(capsys: pytest.CaptureFixture[str]) -> None:
    stderr_log("train_dnn_pytorch")("resumed")

    assert capsys.readouterr() == ("", "train_dnn_pytorch: resumed\n")
