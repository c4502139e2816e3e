"""Tests for lib/pipeline_state.py: DVC's status names each stage whose outputs are not current."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib import pipeline_state

pytestmark = pytest.mark.unittest

PIPELINE = """
stages:
  prepare:
    cmd: python prepare.py
    params: [prepare]
    outs: [data/clean.csv]
  train:
    cmd: python train.py
    deps: [data/clean.csv]
    params: [train]
    metrics: [{metrics/train.json: {cache: false}}]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A DVC project whose dvc.lock records the outputs on disk, as after a successful `dvc repro`."""
    from contextlib import chdir

    from dvc.repo import Repo

    (tmp_path / "dvc.yaml").write_text(PIPELINE)
    (tmp_path / "params.yaml").write_text("prepare: {rows: 10}\ntrain: {lr: 0.1}\n")
    for path, text in (("data/clean.csv", "a\n1\n"), ("metrics/train.json", '{"test/accuracy": 0.9}')):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    with chdir(tmp_path), Repo.init(".", no_scm=True) as repo:
        repo.commit(force=True)
    return tmp_path


def test_the_outputs_of_a_lock_are_every_stage_out_with_its_md5() -> None:
    lock = {
        "schema": "2.0",
        "stages": {
            "a": {"deps": [{"path": "x.py", "md5": "0"}], "outs": [{"path": "data/processed", "md5": "1.dir"}]},
            "b": {"outs": [{"path": "models/m.pkl", "md5": "2"}, {"path": "metrics/m.json", "md5": "3"}]},
        },
    }
    assert pipeline_state.lock_outputs(lock) == {"data/processed": "1.dir", "models/m.pkl": "2", "metrics/m.json": "3"}
    assert pipeline_state.lock_outputs({}) == {}


def test_outputs_that_match_dvc_lock_are_current(project: Path) -> None:
    assert pipeline_state.stale_stages(project) == {}
    pipeline_state.check_current(project)


def test_a_changed_param_names_the_stage_and_the_param(project: Path) -> None:
    (project / "params.yaml").write_text("prepare: {rows: 10}\ntrain: {lr: 0.5}\n")
    assert pipeline_state.stale_stages(project) == {"train": ["params.yaml train modified"]}
    with pytest.raises(pipeline_state.StaleOutputs) as stale:
        pipeline_state.check_current(project)
    assert "describe: stage train (params.yaml train modified): run `dvc repro`" in str(stale.value)
    assert "\n" not in str(stale.value)


def test_a_missing_output_names_its_stage(project: Path) -> None:
    (project / "metrics/train.json").unlink()
    assert pipeline_state.stale_stages(project) == {"train": ["metrics/train.json deleted"]}


def test_changed_data_names_the_stage_that_wrote_it_and_the_one_that_reads_it(project: Path) -> None:
    (project / "data/clean.csv").write_text("a\n2\n")
    assert pipeline_state.stale_stages(project) == {
        "prepare": ["data/clean.csv modified"],
        "train": ["data/clean.csv modified"],
    }


def test_a_changed_command_is_not_current(project: Path) -> None:
    (project / "dvc.yaml").write_text(PIPELINE.replace("python train.py", "python train.py --fast"))
    assert pipeline_state.stale_stages(project) == {"train": ["changed command"]}


def test_a_long_list_of_changes_stays_one_short_line_per_stage(project: Path) -> None:
    (project / "params.yaml").write_text("prepare: {rows: 5}\ntrain: {lr: 0.5}\n")
    (project / "dvc.yaml").write_text(PIPELINE.replace("python train.py", "python train.py --fast"))
    (project / "metrics/train.json").unlink()
    with pytest.raises(pipeline_state.StaleOutputs) as stale:
        pipeline_state.check_current(project)
    assert (
        "stage prepare (params.yaml prepare modified); "
        "stage train (params.yaml train modified, metrics/train.json deleted and 1 more): run `dvc repro`"
    ) in str(stale.value)


@pytest.mark.parametrize("folder", [".", "missing"])
def test_a_folder_without_a_pipeline_is_refused(tmp_path: Path, folder: str) -> None:
    with pytest.raises(pipeline_state.StaleOutputs, match="is not a DVC project"):
        pipeline_state.check_current(tmp_path / folder)
