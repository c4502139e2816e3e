"""A run's report: one HTML file that shows what ran and what came out, and works offline (lab/docs/report.md).

DVC diffs the metrics and params and draws the plots, with vl-convert's Vega scripts inlined: no request leaves.
"""

from __future__ import annotations

import argparse
import html
import mimetypes
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lib.errors import ReprolabError
from lib.git import git
from lib.paths import DEFAULT_EXPERIMENT
from lib.tracking import store
from lib.tracking.runs import is_server, run_url

if TYPE_CHECKING:
    from dvc.repo import Repo
    from mlflow.entities import Run

Changes = Mapping[str, Mapping[str, Mapping[str, Any]]]  # {file: {name: {"new", "old", "diff"}}}, as DVC diffs
WORKSPACE = "workspace"  # DVC's name for the files on disk
GOALS_FILE = "goals/goals.yaml"
VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite v5 specs
STYLE = """body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; }
table { border-collapse: collapse; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; } .changed { font-weight: 600; } .same, .note { color: #888; } .pass { color: #1a7f37; }
.fail { color: #cf222e; } .row, .plots { display: flex; flex-wrap: wrap; gap: 0 2em; } img { max-width: 340px; }"""


def resolve(rev: str | None, cwd: Path) -> str:
    """The commit that `rev` names (None: HEAD); an unknown one is an error."""
    commit = git("rev-parse", "--verify", "--quiet", f"{rev or 'HEAD'}^{{commit}}", cwd=cwd)
    if not commit:
        raise ReprolabError(f"git: unknown revision '{rev or 'HEAD'}' (a commit, tag or branch)")
    return commit


def text_at(root: Path, rev: str | None, path: str) -> str | None:
    """The text of `path` in the workspace (`rev` None) or at commit `rev`, or None when it is not there."""
    if rev:
        return git("show", f"{rev}:{path}", cwd=root)
    return (root / path).read_text(encoding="utf-8") if (root / path).is_file() else None


def dvc_diff(files: Any, rev: str | None, base: str | None, unchanged: bool) -> dict[str, dict[str, dict[str, Any]]]:
    """`dvc metrics diff` or `dvc params diff` (`files`: repo.metrics or repo.params) of `rev` (None: the
    workspace) against `base`; a root commit has no base, so all its values are new."""
    from dvc.utils.diff import diff, format_dict

    if base:
        return files.diff(a_rev=base, b_rev=rev or WORKSPACE, all=unchanged).get("diff", {})
    shown = files.show(revs=[rev]).get(rev, {})  # only a commit can lack a base
    return diff({}, format_dict(shown.get("data", {})), with_unchanged=unchanged)


def mlflow_runs(uri: str, root: Path, rev: str | None, commit: str, experiment: str) -> list[Run] | str:
    """The runs of the commit's latest pipeline run, oldest first, or why there are none. A results commit's
    runs carry its parent's `git.commit`; a commit's runs must have had a clean checkout (`git.dirty` false)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from lib.experiments import runs_filter

    if store.tracking_uri() is None and not (root / store.LOCAL_STORE).is_file():
        return f"no local MLflow store {store.LOCAL_STORE} in {root}"  # MLflow would create an empty one
    try:
        store.check_tracking_server(store.tracking_uri())
        mlflow.set_tracking_uri(uri)
        for ran_on in filter(None, (commit, git("rev-parse", "--verify", "--quiet", f"{commit}^", cwd=root))):
            tags = {"git.commit": ran_on, **({"git.dirty": "false"} if rev else {})}
            query = runs_filter(tags, os.environ.get("REPROLAB_PIPELINE_RUN_ID"))
            found = mlflow.search_runs(
                experiment_names=[experiment], filter_string=query, order_by=["start_time DESC"], output_format="list"
            )
            if found:
                latest = found[0].data.tags.get("pipeline_run_id")
                return [run for run in reversed(found) if run.data.tags.get("pipeline_run_id") == latest]
    except (ReprolabError, MlflowException) as exc:
        return str(exc).splitlines()[0]
    return f"no runs of commit {commit[:7]} in experiment '{experiment}'"


def plot_divs(repo: Repo, rev: str | None) -> dict[str, list[str]]:
    """Every plot of dvc.yaml as DVC renders it, everything inlined, by kind ("vega", "image"), and under
    "missing" the names of the plots without data: another task's, or neither on disk nor in the DVC cache."""
    from dvc.render.match import match_defs_renderers

    divs: dict[str, list[str]] = {"vega": [], "image": [], "missing": []}
    data = repo.plots.show(revs=[rev[:7]] if rev else None)
    for renderer in (found.renderer for found in match_defs_renderers(data, templates_dir=repo.plots.templates_dir)):
        if not renderer.datapoints:
            divs["missing"].append(renderer.name)
            continue
        if renderer.TYPE == "image":  # DVC writes `data:image;base64,`: give the browser the real type
            for point in renderer.datapoints:
                kind = mimetypes.guess_type(point["filename"])[0] or "image/png"
                point["src"] = point["src"].replace("data:image;", f"data:{kind};", 1)
        divs[renderer.TYPE].append(renderer.generate_html())
    return divs


def _cell(value: Any, css: str = "") -> str:
    """A table cell, escaped: numbers right-aligned to 6 significant digits, None as a dash."""
    if isinstance(value, int | float):
        css, value = f"num {css}".strip(), f"{value:.6g}" if isinstance(value, float) else value
    text = "–" if value is None else html.escape(str(value))
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str] = ()) -> str:
    """A table of cells (HTML), under a row of column names when there are any."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _diff_row(name: str, value: Mapping[str, Any]) -> list[str]:
    """A name, its value, its value at the base, and the change: bold when it moved (a direction, not a verdict)."""
    diff = value.get("diff")
    change = _cell(f"{diff:+.6g}", "same" if diff == 0 else "changed") if isinstance(diff, int | float) else _cell(None)
    return [_cell(name), _cell(value.get("new")), _cell(value.get("old")), change]


def diff_html(changes: Changes, base: str | None, nothing: str) -> str:
    """A table per file of a DVC diff: each value, its value at the base and the change; `nothing` when empty."""
    header = ["name", "value", f"at {base[:7]}" if base else "no base", "change"]
    tables = [
        f"<div><h3>{html.escape(path)}</h3>{_table([_diff_row(*row) for row in sorted(rows.items())], header)}</div>"
        for path, rows in sorted(changes.items())
    ]
    return f'<div class="row">{"".join(tables)}</div>' if tables else f'<p class="note">{html.escape(nothing)}</p>'


def goals_html(goals_text: str | None, changes: Changes) -> str:
    """Every criterion of the goals file judged as `make goals` judges it, over the metrics in `changes`."""
    from goals.criteria import Goals, GoalsError, judge

    if goals_text is None:
        return f'<p class="note">No {GOALS_FILE}.</p>'
    try:
        goals = Goals.model_validate(yaml.safe_load(goals_text))
        metrics = {
            name: {key: value.get("new") for key, value in changes.get(model.metrics, {}).items()}
            or f"no {model.metrics} in this revision"
            for name, model in goals.models.items()
        }
        outcomes = judge(goals, metrics)
    except (GoalsError, ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        return f'<p class="fail">{GOALS_FILE}: {html.escape(str(exc).splitlines()[0])}</p>'
    verdicts = {True: _cell("met", "pass"), False: _cell("NOT MET", "fail")}
    return _table([[_cell(outcome.message), verdicts[outcome.passed]] for outcome in outcomes], ["criterion", ""])


def _time(milliseconds: int) -> str:
    return f"{datetime.fromtimestamp(milliseconds / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"


def runs_html(uri: str, runs: list[Run] | str) -> str:
    """Links to the MLflow runs (a local store's to `mlflow ui`), or why there are none."""
    if isinstance(runs, str):
        return f'<p class="note">{html.escape(runs)} (tracking URI {html.escape(uri)}).</p>'
    rows = []
    for run in runs:
        link = run_url(uri, run.info.experiment_id, run.info.run_id)
        name = ("↳ " if "mlflow.parentRunId" in run.data.tags else "") + run.info.run_name
        link = f'<td><a href="{html.escape(link)}">{html.escape(name)}</a></td>'
        rows.append(
            [_cell(run.data.tags.get("dvc.stage")), link, _cell(run.info.status), _cell(_time(run.info.start_time))]
        )
    serve = f'<p class="note"><code>mlflow ui --backend-store-uri {html.escape(uri)}</code> serves this store.</p>'
    return ("" if is_server(uri) else serve) + _table(rows, ["stage", "run", "status", "started"])


def facts(root: Path, rev: str | None, commit: str, base: str | None, runs: list[Run] | str) -> dict[str, str]:
    """What ran, where and when: the commit, its tags and branch, the pipeline run, the base compared with."""
    first = {} if isinstance(runs, str) else runs[0].data.tags  # the tags all runs of a pipeline run share
    ran_on = first.get("git.commit", commit)
    ran = f"{_time(runs[0].info.start_time)}, pipeline run {first.get('pipeline_run_id')}" if first else "unknown"
    date, _, subject = (git("log", "-1", "--format=%cI%n%s", commit, cwd=root) or "\n").partition("\n")
    # A launch tag names the commit the run started from, which a results commit follows.
    tags = " ".join(git("tag", "--points-at", each, cwd=root) or "" for each in dict.fromkeys((commit, ran_on)))
    branch = (None if rev else git("branch", "--show-current", cwd=root)) or first.get("git.branch")
    contains = git("branch", "--contains", commit, "--format=%(refname:short)", cwd=root) or ""
    return {
        "commit": f"{commit} ({subject})" + ("" if rev else " + the workspace"),
        "tag": ", ".join(dict.fromkeys(filter(None, [first.get("git.tag"), *tags.split()]))) or "none",
        "branch": branch or ", ".join(contains.split()) or "unknown",
        "ran": ran + (f", on commit {ran_on}" if ran_on != commit else ""),
        "committed": date,
        "compared with": base or "nothing (no parent commit)",
        "report made": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
    }


def report(root: Path, rev: str | None = None, base: str | None = None) -> str:
    """The report of the workspace (`rev` None) or of commit `rev` in the DVC project at `root`, as HTML."""
    import vl_convert
    from dvc.repo import Repo

    commit = resolve(rev, root)
    rev = rev and commit
    params = yaml.safe_load(text_at(root, rev, "params.yaml") or "{}") or {}
    experiment = (params.get("tracking") or {}).get("experiment", DEFAULT_EXPERIMENT)
    uri = store.tracking_uri() or store.local_store_uri(root)
    runs = mlflow_runs(uri, root, rev, commit, experiment)
    # The base: HEAD for the workspace (as for `dvc metrics diff`), else the parent of the commit the run started from.
    ran_on = commit if isinstance(runs, str) else runs[0].data.tags.get("git.commit", commit)
    base = resolve(base, root) if base or not rev else git("rev-parse", "--verify", "--quiet", f"{ran_on}^", cwd=root)
    with Repo(str(root)) as repo:
        changes, param_changes = dvc_diff(repo.metrics, rev, base, True), dvc_diff(repo.params, rev, base, False)
        plots = plot_divs(repo, rev)
    sections = {
        "Metrics": diff_html(changes, base, "No metrics."),
        "Params changed": diff_html(param_changes, base, f"None changed since {base[:7] if base else '(no base)'}."),
        "Goals": goals_html(text_at(root, rev, GOALS_FILE), changes),
        f"MLflow runs (experiment {experiment})": runs_html(uri, runs),
        "Charts": f'<div class="plots">{"".join(plots["vega"])}</div>',
        "Images": f'<div class="plots">{"".join(plots["image"])}</div>',
    }
    if plots["missing"]:
        note = (
            "Without data: a chart of another task than this run's, or data neither on disk nor in the DVC cache "
            f"(`dvc pull` fetches it): {', '.join(plots['missing'])}."
        )
        sections["Plots left out"] = f'<p class="fail">{html.escape(note)}</p>'
    head = _table([[f"<th>{name}</th>", _cell(value)] for name, value in facts(root, rev, commit, base, runs).items()])
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections.items())
    what = html.escape(commit[:7] if rev else f"the workspace on {commit[:7]}")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run report: {what}</title><style>{STYLE}</style>"
        f"<script>{vl_convert.javascript_bundle(vl_version=VEGA_LITE)}</script></head>"
        f"<body><h1>Run report: {what}</h1>{head}{body}</body></html>"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Write the report and print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a commit, tag or branch (default: the workspace)")
    parser.add_argument("--base", help="compare with this commit (default: HEAD, or the commit's parent)")
    parser.add_argument("--out", type=Path, help="the HTML file (default: dist/report-<commit|workspace>.html)")
    args = parser.parse_args(argv)
    page = report(Path.cwd(), args.rev, args.base)
    out = args.out or Path("dist") / f"report-{resolve(args.rev, Path.cwd())[:7] if args.rev else WORKSPACE}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(out)


if __name__ == "__main__":
    from lib.cli import run

    raise SystemExit(run(main))
