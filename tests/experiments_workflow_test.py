"""The launch workflow, run for real: .github/workflows/experiments.yml under `act`, on this machine.

A bare git repository stands in for GitHub, moto's S3 server for the DVC remote and a local `mlflow
server` for the team's. `make launch` pushes two `run-*` tags on one commit; act then runs the workflow
for each in turn, as the per-branch concurrency group would, so the second run's push is rejected and
must rebase. The runner takes the CPU path (the ALLOW_CPU_RUNNER variable) and finds the project's own
.venv seeded into its environment cache, so nothing is installed. act ignores `on.push.tags`: the
trigger is checked separately, by reading the workflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.act_support import BUCKET, LAUNCH_FILES, REMOTE_URL, git, publish, run_act, seed_runner
from tests.support import (
    S3_KEYS,
    free_port,
    make_project_copy,
    run,
    running_mlflow_server,
    running_s3_server,
    shrunk_params,
)

WORKFLOW = ".github/workflows/experiments.yml"
STAGES = ("prepare_data", "train_standard_classifiers", "train_dnn_pytorch")
LAUNCH_DIRS = (".ci", ".github", "goals")
SUBJECT = "Two epochs for the network"
GOALS = "goals/goals.yaml"
ENVIRONMENT_ACTION = "./.github/actions/environment"


@dataclass
class Lab:
    """The stand-ins for GitHub, S3 and MLflow, and the clone the tags were launched from."""

    root: Path
    remote: Path
    clone: Path
    mlflow: str
    s3: str
    start: str
    tags: tuple[str, str]


@dataclass
class Run:
    """One workflow run: its tag, act's output, and the branch's tip right after it."""

    tag: str
    run_id: str
    output: str
    returncode: int
    tip: str


def relax_goals(path: Path) -> None:
    """Thresholds any trained model meets: the shrunk pipeline cannot meet the team's goals, and what is
    under test here is that the workflow runs them, not the models."""
    goals = yaml.safe_load(path.read_text(encoding="utf-8"))
    for model in goals.get("models", {}).values():
        for bound, value in (("minimum", 0.0), ("maximum", 1e9)):
            if model.get(bound):
                model[bound] = dict.fromkeys(model[bound], value)
    for comparison in goals.get("comparisons") or []:
        if comparison.get("max_shortfall"):
            comparison["max_shortfall"] = dict.fromkeys(comparison["max_shortfall"], 1.0)
    path.write_text(yaml.safe_dump(goals, sort_keys=False), encoding="utf-8")


def launch(clone: Path, name: str) -> str:
    """`make launch NAME=name` in the clone; returns the tag it pushed."""
    done = run(["make", "launch", f"NAME={name}"], clone)
    assert done.returncode == 0, done.stdout + done.stderr
    return re.search(r"launched (run-\S+)", done.stdout).group(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Servers, a bare remote holding the project, and two tags launched on its tip."""
    root = tmp_path_factory.mktemp("launch")
    with running_mlflow_server(root / "mlflow") as mlflow_uri, running_s3_server(root / "s3", BUCKET) as s3:
        clone = make_project_copy(root / "clone", shrunk_params())
        for name in LAUNCH_FILES:
            shutil.copy2(PROJ_ROOT / name, clone / name)
        for name in LAUNCH_DIRS:
            if (PROJ_ROOT / name).is_dir():
                shutil.copytree(PROJ_ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
        if (clone / GOALS).exists():
            relax_goals(clone / GOALS)
        identity = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")
        git("add", "-A", cwd=clone)
        git(*identity, "commit", "-qm", "Launch workflow and environment", cwd=clone)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["train_dnn_pytorch"]["epochs"] = 2
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        git(*identity, "commit", "-qam", SUBJECT, cwd=clone)

        remote = publish(clone, root)
        tags = (launch(clone, "first"), launch(clone, "second"))
        seed_runner(root, clone, remote)
        yield Lab(root, remote, clone, mlflow_uri, s3, git("rev-parse", "HEAD", cwd=clone), tags)


def run_workflow(lab: Lab, tag: str, run_id: str, **variables: str) -> Run:
    """Run experiments.yml with act for a push of `tag`, as GitHub would on a self-hosted GPU runner.

    `variables` replace the repository variables the test gives by default.
    """
    variables = {
        "ALLOW_CPU_RUNNER": "true",
        "MLFLOW_TRACKING_URI": lab.mlflow,
        "DVC_REMOTE_URL": REMOTE_URL,
        "S3_ENDPOINT_URL": lab.s3,
        **variables,
    }
    done = run_act(lab.root, lab.clone, WORKFLOW, tag, run_id, SUBJECT, variables)
    tip = git("rev-parse", "refs/heads/main", cwd=lab.remote)
    return Run(tag, run_id, done.stdout + done.stderr, done.returncode, tip)


@pytest.fixture(scope="module")
def first_run(lab: Lab) -> Run:
    """The workflow run for the first tag."""
    return run_workflow(lab, lab.tags[0], "101")


@pytest.fixture(scope="module")
def second_run(lab: Lab, first_run: Run) -> Run:
    """The run for the second tag on the same commit, after the first one's results landed."""
    return run_workflow(lab, lab.tags[1], "102")


def fresh_clone_pulls(lab: Lab, commit: str, destination: Path) -> Path:
    """Clone the remote at `commit`, `dvc pull` from the S3 server, and check the workspace is complete."""
    git("clone", "--quiet", str(lab.remote), str(destination), cwd=lab.root)
    git("checkout", "--quiet", commit, cwd=destination)
    for key, value in (("url", REMOTE_URL), ("endpointurl", lab.s3)):
        done = run(["dvc", "remote", "modify", "--local", "storage", key, value], destination)
        assert done.returncode == 0, done.stderr
    pulled = run(["dvc", "pull"], destination, **S3_KEYS)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    status = run(["dvc", "status"], destination)
    assert status.returncode == 0 and "Data and pipelines are up to date" in status.stdout, status.stdout
    return destination


def tagged_runs(lab: Lab, tag: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=lab.mlflow)
    experiment = client.get_experiment_by_name("reprolab-example")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`git.tag` = '{tag}'", max_results=1000)


def assert_succeeded(result: Run) -> None:
    assert result.returncode == 0, result.output[-6000:]
    assert "reusing the environment" in result.output, "the seeded environment cache was not used"
    assert "Success - Main goals" in result.output
    assert re.search(r"\d+ passed", result.output), "the goals did not run"  # pytest colours it under act


@pytest.mark.integration
def test_a_tagged_run_commits_its_results_to_the_branch(lab: Lab, first_run: Run) -> None:
    assert_succeeded(first_run)
    subject, parent = git("log", "-1", "--format=%s%n%P", first_run.tip, cwd=lab.remote).splitlines()
    assert subject == f"{SUBJECT}-results"
    assert parent == lab.start
    committed = set(git("diff", "--name-only", lab.start, first_run.tip, cwd=lab.remote).splitlines())
    assert {"dvc.lock", "metrics/data.json", "metrics/classifiers.json", "metrics/dnn.json"} <= committed
    assert all(path == "dvc.lock" or path.startswith("metrics/") or path.endswith(".gitignore") for path in committed)
    lock = yaml.safe_load(git("show", f"{first_run.tip}:dvc.lock", cwd=lab.remote))
    assert set(lock["stages"]) == set(STAGES)
    # The metrics committed are the ones dvc.lock records, byte for byte.
    for stage in lock["stages"].values():
        for out in stage["outs"]:
            if out["path"].startswith("metrics/"):
                blob = subprocess.run(
                    ["git", "show", f"{first_run.tip}:{out['path']}"], cwd=lab.remote, capture_output=True, check=True
                ).stdout
                assert hashlib.md5(blob).hexdigest() == out["md5"], out["path"]


@pytest.mark.integration
def test_a_fresh_clone_pulls_every_output_named_in_dvc_lock(lab: Lab, first_run: Run, tmp_path: Path) -> None:
    assert_succeeded(first_run)

    clone = fresh_clone_pulls(lab, first_run.tip, tmp_path / "fresh")

    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage["outs"]:
            assert (clone / out["path"]).exists(), out["path"]
    dnn = json.loads((clone / "metrics" / "dnn.json").read_text())
    assert dnn["best_epoch"] <= 2  # the tagged commit's params: two epochs


@pytest.mark.integration
def test_mlflow_holds_a_run_per_stage_tagged_with_the_tag_and_commit(lab: Lab, first_run: Run) -> None:
    assert_succeeded(first_run)

    runs = tagged_runs(lab, first_run.tag)

    stage_runs = {run.data.tags["dvc.stage"]: run for run in runs if "mlflow.parentRunId" not in run.data.tags}
    assert set(stage_runs) == set(STAGES)
    for found in runs:
        assert found.data.tags["git.commit"] == lab.start
        assert found.data.tags["git.branch"] == "main"
        assert found.data.tags["pipeline_run_id"] == "gh-101-1"
        assert found.info.status == "FINISHED"
    assert stage_runs["train_dnn_pytorch"].data.params["train_dnn_pytorch.epochs"] == "2"


@pytest.mark.integration
def test_the_job_summary_shows_params_metrics_and_mlflow_links(lab: Lab, first_run: Run) -> None:
    assert_succeeded(first_run)
    output = first_run.output

    assert f"## {first_run.tag}" in output
    assert re.search(r"\| params\.yaml\s+\| train_dnn_pytorch\.epochs\s+\| 3\s+\| 2\s+\|", output), output[-6000:]
    assert re.search(r"\| metrics/dnn\.json\s+\| test/roc_auc\s+\| -\s+\| 0\.\d+", output)
    for found in tagged_runs(lab, first_run.tag):
        assert f"{lab.mlflow}/#/experiments/{found.info.experiment_id}/runs/{found.info.run_id}" in output
    assert f"results: {first_run.tip} on main" in output


@pytest.mark.integration
def test_two_runs_from_one_commit_both_land_in_turn(lab: Lab, first_run: Run, second_run: Run, tmp_path: Path) -> None:
    assert_succeeded(first_run)
    assert_succeeded(second_run)
    assert "push rejected (attempt 1)" in second_run.output

    second_parent, second_subject = git("log", "-1", "--format=%P%n%s", second_run.tip, cwd=lab.remote).splitlines()
    first_parent, first_subject = git("log", "-1", "--format=%P%n%s", first_run.tip, cwd=lab.remote).splitlines()
    assert second_parent == first_run.tip, "the second results commit is not on top of the first"
    assert first_parent == lab.start
    assert first_subject == second_subject == f"{SUBJECT}-results"
    fresh_clone_pulls(lab, second_run.tip, tmp_path / "fresh")
    runs = tagged_runs(lab, second_run.tag)
    assert {run.data.tags["dvc.stage"] for run in runs} == set(STAGES)
    assert {run.data.tags["pipeline_run_id"] for run in runs} == {"gh-102-1"}


@pytest.mark.integration
def test_a_run_whose_mlflow_server_does_not_answer_stops_before_any_stage(lab: Lab) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    before = git("rev-parse", "refs/heads/main", cwd=lab.remote)

    stopped = run_workflow(lab, lab.tags[0], "103", MLFLOW_TRACKING_URI=closed)

    assert stopped.returncode != 0
    assert f"MLflow tracking server {closed} does not answer" in stopped.output
    assert "Running stage" not in stopped.output
    assert stopped.tip == before, "a failed run committed to the branch"


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A checkout as the branch job sees it: commits a <- b, origin/main at b, origin/old at a."""
    repo = tmp_path / "repo"
    repo.mkdir()
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")
    git("init", "--quiet", cwd=repo)
    for message in ("a", "b"):
        git(*identity, "commit", "--quiet", "--allow-empty", "-m", message, cwd=repo)
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=repo)
    git("update-ref", "refs/remotes/origin/old", "HEAD~1", cwd=repo)
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main", cwd=repo)
    return repo


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("checkout", "base_ref", "found"),
    [
        ("HEAD", "", "main"),  # the tip of one branch
        ("HEAD~1", "", "old"),  # the tip of one branch, contained in two
        ("HEAD~1", "refs/heads/main", "main"),  # GitHub said which
    ],
)
def test_the_branch_job_finds_the_branch_of_the_tagged_commit(
    history: Path, checkout: str, base_ref: str, found: str
) -> None:
    git("checkout", "--quiet", "--detach", checkout, cwd=history)

    done, output = find_branch(history, base_ref)

    assert done.returncode == 0, done.stderr
    assert output == f"branch={found}\n"


@pytest.mark.unittest
def test_the_branch_job_refuses_a_commit_of_several_branches(history: Path) -> None:
    git("update-ref", "refs/remotes/origin/feature", "HEAD", cwd=history)
    git("checkout", "--quiet", "--detach", "HEAD", cwd=history)

    done, output = find_branch(history, "")

    assert done.returncode != 0
    assert "cannot tell which branch its commit belongs to (candidates: feature main)" in done.stdout
    assert output == ""


def find_branch(repo: Path, base_ref: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the branch job's script in `repo`; returns the result and what it wrote to GITHUB_OUTPUT."""
    workflow = yaml.safe_load((PROJ_ROOT / WORKFLOW).read_text(encoding="utf-8"))
    [script] = [step["run"] for step in workflow["jobs"]["branch"]["steps"] if step.get("id") == "find"]
    output = repo.parent / "github-output"
    output.touch()
    env = {"PATH": os.environ["PATH"], "BASE_REF": base_ref, "TAG": "run-x", "GITHUB_OUTPUT": str(output)}
    done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, check=False)
    return done, output.read_text()


def push_triggers(workflow: dict, ref: str) -> bool:
    """Whether a push of `ref` starts `workflow`, by GitHub's rules for `on.push` branch and tag filters."""
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    push = on.get("push", False) if isinstance(on, dict) else False
    if push is False:
        return False
    push = push or {}
    kind, other = ("branches", "tags") if ref.startswith("refs/heads/") else ("tags", "branches")
    name = ref.split("/", 2)[2]
    if kind not in push and f"{kind}-ignore" not in push:
        # Filters for the other kind of ref only: this kind never starts it. No filters: every push does.
        return not ({other, f"{other}-ignore"} & set(push))

    def matches(pattern: str) -> bool:  # GitHub's `*` stops at `/`, `**` does not
        parts = re.split(r"(\*\*|\*)", pattern)
        regex = "".join({"**": ".*", "*": "[^/]*"}.get(part, re.escape(part)) for part in parts)
        return re.fullmatch(regex, name) is not None

    if kind in push:
        return any(matches(pattern) for pattern in push[kind])
    return not any(matches(pattern) for pattern in push[f"{kind}-ignore"])


@pytest.mark.unittest
def test_only_run_tags_trigger_the_pipeline_and_results_never_do() -> None:
    workflow = yaml.safe_load((PROJ_ROOT / WORKFLOW).read_text(encoding="utf-8"))
    on = workflow.get("on", workflow.get(True))

    assert on == {"push": {"tags": ["run-*"]}}  # no branches, pull requests, schedules or manual runs
    assert push_triggers(workflow, "refs/tags/run-lr-sweep-20260101-120000-abc1234")
    for ref in ("refs/tags/v1.0", "refs/tags/xrun-1", "refs/tags/run", "refs/heads/main", "refs/heads/run-x"):
        assert not push_triggers(workflow, ref), ref
    # The results commit goes to a branch, and is never a tag: it cannot start another run.
    push_step = workflow["jobs"]["pipeline"]["steps"][-1]["run"]
    assert re.search(r'git push [^\n]*origin "HEAD:refs/heads/\$BRANCH"', push_step)
    assert "refs/tags" not in push_step
    assert "-results" in push_step


@pytest.mark.unittest
def test_the_pipeline_job_runs_on_gpu_runners_with_least_permissions() -> None:
    workflow = yaml.safe_load((PROJ_ROOT / WORKFLOW).read_text(encoding="utf-8"))
    jobs = workflow["jobs"]

    assert workflow["permissions"] == {}
    assert jobs["branch"]["permissions"] == {"contents": "read"}
    assert jobs["pipeline"]["permissions"] == {"contents": "write"}
    assert set(jobs["pipeline"]["runs-on"]) == {"self-hosted", "gpu"}
    assert jobs["pipeline"]["if"] == "startsWith(github.ref, 'refs/tags/run-')"
    assert jobs["pipeline"]["concurrency"] == {
        "group": "experiments-${{ needs.branch.outputs.branch }}",
        "cancel-in-progress": False,
    }
    steps = [step for job in jobs.values() for step in job["steps"]]
    for step in steps:
        assert "${{" not in step.get("run", ""), f"an expression inline in a script: {step.get('name')}"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
        if "uses" in step and not step["uses"].startswith("./"):  # the repository's own actions need no pin
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


@pytest.mark.unittest
@pytest.mark.parametrize("workflow", [WORKFLOW, ".github/workflows/sweep.yml"])
def test_the_workflows_build_the_runner_environment_with_the_one_action(workflow: str) -> None:
    jobs = yaml.safe_load((PROJ_ROOT / workflow).read_text(encoding="utf-8"))["jobs"]
    on_runners = [job for job in jobs.values() if "self-hosted" in job["runs-on"]]

    assert on_runners
    for job in on_runners:
        [environment] = [step for step in job["steps"] if step.get("uses") == ENVIRONMENT_ACTION]
        assert environment["with"] == {"allow-cpu-runner": "${{ vars.ALLOW_CPU_RUNNER }}"}
        scripts = "".join(step.get("run", "") for step in job["steps"])
        assert "pipenv" not in scripts and "torch.cuda" not in scripts, "a copy of the environment action"
    assert (PROJ_ROOT / ENVIRONMENT_ACTION / "action.yml").is_file()
