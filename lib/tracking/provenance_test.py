"""provenance.py: the pipeline run id and the tags that tie a run to its code and launch."""

import socket
import subprocess
from pathlib import Path

import pytest

from lib.tracking import provenance
from lib.tracking.provenance import ENV_BRANCH, ENV_PIPELINE_RUN_ID, pipeline_run_id, run_tags

# Each test carries its own marker (no module-wide `pytestmark`): markers add up, and a test that
# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.

# ---- pipeline_run_id and run_tags -------------------------------------------------------------------


@pytest.mark.unittest
def test_pipeline_run_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PIPELINE_RUN_ID, "run-2024-01")

    assert pipeline_run_id() == "run-2024-01"


@pytest.mark.unittest
def test_pipeline_run_id_without_the_environment_is_a_stable_hex_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "_dvc_ancestor", lambda: None)

    first = pipeline_run_id()

    assert len(first) == 32
    int(first, 16)
    assert pipeline_run_id() == first


@pytest.mark.unittest
def test_pipeline_run_id_is_shared_by_stages_of_one_dvc_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "_dvc_ancestor", lambda: (4242, 1700000000.5))
    first = pipeline_run_id()
    pipeline_run_id.cache_clear()
    second = pipeline_run_id()
    pipeline_run_id.cache_clear()
    monkeypatch.setattr(provenance, "_dvc_ancestor", lambda: (4243, 1700000000.5))

    assert first == second
    assert pipeline_run_id() != first


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_tie_a_run_to_code_stage_and_pipeline_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PIPELINE_RUN_ID, "pipe-1")
    monkeypatch.setenv("RUNNER_NAME", "runner-7")

    tags = run_tags("train_forest")

    assert tags == {
        "mlflow.source.git.commit": "c0ffee",
        "git.commit": "c0ffee",
        "git.branch": "feature/x",
        "git.dirty": "false",
        "dvc.stage": "train_forest",
        "pipeline_run_id": "pipe-1",
        "runner": "runner-7",
    }


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_runner_defaults_to_the_host_name() -> None:
    assert run_tags("s")["runner"] == socket.gethostname()


@pytest.mark.unittest
def test_run_tags_report_a_dirty_tree_but_not_pipeline_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("code.py", "dvc.lock", "metrics/dnn.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", *command], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "untracked.txt").write_text("new\n")
    (tmp_path / "dvc.lock").write_text("v2\n")  # DVC rewrites these during `dvc repro`
    (tmp_path / "metrics/dnn.json").write_text("v2\n")

    assert run_tags("s")["git.dirty"] == "false"

    (tmp_path / "code.py").write_text("v2\n")

    assert run_tags("s")["git.dirty"] == "true"


@pytest.mark.unittest
def test_run_tags_without_git_say_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "git", lambda *args: None)

    tags = run_tags("s")

    assert (tags["git.commit"], tags["git.branch"], tags["git.dirty"]) == ("unknown", "unknown", "unknown")


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_take_the_tag_only_from_a_tag_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF_NAME", "v1.2.0")
    assert "git.tag" not in run_tags("s")

    monkeypatch.setenv("GITHUB_REF_TYPE", "tag")
    tags = run_tags("s")

    assert tags["git.tag"] == "v1.2.0"
    assert tags["git.branch"] == "feature/x"


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_take_the_branch_from_a_branch_ref_and_the_commit_from_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF_TYPE", "branch")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.setenv("GITHUB_SHA", "abc123")

    tags = run_tags("s")

    assert (tags["git.branch"], tags["git.commit"], tags["mlflow.source.git.commit"]) == ("main", "abc123", "abc123")
    assert "git.tag" not in tags


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_the_branch_variable_overrides_ci_and_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_HEAD_REF", "pr-branch")
    assert run_tags("s")["git.branch"] == "pr-branch"

    monkeypatch.setenv(ENV_BRANCH, "chosen")

    assert run_tags("s")["git.branch"] == "chosen"


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_add_the_device_and_dvc_experiment_when_known(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "device" not in run_tags("s")
    assert "dvc.experiment" not in run_tags("s")

    monkeypatch.setenv("DVC_EXP_NAME", "exp-abc")
    tags = run_tags("s", device="cuda")

    assert (tags["device"], tags["dvc.experiment"]) == ("cuda", "exp-abc")
