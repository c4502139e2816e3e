"""The run report (`make report`) opened in headless Chromium with the network blocked: every chart drawn,
no request for anything outside the file, the run's metrics, params, goals and MLflow runs on the page."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lib.paths import PROJ_ROOT
from tests.support import make_project_copy, run, shrunk_params

pytestmark = pytest.mark.integration

COMMIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm"]
# A clean, sandbox-free, offline browser: no host name resolves and every connection goes to a closed port,
# so nothing could leave the machine; the net log still records each request that was attempted.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=20000",
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A project copy run on the shrunk params and committed with its results, then once more with fewer
    epochs (`dvc exp run`) in the workspace; the reports of the commit (`--rev HEAD`) and of the workspace."""
    project = make_project_copy(tmp_path_factory.mktemp("report") / "project", shrunk_params())
    for folder in ("reports", "goals"):
        shutil.copytree(PROJ_ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__", "*_test.py"))
    _ok(run(["dvc", "repro"], project))
    _ok(run(["git", "add", "-A"], project))
    _ok(run([*COMMIT, "results"], project))
    # An experiment on top, left in the workspace: its params and results differ from the commit's.
    _ok(run(["dvc", "exp", "run", "-S", "train_dnn_pytorch.epochs=2"], project))
    committed = _ok(run([sys.executable, "-m", "reports.run_report", "--rev", "HEAD"], project)).strip()
    workspace = _ok(run([sys.executable, "-m", "reports.run_report"], project)).strip()
    return {"project": project, "committed": project / committed, "workspace": project / workspace}


def open_offline(page: Path, folder: Path) -> tuple[str, list[str]]:
    """(the DOM once the page's scripts ran, the URLs the page asked for) in headless Chromium, offline.

    The browser's own background traffic (update and sign-in checks) has no initiating origin in the net
    log; every request the page makes carries the page's origin (`null` for a file), so it is counted.
    """
    chromium = shutil.which(os.environ.get("CHROMIUM") or "chromium")
    assert chromium, "no chromium: `make test` installs Debian's package; CHROMIUM=<path> names another"
    net_log = folder / "net-log.json"
    done = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={folder}/profile",
            f"--log-net-log={net_log}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads(net_log.read_text())
    started = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    starts = [event["params"] for event in log["events"] if event["type"] == started and "params" in event]
    return done.stdout, [job["url"] for job in starts if "url" in job and job.get("initiator") != "not an origin"]


@pytest.mark.parametrize("which", ["committed", "workspace"])
def test_report_renders_offline_with_every_chart(reports: dict[str, Path], which: str, tmp_path: Path) -> None:
    source = reports[which].read_text(encoding="utf-8")
    assert reports[which].parent.name == "dist" and reports[which].stat().st_size > 500_000  # the scripts are inside
    assert not re.search(r"""<(script|link|img)[^>]*\s(src|href)=["']?(https?:|//)""", source)

    dom, requested = open_offline(reports[which], tmp_path)

    assert not [url for url in requested if not url.startswith(LOCAL_SCHEMES)], requested
    charts = re.findall(r"vegaEmbed\('#([^']+)'", source)
    pipeline = yaml.safe_load((reports["project"] / "dvc.yaml").read_text())
    names = [next(iter(plot)) for plot in pipeline["plots"]]
    # Every chart of dvc.yaml with data: ROC, confusion, loss, accuracy, classifiers. The regression chart
    # has none in the binary example, and the report says so.
    assert len(charts) == len(names) - 1 == 5
    assert "Without data: " in source and "Predicted against actual on test (regression)" in source
    for chart in charts:  # vega-embed drew it: an SVG view with axes and the chart's own marks
        start = dom.index(f'<div id="{chart}" class="vega-embed') + len(chart)
        drawn = dom[start : dom.find('class="vega-embed', start + 30)]
        assert 'aria-roledescription="visualization"' in drawn and 'aria-roledescription="axis"' in drawn, chart
        assert re.search(r'aria-roledescription="(line mark|rect mark|bar)"', drawn), chart
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', dom)
    pngs = [path for stage in pipeline["stages"].values() for path in stage.get("plots", []) if path.endswith(".png")]
    assert len(images) == len(pngs) >= 6, "every PNG of dvc.yaml, inlined"


def _metrics(project: Path, rev: str | None = None) -> dict[str, float]:
    """Every number in metrics/*.json, in the workspace or at `rev`."""
    values = {}
    for path in sorted((project / "metrics").glob("*.json")):
        text = path.read_text() if rev is None else run(["git", "show", f"{rev}:metrics/{path.name}"], project).stdout
        values |= {f"{path.stem}:{k}": v for k, v in json.loads(text).items() if isinstance(v, int | float)}
    return values


def test_committed_report_shows_the_runs_metrics_goals_and_mlflow_runs(reports: dict[str, Path]) -> None:
    project, page = reports["project"], reports["committed"].read_text(encoding="utf-8")
    committed = _metrics(project, "HEAD")
    assert committed["dnn:best_epoch"] == 3 and committed != _metrics(project)
    for name, value in committed.items():
        assert f">{value:.6g}<" in page, name
    commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert f"Run report: {commit[:7]}" in page and commit in page
    assert "<th>branch</th><td>main</td>" in page

    goals = yaml.safe_load((project / "goals" / "goals.yaml").read_text())
    criteria = sum(
        len(model.get(bound) or {}) for model in goals["models"].values() for bound in ("minimum", "maximum")
    )
    criteria += sum(len(comparison["max_shortfall"]) for comparison in goals["comparisons"])
    assert len(re.findall(r'<td class="(pass|fail)">', page)) == criteria

    # The pipeline ran on the first commit, then its results were committed (as the launch workflow does);
    # the experiment ran on the results commit, with changed params. The commit's report shows the first.
    first, _ = _pipeline_runs(project)
    assert f"on commit {run(['git', 'rev-parse', 'HEAD^'], project).stdout.strip()}" in page
    assert len(first) == 3 + 3  # three stage runs, and a nested run per shrunk classifier
    assert _links(page) == first


def _pipeline_runs(project: Path) -> list[set[str]]:
    """The ids of the MLflow runs of each pipeline run in the project's local store, oldest first."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("reprolab-example").experiment_id])
    by_pipeline: dict[str, set[str]] = {}
    for found in sorted(runs, key=lambda found: found.info.start_time):
        by_pipeline.setdefault(found.data.tags["pipeline_run_id"], set()).add(found.info.run_id)
    return list(by_pipeline.values())


def _links(page: str) -> set[str]:
    """The run ids the page links to in `mlflow ui`."""
    return set(re.findall(r'href="http://127\.0\.0\.1:5000/#/experiments/\w+/runs/(\w+)"', page))


def test_workspace_report_compares_with_head(reports: dict[str, Path]) -> None:
    project, page = reports["project"], reports["workspace"].read_text(encoding="utf-8")
    now = _metrics(project)
    assert now["dnn:best_epoch"] == 2
    for name, value in now.items():
        assert f">{value:.6g}<" in page, name
    params = page[page.index("<h3>params.yaml</h3>") :]
    assert (
        '<td>train_dnn_pytorch.epochs</td><td class="num">2</td><td class="num">3</td><td class="changed">-1</td>'
        in params
    )
    row = re.search(r"<td>best_epoch</td>(.*?)</tr>", page).group(1)
    assert re.findall(r">([^<]+)</td>", row) == ["2", "3", "-1"]
    assert "Run report: the workspace on" in page
    _, experiment = _pipeline_runs(project)
    assert len(experiment) == 1 and _links(page) == experiment  # only the network's stage ran again


def test_unknown_revision_is_one_line(reports: dict[str, Path]) -> None:
    done = run([sys.executable, "-m", "reports.run_report", "--rev", "no-such-commit"], reports["project"])
    assert done.returncode == 2
    assert done.stderr.strip() == "error: git: unknown revision 'no-such-commit' (a commit, tag or branch)"
