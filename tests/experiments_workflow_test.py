"""The launch workflow, run for real: .github/workflows/experiments.yml under `act`, on this machine.

A bare git repository stands in for GitHub, moto's S3 server for the DVC remote, and a local `mlflow
server` on PostgreSQL with its artefacts on that S3 server for the team's. `make launch` pushes a `run-*`
tag and act runs the workflow for it alone. Then three launches of one branch (a second tag on that
commit, and tags on two newer commits) start at the same time, as on three free runners of one machine:
all three must land their results commits, their data on the S3 remote and their MLflow runs. The
runner takes the CPU path (the ALLOW_CPU_RUNNER variable) and finds the project's own .venv seeded into
its environment cache, so nothing is installed.
act ignores `on.push.tags`: the trigger is checked separately, by reading the workflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.act_support import BUCKET, LAUNCH_FILES, REMOTE_URL, finish_act, git, publish, seed_runner, start_act
from tests.support import (
    S3_KEYS,
    free_port,
    make_project_copy,
    run,
    running_team_stack,
    shrunk_params,
)

WORKFLOW = ".github/workflows/experiments.yml"
STAGES = ("prepare_data", "train_standard_classifiers", "train_dnn_pytorch")
LAUNCH_DIRS = (".ci", ".github", "goals", "reports")
SUBJECT = "Two epochs for the network"
# The parallel launches' newer commits: their subject, and the seed they set (every stage runs again).
NEWER = {"Seed 7": 7, "Seed 8": 8}
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
    """One workflow run: its tag and commit, act's output, the branch's tip right after it, and the run's
    wall time in seconds."""

    tag: str
    run_id: str
    output: str
    returncode: int
    tip: str
    commit: str = ""
    seconds: float = 0.0


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
    with running_team_stack(root, BUCKET) as (mlflow_uri, s3):
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


def run_workflows(lab: Lab, launches: dict[str, str], **variables: str) -> list[Run]:
    """Run experiments.yml with act for a push of each tag in `launches` (tag: run id), all at once, as
    GitHub would on as many free self-hosted GPU runners.

    `variables` replace the repository variables the test gives by default.
    """
    variables = {
        "ALLOW_CPU_RUNNER": "true",
        "MLFLOW_TRACKING_URI": lab.mlflow,
        "DVC_REMOTE_URL": REMOTE_URL,
        "S3_ENDPOINT_URL": lab.s3,
        **variables,
    }
    start = time.monotonic()

    def finish(tag: str, process: subprocess.Popen[str]) -> tuple[subprocess.CompletedProcess[str], float]:
        return finish_act(process, lab.root / f"act-{launches[tag]}"), time.monotonic() - start

    processes = {
        tag: start_act(lab.root, lab.clone, WORKFLOW, tag, run_id, SUBJECT, variables)
        for tag, run_id in launches.items()
    }
    with ThreadPoolExecutor(len(processes)) as pool:
        finished = dict(zip(processes, pool.map(finish, processes, processes.values()), strict=True))
    tip = git("rev-parse", "refs/heads/main", cwd=lab.remote)
    commits = {tag: git("rev-parse", f"{tag}^{{commit}}", cwd=lab.remote) for tag in launches}
    return [
        Run(tag, launches[tag], done.stdout, done.returncode, tip, commits[tag], seconds)
        for tag, (done, seconds) in finished.items()
    ]


def run_workflow(lab: Lab, tag: str, run_id: str, **variables: str) -> Run:
    """One run of experiments.yml with act, alone on the runner."""
    [result] = run_workflows(lab, {tag: run_id}, **variables)
    return result


@pytest.fixture(scope="module")
def first_run(lab: Lab) -> Run:
    """The workflow run for the first tag, alone."""
    return run_workflow(lab, lab.tags[0], "101")


@pytest.fixture(scope="module")
def parallel_runs(lab: Lab, first_run: Run) -> list[Run]:
    """After the first run's results landed: the second tag on the first run's commit, and a tag on each of
    two newer commits (NEWER), all started at once. Each runs the whole pipeline, as the first did."""
    git("pull", "--quiet", "--ff-only", cwd=lab.clone)
    tags = [lab.tags[1]]
    for subject, seed in NEWER.items():
        params = yaml.safe_load((lab.clone / "params.yaml").read_text())
        params["seed"] = seed
        (lab.clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qam", subject, cwd=lab.clone)
        git("push", "--quiet", cwd=lab.clone)
        tags.append(launch(lab.clone, subject.lower().replace(" ", "-")))
    runs = run_workflows(lab, {tag: str(201 + index) for index, tag in enumerate(tags)})
    wall = max(found.seconds for found in runs)
    # The wall times lab/docs/runners.md quotes (pytest -s shows them).
    each = ", ".join(f"{found.seconds:.0f} s" for found in runs)
    print(f"\none launch alone: {first_run.seconds:.0f} s; three at once: {wall:.0f} s (each done after {each})")
    return runs


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
def test_the_run_report_is_an_artifact_linked_from_the_summary_with_the_key_plots(lab: Lab, first_run: Run) -> None:
    assert_succeeded(first_run)
    output, tag = first_run.output, first_run.tag

    uploaded = lab.root / "artifacts" / f"report-{tag}"
    page = (uploaded / f"report-{tag}.html").read_text(encoding="utf-8")
    assert "<h1>Run report: " in page and "train_dnn_pytorch.epochs" in page  # the param the tagged commit changed
    assert f"[report-{tag}.html](file://{uploaded})" in output
    assert 'title "Dense network loss (train blue, val orange)"' in output
    assert 'x-axis "epoch" ["1", "2"]' in output  # the tagged commit's two epochs
    assert 'title "ROC on test (network blue, classifier orange)"' in output


@pytest.mark.integration
def test_the_log_shows_the_progress_and_where_each_stage_put_its_results(lab: Lab, first_run: Run) -> None:
    assert_succeeded(first_run)
    output = first_run.output

    # act gives each step a terminal, but sets CI: its log gets the lines a runner's log gets.
    assert re.search(r"train_dnn_pytorch: epoch 1/2: train/loss [0-9.]+, .*; elapsed 0:00:\d\d, left 0:0", output)
    assert re.search(r"train_dnn_pytorch: epoch 2/2: .*val/roc_auc [0-9.]+; elapsed 0:00:\d\d, left 0:00:00", output)
    assert "train_standard_classifiers: logistic_regression: fold 3/3" in output
    for found in tagged_runs(lab, first_run.tag):
        if "mlflow.parentRunId" not in found.data.tags:
            stage, key = found.data.tags["dvc.stage"], found.data.tags["reprolab.journal_key"]
            where = f"MLflow run '{stage}' of experiment '[^']+' \\(tag reprolab.journal_key={key}\\): "
            assert re.search(rf"{stage}: results in [^;]+; {where}{re.escape(lab.mlflow)}/#/experiments\n", output)


def results_commits(lab: Lab, since: str) -> dict[str, tuple[str, str]]:
    """The branch's commits after `since`, first parents only: {subject: (commit, body)}."""
    log = git("log", "--first-parent", "--format=%H%x00%s%x00%b%x1e", f"{since}..refs/heads/main", cwd=lab.remote)
    entries = [entry.strip("\n").split("\0") for entry in log.split("\x1e") if entry.strip()]
    return {subject: (commit, body) for commit, subject, body in entries}


@pytest.mark.integration
def test_three_launches_of_one_branch_run_at_once_and_all_land(
    lab: Lab, first_run: Run, parallel_runs: list[Run], tmp_path: Path
) -> None:
    for result in parallel_runs:
        assert_succeeded(result)
    assert any("push rejected (attempt 1)" in result.output for result in parallel_runs), "no push raced"
    newest = git("rev-parse", f"{parallel_runs[-1].tag}^{{commit}}", cwd=lab.remote)

    landed = results_commits(lab, newest)

    subjects = {f"{SUBJECT}-results": 42, **{f"{subject}-results": seed for subject, seed in NEWER.items()}}
    assert set(landed) == set(subjects), landed
    for result in parallel_runs:
        subject = git("log", "-1", "--format=%s", result.commit, cwd=lab.remote)
        commit, body = landed[f"{subject}-results"]
        # The commit message, and the job summary, say what its dvc.lock describes.
        described = f"dvc.lock and the metrics are the results of {result.commit} (tag {result.tag}, pipeline run"
        assert f"{described} gh-{result.run_id}-1)." in body, body
        moved = "push rejected" in result.output
        assert moved or result.commit == newest, "a run of an older commit pushed without a rebase"
        assert ("main had moved to" in body) == moved and ("main had not moved" in body) == (not moved), body
        assert f"results: {commit} on main" in result.output and described in result.output
        lock = yaml.safe_load(git("show", f"{commit}:dvc.lock", cwd=lab.remote))
        assert lock["stages"]["train_dnn_pytorch"]["params"]["params.yaml"]["seed"] == subjects[f"{subject}-results"]
        # Its data is all on the S3 remote, and it is the tagged commit's: with the results commit's
        # files on the tagged commit, a fresh clone pulls everything and DVC finds nothing to run.
        clone = tmp_path / result.tag
        git("clone", "--quiet", str(lab.remote), str(clone), cwd=tmp_path)
        git("checkout", "--quiet", result.commit, cwd=clone)
        git("checkout", commit, "--", "dvc.lock", "metrics", cwd=clone)
        for path in git("ls-tree", "-r", "--name-only", commit, cwd=clone).splitlines():
            if path.endswith(".gitignore"):
                git("checkout", commit, "--", path, cwd=clone)
        for key, value in (("url", REMOTE_URL), ("endpointurl", lab.s3)):
            run(["dvc", "remote", "modify", "--local", "storage", key, value], clone)
        pulled = run(["dvc", "pull"], clone, **S3_KEYS)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        status = run(["dvc", "status"], clone)
        assert "Data and pipelines are up to date" in status.stdout, status.stdout
        # Its MLflow runs: one per stage, none lost or doubled, with the tag, commit and pipeline run.
        runs = tagged_runs(lab, result.tag)
        stage_runs = [found.data.tags["dvc.stage"] for found in runs if "mlflow.parentRunId" not in found.data.tags]
        assert sorted(stage_runs) == sorted(STAGES)
        for found in runs:
            assert found.data.tags["git.commit"] == result.commit
            assert found.data.tags["pipeline_run_id"] == f"gh-{result.run_id}-1"
            assert found.info.status == "FINISHED"


@pytest.mark.integration
def test_a_run_whose_mlflow_server_does_not_answer_commits_its_results_and_keeps_its_journal(lab: Lab) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    git("pull", "--quiet", "--ff-only", cwd=lab.clone)
    params = yaml.safe_load((lab.clone / "params.yaml").read_text())
    params["seed"] = 13  # a new commit, so that every stage runs
    (lab.clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qam", "Offline", cwd=lab.clone)
    git("push", "--quiet", cwd=lab.clone)
    tag = launch(lab.clone, "offline")

    offline = run_workflow(
        lab, tag, "104", MLFLOW_TRACKING_URI=closed, REPROLAB_SYNC_WAIT="3", REPROLAB_SYNC_PATIENCE="5"
    )

    assert_succeeded(offline)
    assert f"warning: MLflow tracking server {closed} does not answer" in offline.output
    assert "Running stage 'train_dnn_pytorch'" in offline.output
    assert results_commits(lab, offline.commit)["Offline-results"][0] == offline.tip  # the results landed
    kept = lab.root / "artifacts" / f"run-journal-{tag}" / ".reprolab" / "journal"
    stages = {json.loads(path.read_text().splitlines()[0])["run_name"] for path in kept.glob("*.jsonl")}
    assert stages == set(STAGES)
    assert "### Tracking is behind" in offline.output and "make sync" in offline.output


@pytest.mark.integration
def test_a_strict_run_whose_mlflow_server_does_not_answer_stops_before_any_stage(lab: Lab) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    before = git("rev-parse", "refs/heads/main", cwd=lab.remote)

    stopped = run_workflow(lab, lab.tags[0], "103", MLFLOW_TRACKING_URI=closed, REPROLAB_TRACKING_STRICT="1")

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
    steps = workflow["jobs"]["pipeline"]["steps"]
    push_step = next(step["run"] for step in steps if step["name"].startswith("commit dvc.lock"))
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
    # Nothing may cancel a launch or hold it back while runners are free: no concurrency group anywhere.
    assert "concurrency" not in workflow and not any("concurrency" in job for job in jobs.values())
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
