"""The CI workflow (.github/workflows/tests.yml) and Dependabot's settings, read as GitHub reads them.

GitHub cannot be reached from a test, and act ignores trigger filters, so the triggers are checked with
GitHub's filter rules, the cache keys and the job graph by reading the workflow, and the steps that
decide something (is the cached environment current? did the workflow tests' inputs change?) are run
as they are written, in a scratch directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lib.paths import PROJ_ROOT

pytestmark = pytest.mark.unittest

WORKFLOW = ".github/workflows/tests.yml"
DEPENDABOT = ".github/dependabot.yml"
WORKFLOW_TESTS = ("tests/experiments_workflow_test.py", "tests/sweep_workflow_test.py", "tests/launch_test.py")
ENVIRONMENT_KEY = (
    "environment-${{ runner.os }}-python${{ steps.python.outputs.python-version }}"
    "-pipenv${{ steps.pipenv.outputs.version }}-${{ hashFiles('Pipfile.lock') }}"
)
PRE_COMMIT_KEY = (
    "pre-commit-${{ runner.os }}-python${{ steps.python.outputs.python-version }}"
    "-${{ hashFiles('.pre-commit-config.yaml') }}"
)


def load(name: str) -> dict:
    return yaml.safe_load((PROJ_ROOT / name).read_text(encoding="utf-8"))


def matches(pattern: str, name: str) -> bool:
    """GitHub's filter pattern: `*` stops at `/`, `**` does not, `?` and `+` repeat the character before
    them (zero or one, one or more), `[...]` is one character of a set, and `\\` escapes."""
    tokens = re.findall(r"\*\*|\*|\?|\+|\[[^\]]*\]|\\.|.", pattern)
    special = {"**": ".*", "*": "[^/]*", "?": "?", "+": "+"}
    regex = "".join(special.get(t, t if t.startswith(("[", "\\")) else re.escape(t)) for t in tokens)
    return re.fullmatch(regex, name) is not None


def selected(patterns: list[str], name: str) -> bool:
    """A filter list: the last pattern that matches decides, and `!pattern` excludes."""
    chosen = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if matches(pattern.removeprefix("!"), name):
            chosen = not negated
    return chosen


def push_triggers(workflow: dict, ref: str) -> bool:
    """Whether a push of `ref` starts `workflow`, by GitHub's rules for `on.push` branch and tag filters."""
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    if "push" not in on:
        return False
    push = on["push"] or {}
    kind, other = ("branches", "tags") if ref.startswith("refs/heads/") else ("tags", "branches")
    name = ref.split("/", 2)[2]
    if kind in push:
        return selected(push[kind], name)
    if f"{kind}-ignore" in push:
        return not selected(push[f"{kind}-ignore"], name)
    # Filters for the other kind of ref only: this kind never starts it. No filters: every push does.
    return not ({other, f"{other}-ignore"} & set(push))


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("run-*", "run-lr-20260101-120000-abc1234", True),
        ("run-*", "run-a/b", False),
        ("**", "feature/deep/branch", True),
        ("dependabot/**", "dependabot/pip/mlflow-3.18.0", True),
        ("v[12].?0+", "v2.00", True),
        ("v[12].?0+", "v3.0", False),
        ("release.x", "releasex", False),
    ],
)
def test_the_filter_matcher_follows_githubs_rules(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


def test_it_runs_on_pull_requests_branch_pushes_and_nightly_never_on_launch_tags() -> None:
    workflow = load(WORKFLOW)
    on = workflow[True]

    assert set(on) == {"pull_request", "push", "schedule"}
    assert on["pull_request"] is None  # every pull request, whatever it changes
    assert [entry["cron"] for entry in on["schedule"]] == ["17 3 * * *"]
    for branch in ("main", "feature/report", "run-like-a-branch", "sweep-x"):
        assert push_triggers(workflow, f"refs/heads/{branch}"), branch
    # Dependabot's branches run through their pull requests; the launch tags start experiments.yml and
    # sweep.yml, and no tag starts this workflow.
    for ref in (
        "refs/heads/dependabot/pip/mlflow-3.18.0",
        "refs/heads/dependabot/github_actions/actions-abc",
        "refs/tags/run-lr-20260101-120000-abc1234",
        "refs/tags/sweep-dnn_lr-20260101-120000-abc1234",
        "refs/tags/v1.0",
    ):
        assert not push_triggers(workflow, ref), ref


def test_a_newer_push_to_a_pull_request_cancels_its_older_run_and_nothing_else_is_cancelled() -> None:
    assert load(WORKFLOW)["concurrency"] == {
        # Pull requests share a group per number; any other run's group is its own run id.
        "group": "tests-${{ github.event_name }}-${{ github.event.pull_request.number || github.run_id }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }


def test_the_fast_lane_comes_first_and_the_integration_tests_follow_it() -> None:
    jobs = load(WORKFLOW)["jobs"]

    def commands(job: str) -> list[str]:
        return [step["run"] for step in jobs[job]["steps"] if step.get("run", "").startswith("make ")]

    assert set(jobs) == {"fast", "lock", "integration", "workflows"}
    assert "needs" not in jobs["fast"] and "needs" not in jobs["lock"]
    assert jobs["fast"]["timeout-minutes"] <= 15
    assert commands("fast") == ["make lint", "make unit"]
    assert jobs["integration"]["needs"] == "fast"
    assert commands("integration") == ["make integration"]
    assert jobs["workflows"]["needs"] == "fast"
    assert jobs["workflows"]["if"] == "needs.fast.outputs.workflow-tests == 'true'"
    assert commands("workflows") == ["make workflow-tests"]
    assert jobs["fast"]["outputs"] == {"workflow-tests": "${{ steps.changes.outputs.workflow-tests }}"}


def test_github_hosted_runners_least_permissions_and_pinned_actions() -> None:
    workflow = load(WORKFLOW)

    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert job["runs-on"] == "ubuntu-latest", name  # never the self-hosted GPU runners
        assert "permissions" not in job, name
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"an expression inline in a script: {step.get('name')}"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_the_locked_environment_is_cached_per_lock_python_and_pipenv_in_every_job_that_runs_make() -> None:
    jobs = load(WORKFLOW)["jobs"]
    caches = {}

    for name in ("fast", "integration", "workflows"):
        steps = jobs[name]["steps"]
        uses = [step.get("uses", "").split("@")[0] for step in steps]
        caches[name] = [step["with"] for step in steps if step.get("uses", "").startswith("actions/cache@")]
        assert caches[name][0] == {"path": ".venv\n.tools\n", "key": ENVIRONMENT_KEY}, name  # no restore-keys
        setup = next(i for i, step in enumerate(steps) if "make setup" in step.get("run", ""))
        assert uses.index("actions/setup-python") < uses.index("actions/cache") < setup, name
        assert [step.get("id") for step in steps[: uses.index("actions/cache")]][-2:] == ["python", "pipenv"]
    assert caches["fast"][1:] == [{"path": "~/.cache/pre-commit", "key": PRE_COMMIT_KEY}]
    assert (PROJ_ROOT / "Pipfile.lock").is_file() and (PROJ_ROOT / ".pre-commit-config.yaml").is_file()


def test_the_pipenv_version_in_the_key_is_the_makefiles(tmp_path: Path) -> None:
    [step] = [step for step in load(WORKFLOW)["jobs"]["fast"]["steps"] if step.get("id") == "pipenv"]
    output = tmp_path / "output"
    done = run_step(step["run"], PROJ_ROOT, GITHUB_OUTPUT=str(output))

    assert done.returncode == 0, done.stderr
    version = re.search(r"^PIPENV_VERSION := (\S+)$", (PROJ_ROOT / "Makefile").read_text(), re.M).group(1)
    assert output.read_text() == f"version={version}\n"


def test_a_restored_environment_needs_no_sync_and_a_missing_one_gets_it(tmp_path: Path) -> None:
    """The setup step after a cache hit: the stamp restored from the cache is older than the lock just
    checked out; the step's `touch -c` makes `make setup` a no-op. Without a cache, make must sync."""
    [step] = [step for step in load(WORKFLOW)["jobs"]["fast"]["steps"] if step.get("name") == "make setup"]
    check = step["run"].replace("make setup", "make --question setup")  # exit 1: something to do
    for name in ("Makefile", "Pipfile.lock"):
        shutil.copy2(PROJ_ROOT / name, tmp_path / name)
    (tmp_path / ".tools" / "bin").mkdir(parents=True)
    (tmp_path / ".tools" / "bin" / "pipenv").touch()

    assert run_step(check, tmp_path).returncode == 1  # no environment

    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".synced").touch()
    os.utime(tmp_path / ".venv" / ".synced", (1_000_000, 1_000_000))  # restored: older than the checkout

    assert run_step("make --question setup", tmp_path).returncode == 1
    assert run_step(check, tmp_path).returncode == 0


def test_the_lanes_split_the_integration_tests_between_them() -> None:
    integration, workflow_tests = make_dry_run("integration"), make_dry_run("workflow-tests")

    assert "-m integration" in integration and "-m integration" in workflow_tests
    for test in WORKFLOW_TESTS:
        assert f"--ignore={test}" in integration.split() and test in workflow_tests.split()
    # Every test that runs a workflow under act, or `make launch`, is in the workflow lane.
    act_users = {
        path.relative_to(PROJ_ROOT).as_posix()
        for path in (PROJ_ROOT / "tests").glob("*_test.py")
        if re.search(r"\brun_act\(|\"make\", \"launch\"", path.read_text(encoding="utf-8"))
    }
    assert act_users == set(WORKFLOW_TESTS)


def make_dry_run(target: str) -> str:
    """The commands `make target` would run, the environment taken as ready."""
    done = subprocess.run(
        ["make", "--dry-run", "--old-file=.venv/.synced", target],
        cwd=PROJ_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def run_step(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A `run:` script as the runner runs it (bash), in `cwd`, with `env` added."""
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, str]:
    """A repository with the project's Makefile and one commit; returns it and that commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(PROJ_ROOT / "Makefile", repo / "Makefile")
    (repo / "lib").mkdir()
    (repo / "lib" / "x.py").write_text("x = 1\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo, git(repo, "rev-parse", "HEAD")


def git(repo: Path, *args: str) -> str:
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false")
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def workflow_tests_needed(repo: Path, event: str, base: str) -> bool:
    """Run the fast job's `changes` step in `repo`; returns its `workflow-tests` output."""
    [step] = [step for step in load(WORKFLOW)["jobs"]["fast"]["steps"] if step.get("id") == "changes"]
    assert step["env"] == {
        "EVENT": "${{ github.event_name }}",
        "BASE": "${{ github.event.pull_request.base.sha || github.event.before }}",
    }
    output = repo.parent / "output"
    output.write_text("")
    done = run_step(step["run"], repo, EVENT=event, BASE=base, GITHUB_OUTPUT=str(output))
    assert done.returncode == 0, done.stderr
    [line] = output.read_text().splitlines()
    return {"workflow-tests=true": True, "workflow-tests=false": False}[line]


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ("lib/x.py", False),
        ("README.md", False),
        (".github/workflows/experiments.yml", True),
        (".github/actions/environment/action.yml", True),
        (".ci/launch", True),
        ("Makefile", True),
        ("Pipfile.lock", True),
        ("tests/act_support.py", True),
        *[(test, True) for test in WORKFLOW_TESTS],
    ],
)
@pytest.mark.parametrize("event", ["pull_request", "push"])
def test_the_workflow_tests_run_when_their_inputs_change(
    history: tuple[Path, str], event: str, changed: str, expected: bool
) -> None:
    repo, base = history
    path = repo / changed
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write("# changed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"change {changed}")

    assert workflow_tests_needed(repo, event, base) is expected


@pytest.mark.parametrize(
    ("event", "base"),
    [
        ("schedule", ""),  # nightly
        ("push", "0" * 40),  # a new branch
        ("push", "ab" * 20),  # a force push: the old tip is not here
    ],
)
def test_the_workflow_tests_run_nightly_and_whenever_the_history_is_unknown(
    history: tuple[Path, str], event: str, base: str
) -> None:
    repo, _ = history
    assert workflow_tests_needed(repo, event, base) is True


def test_dependabot_bumps_the_actions_and_the_lock_torch_by_hand() -> None:
    config = load(DEPENDABOT)
    updates = {update["package-ecosystem"]: update for update in config["updates"]}

    assert config["version"] == 2
    assert set(updates) == {"github-actions", "pip"}
    assert updates["github-actions"]["directories"] == ["/", "/.github/actions/*"]
    assert updates["pip"]["directory"] == "/" and (PROJ_ROOT / "Pipfile.lock").is_file()
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly"
        assert update["cooldown"]["default-days"] >= 7
    assert updates["pip"]["ignore"] == [{"dependency-name": "torch"}]
    assert list((PROJ_ROOT / "lab/docs/decisions").glob("0001-*.md"))


def test_the_lock_job_checks_the_lock_and_the_gpu_runners_torch() -> None:
    steps = load(WORKFLOW)["jobs"]["lock"]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps)

    assert ".tools/bin/pipenv verify" in scripts
    assert "https://pypi.org/pypi/torch/json" in scripts and "-cp311-cp311-manylinux" in scripts


def test_the_quality_gates_page_names_every_job_as_a_required_check() -> None:
    page = (PROJ_ROOT / "lab/docs/quality-gates.md").read_text(encoding="utf-8")
    required = page.split("## Required checks", 1)[1].split("\n## ", 1)[0]

    for job in load(WORKFLOW)["jobs"].values():
        assert f"`{job['name']}`" in required, job["name"]
