"""Tests for runtimes/build.py: artefact names, the outputs check, raw examples, metadata, finding a runtime."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.params import ParamsError
from lib.pipeline_state import StaleOutputs
from runtimes import build

pytestmark = pytest.mark.unittest

CONFIG = build.RuntimeConfig(name="cancer-model", version="2.1.0")
COMMIT = "3f4a8c3" + "0" * 33


def test_artifact_name_is_name_version_short_commit_and_marks_a_dirty_tree() -> None:
    assert build.artifact_name(CONFIG, build.GitState(COMMIT, dirty=False)) == "cancer-model-2.1.0-3f4a8c3"
    assert build.artifact_name(CONFIG, build.GitState(COMMIT, dirty=True)) == "cancer-model-2.1.0-3f4a8c3-dirty"


def test_the_committed_runtime_config_is_valid() -> None:
    config = build.read_config()
    assert config.name and config.version


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: Cancer Model\nversion: 1.0.0\n", "runtime.name: string should match pattern"),
        ("name: cancer\n", "runtime.version: required key is missing"),
        ("name: cancer\nversion: 1.0.0\nport: 80\n", "runtime.port: unknown key"),
    ],
)
def test_a_bad_runtime_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "runtime.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message):
        build.read_config(tmp_path / "runtime.yaml")


def test_raw_rows_undo_the_scaling_and_the_one_hot_encoding() -> None:
    from lab.processes.prepare_data.preprocessing import fit_preprocessing, transform

    train = pd.DataFrame({"kind": ["x", "y", "x", "z"], "a": [8.0, 12.0, 10.0, 10.0], "b": [-2.5, -1.5, -2.0, -2.0]})
    preprocessing = fit_preprocessing(train.astype({"kind": object}), scale=True)
    processed = transform(preprocessing, train).assign(target=[0, 1, 0, 1])
    raw = build.raw_rows(processed, preprocessing, rows=3)
    assert list(raw.columns) == ["kind", "a", "b"]  # the train file's order, not the transformer's
    assert raw.to_dict("list") == {"kind": ["x", "y", "x"], "a": [8.0, 12.0, 10.0], "b": [-2.5, -1.5, -2.0]}
    assert raw["a"].dtype == np.float64 and raw["kind"].dtype == object


def test_raw_rows_of_unscaled_numbers_are_the_numbers() -> None:
    from lab.processes.prepare_data.preprocessing import fit_preprocessing, transform

    train = pd.DataFrame({"a": [1.5, 2.5]})
    preprocessing = fit_preprocessing(train, scale=False)
    assert build.raw_rows(transform(preprocessing, train), preprocessing, rows=5).equals(train)


def test_git_state_reads_the_commit_and_sees_uncommitted_changes(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    with pytest.raises(build.RuntimeBuildError, match="not a git repository"):
        build.git_state(tmp_path)
    git("init", "-q")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    git("add", "-A")
    git("commit", "-qm", "results")
    clean = build.git_state(tmp_path)
    assert len(clean.commit) == 40 and not clean.dirty
    (tmp_path / "untracked.txt").write_text("ignored: only tracked files count")
    assert not build.git_state(tmp_path).dirty
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert build.git_state(tmp_path).dirty


def test_metadata_ties_the_runtime_to_commit_params_metrics_and_data() -> None:
    info = build.metadata(
        CONFIG,
        build.GitState(COMMIT, dirty=False),
        {"seed": 42},
        {"metrics/dnn.json": {"test/roc_auc": 0.99}, "metrics/classifiers.json": {"selected": "knn"}},
        {"data/processed": "abc.dir", "models/classifier.pkl": "def"},
    )
    assert info["artifact"] == "cancer-model-2.1.0-3f4a8c3"
    assert info["git"] == {"commit": COMMIT, "short": "3f4a8c3", "dirty": False}
    assert info["data_version"] == "abc.dir"
    assert info["dvc_lock_outs"]["models/classifier.pkl"] == "def"
    assert info["params"] == {"seed": 42} and info["metrics"]["metrics/dnn.json"]["test/roc_auc"] == 0.99
    assert info["model"]["selected"] == "knn"


def test_build_refuses_a_folder_without_current_pipeline_outputs(tmp_path: Path) -> None:
    with pytest.raises(StaleOutputs, match=r"is not a DVC project"):
        build.build(tmp_path, tmp_path / "dist", CONFIG)


def test_runtime_dir_finds_this_checkouts_runtime_or_says_to_build_it(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-qm", "c"], cwd=tmp_path,
                   check=True)  # fmt: skip
    folder = tmp_path / "dist" / build.artifact_name(CONFIG, build.git_state(tmp_path))
    with pytest.raises(build.RuntimeBuildError, match=r"no runtime at .*: build it first \(make runtime\)"):
        build.runtime_dir(tmp_path, tmp_path / "dist", CONFIG)
    (folder / build.MODEL_DIR).mkdir(parents=True)
    (folder / build.MODEL_DIR / "MLmodel").write_text("flavors: {}\n")
    (folder / build.METADATA_FILE).write_text("{}\n")
    assert build.runtime_dir(tmp_path, tmp_path / "dist", CONFIG) == folder


@pytest.mark.parametrize("missing", ["nothing built", build.METADATA_FILE, "model_dir/model/MLmodel"])
def test_a_folder_without_a_built_runtime_says_how_to_build_one(tmp_path: Path, missing: str) -> None:
    if missing != "nothing built":  # the register command's --runtime: both the model and runtime.json are needed
        for path in (tmp_path / build.MODEL_DIR / "MLmodel", tmp_path / build.METADATA_FILE):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
        (tmp_path / missing).unlink()
    with pytest.raises(build.RuntimeBuildError, match=r"no runtime at .*: build it first \(make runtime\)"):
        build.built_runtime(tmp_path)
