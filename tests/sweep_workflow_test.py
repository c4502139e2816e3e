"""The sweep workflow, run for real: .github/workflows/sweep.yml under `act`, on this machine.

As for the launch workflow (with the stand-ins in tests/act_support.py): a bare git
repository plays GitHub, moto's S3 server the DVC remote, a local `mlflow server` the team's. A pushed
`sweep-duo` tag names sweeps/duo.yaml, a 2-point grid; act runs the grid job, the two point jobs of the
matrix and the summary job. act ignores `on.push.tags`: the trigger is checked by reading the workflow.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import mlflow
import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.act_support import BUCKET, LAUNCH_FILES, REMOTE_URL, git, publish, run_act, seed_runner
from tests.support import (
    S3_KEYS,
    make_project_copy,
    running_team_stack,
    shrunk_params,
)

pytestmark = pytest.mark.integration

WORKFLOW = ".github/workflows/sweep.yml"
TAG = "sweep-duo"
NAMES = (f"{TAG}-1", f"{TAG}-2")
LRS = (0.003, 0.01)
SWEEP = {"metric": "dnn/val/roc_auc", "params": [f"train_dnn_pytorch.lr={LRS[0]},{LRS[1]}"]}


@dataclass
class Swept:
    """The stand-ins, and act's result for the tag."""

    root: Path
    remote: Path
    mlflow: str
    s3: str
    output: str
    returncode: int


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """A project with sweeps/duo.yaml on a bare remote, the tag pushed, the workflow run by act."""
    root = tmp_path_factory.mktemp("sweep-workflow")
    with running_team_stack(root, BUCKET) as (mlflow_uri, s3):  # MLflow on PostgreSQL, as the team's
        clone = make_project_copy(root / "clone", shrunk_params())
        for name in LAUNCH_FILES:
            shutil.copy2(PROJ_ROOT / name, clone / name)
        for name in (".ci", ".github", "sweeps", "goals", "reports"):
            ignore = shutil.ignore_patterns("__pycache__", "*_test.py")
            shutil.copytree(PROJ_ROOT / name, clone / name, ignore=ignore, dirs_exist_ok=True)
        (clone / "sweeps" / "duo.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
        identity = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")
        git("add", "-A", cwd=clone)
        git(*identity, "commit", "-qm", "A two-point sweep", cwd=clone)
        remote = publish(clone, root)
        git("tag", TAG, cwd=clone)
        git("push", "--quiet", "origin", TAG, cwd=clone)
        seed_runner(root, clone, remote)
        variables = {"ALLOW_CPU_RUNNER": "true", "MLFLOW_TRACKING_URI": mlflow_uri, "DVC_REMOTE_URL": REMOTE_URL,
                     "S3_ENDPOINT_URL": s3}  # fmt: skip
        done = run_act(root, clone, WORKFLOW, TAG, "201", "A two-point sweep", variables)
        yield Swept(root, remote, mlflow_uri, s3, done.stdout + done.stderr, done.returncode)


def assert_succeeded(swept: Swept) -> None:
    assert swept.returncode == 0, swept.output[-8000:]


def experiment_refs(remote: Path) -> dict[str, str]:
    """{experiment name: commit} of the experiment refs on the bare remote."""
    lines = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps", cwd=remote).splitlines()
    return {ref.rsplit("/", 1)[-1]: commit for ref, commit in (line.split() for line in lines)}


def test_each_point_pushes_its_experiment_ref(swept: Swept) -> None:
    assert_succeeded(swept)

    refs = experiment_refs(swept.remote)

    assert set(NAMES) <= set(refs)
    for name, lr in zip(NAMES, LRS, strict=True):  # the matrix's names and order are DVC's expansion
        params = yaml.safe_load(git("show", f"{refs[name]}:params.yaml", cwd=swept.remote))
        assert params["train_dnn_pytorch"]["lr"] == lr


def test_each_points_outputs_are_on_the_s3_remote(swept: Swept) -> None:
    assert_succeeded(swept)
    s3 = boto3.client(
        "s3", endpoint_url=swept.s3, region_name="us-east-1", **{k.lower(): v for k, v in S3_KEYS.items()}
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = {item["Key"] for page in pages for item in page.get("Contents", [])}

    for commit in (experiment_refs(swept.remote)[name] for name in NAMES):
        lock = yaml.safe_load(git("show", f"{commit}:dvc.lock", cwd=swept.remote))
        [model] = [out for out in lock["stages"]["train_dnn_pytorch"]["outs"] if out["path"] == "models/dnn.pt"]
        assert f"storage/files/md5/{model['md5'][:2]}/{model['md5'][2:]}" in keys


def test_each_point_is_a_finished_mlflow_run_tagged_with_the_sweep_tag(swept: Swept) -> None:
    assert_succeeded(swept)
    client = mlflow.MlflowClient(tracking_uri=swept.mlflow)
    experiment = client.get_experiment_by_name("reprolab-example")

    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`git.tag` = '{TAG}' and tags.`dvc.stage` = 'train_dnn_pytorch'"
    )

    assert sorted(run.data.tags["dvc.experiment"] for run in runs) == list(NAMES)
    assert {run.info.status for run in runs} == {"FINISHED"}


def test_the_summary_ranks_both_points(swept: Swept) -> None:
    assert_succeeded(swept)

    # The summary's rows (act may put its job prefix before them): rank | point | lr | metric | state | MLflow.
    row = re.compile(rf"\|\s*(\d)\s*\|\s*({TAG}-\d)\s*\|\s*[^|]*\|\s*([0-9.]+)\s*\|\s*done\s*\|")
    rows = sorted(set(match.groups() for match in map(row.search, swept.output.splitlines()) if match))

    assert sorted(name for _, name, _ in rows) == list(NAMES), swept.output[-4000:]
    assert [rank for rank, _, _ in rows] == ["1", "2"]
    first, second = (float(value) for _, _, value in rows)
    assert first >= second
    assert f"{swept.mlflow}/#/experiments/" in swept.output


def test_each_point_uploads_its_run_report_and_shows_its_key_plots(swept: Swept) -> None:
    assert_succeeded(swept)

    for index, (name, lr) in enumerate(zip(NAMES, LRS, strict=True), start=1):
        uploaded = swept.root / "artifacts" / f"report-{name}"
        page = (uploaded / f"report-{name}.html").read_text(encoding="utf-8")
        assert "train_dnn_pytorch.lr" in page and str(lr) in page  # the point's param, against the tagged commit
        assert f"[report-{name}.html](file://{uploaded})" in swept.output
        # The point job's own summary lines, as act prefixes them.
        chart = rf'\[sweep/point {index}: [^\]]*\]\s+\|\s+title "Dense network loss \(train blue, val orange\)"'
        assert re.search(chart, swept.output), swept.output[-4000:]


@pytest.mark.unittest
def test_only_sweep_tags_start_the_workflow() -> None:
    workflow = yaml.safe_load((PROJ_ROOT / WORKFLOW).read_text(encoding="utf-8"))

    assert workflow[True] == {"push": {"tags": ["sweep-*"]}}  # YAML 1.1 reads the key `on` as True
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["grid"]["if"] == "startsWith(github.ref, 'refs/tags/sweep-')"
