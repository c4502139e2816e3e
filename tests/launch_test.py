"""`make launch NAME=...`: a unique run-* tag on HEAD, pushed; refused when the runner would run something else."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lib.paths import PROJ_ROOT
from tests.support import run

pytestmark = pytest.mark.integration

IDENTITY = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def remote_tags(remote: Path) -> list[str]:
    return git("tag", "--list", cwd=remote).splitlines()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone holding the Makefile and .ci/launch, pushed to a bare remote, tracking origin/main."""
    remote = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy2(PROJ_ROOT / "Makefile", clone / "Makefile")
    shutil.copy2(PROJ_ROOT / ".ci" / "launch", clone / ".ci" / "launch")
    (clone / "params.yaml").write_text("seed: 42\n")
    git("init", "--quiet", "-b", "main", cwd=clone)
    git("add", "-A", cwd=clone)
    git("commit", "--quiet", "-m", "Try seed 42", cwd=clone)
    git("remote", "add", "origin", str(remote), cwd=clone)
    git("push", "--quiet", "-u", "origin", "main", cwd=clone)
    return clone


def launch(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["make", "launch", *args], clone)


def test_launch_pushes_a_run_tag_on_head(clone: Path) -> None:
    done = launch(clone, "NAME=lr-sweep")

    assert done.returncode == 0, done.stderr
    remote = clone.parent / "remote.git"
    [tag] = remote_tags(remote)
    head = git("rev-parse", "HEAD", cwd=clone)
    assert re.fullmatch(rf"run-lr-sweep-\d{{8}}-\d{{6}}-{head[:7]}", tag)
    assert git("rev-parse", f"{tag}^{{commit}}", cwd=remote) == head
    assert f"launched {tag} on main" in done.stdout
    assert "git pull && dvc pull" in done.stdout


def test_two_launches_of_one_commit_get_two_tags(clone: Path) -> None:
    assert launch(clone, "NAME=a").returncode == 0
    assert launch(clone, "NAME=b").returncode == 0

    assert len(remote_tags(clone.parent / "remote.git")) == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "usage: make launch NAME=<name>"),
        ("a b", "NAME 'a b'"),
        ("../x", "NAME '../x'"),
        ("-x", "NAME '-x'"),
        ("a..b", "NAME 'a..b' does not make a valid tag name"),
    ],
)
def test_launch_refuses_a_missing_or_odd_name(clone: Path, name: str, message: str) -> None:
    done = launch(clone, f"NAME={name}")

    assert done.returncode != 0
    assert message in done.stderr
    assert remote_tags(clone.parent / "remote.git") == []


def test_launch_refuses_uncommitted_changes(clone: Path) -> None:
    (clone / "params.yaml").write_text("seed: 7\n")

    done = launch(clone, "NAME=x")

    assert done.returncode != 0
    assert "uncommitted changes" in done.stderr
    assert remote_tags(clone.parent / "remote.git") == []
    assert git("tag", "--list", cwd=clone) == ""


def test_launch_refuses_a_commit_not_pushed(clone: Path) -> None:
    (clone / "params.yaml").write_text("seed: 7\n")
    git("commit", "--quiet", "-am", "Try seed 7", cwd=clone)

    done = launch(clone, "NAME=x")

    assert done.returncode != 0
    assert "HEAD is not the tip of origin/main: push your commits" in done.stderr
    assert remote_tags(clone.parent / "remote.git") == []


def test_launch_refuses_a_branch_without_upstream(clone: Path) -> None:
    git("checkout", "--quiet", "-b", "local-only", cwd=clone)

    done = launch(clone, "NAME=x")

    assert done.returncode != 0
    assert "local-only has no upstream branch: git push -u origin local-only" in done.stderr


def test_launch_refuses_a_tip_shared_with_another_branch(clone: Path) -> None:
    git("checkout", "--quiet", "-b", "experiment", cwd=clone)
    git("push", "--quiet", "-u", "origin", "experiment", cwd=clone)

    done = launch(clone, "NAME=x")

    assert done.returncode != 0
    assert "HEAD is also the tip of main on origin" in done.stderr
    assert remote_tags(clone.parent / "remote.git") == []
