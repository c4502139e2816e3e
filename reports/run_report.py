"""A run's report: one HTML file that shows a person what ran and what came out, and works offline.

`make report` (`python -m reports.run_report`) writes it for the workspace, or for any commit with `--rev`:
the commit, tag, branch and when it ran; every metric with its change against a base commit (the
workspace's HEAD, or the commit's parent, or `--base`); the params that changed; the goals of
goals/goals.yaml; links to the pipeline run's MLflow runs; and every plot of dvc.yaml, drawn by DVC's
own renderers: the images as data: URIs, the charts as Vega-Lite specs with their data inlined, made
interactive by the Vega, Vega-Lite and vega-embed scripts that vl-convert bundles into the same file.
The file makes no request to any other host, so it can be mailed, archived or opened behind a proxy.
"""

from __future__ import annotations

import argparse
import html
import mimetypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lib.errors import ReprolabError
from lib.git import git
from lib.paths import DEFAULT_EXPERIMENT
from lib.tracking import store

if TYPE_CHECKING:
    from dvc.repo import Repo
    from mlflow.entities import Run

WORKSPACE = "workspace"  # DVC's name for the files on disk
GOALS_FILE = "goals/goals.yaml"
VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite v5 specs
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.changed { font-weight: 600; } .same { color: #999; }
.pass { color: #1a7f37; } .fail { color: #cf222e; font-weight: bold; }
.row { display: flex; flex-wrap: wrap; gap: 0 3em; }
.plots > div { display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0; }
.plots img { max-width: 340px; } .note { color: #666; }
"""


@dataclass(frozen=True)
class Revision:
    """What a report is about: a commit, or the workspace (`rev` None) on top of HEAD."""

    rev: str | None
    commit: str

    @property
    def label(self) -> str:
        """The revision as DVC names it: `workspace`, or the short commit."""
        return WORKSPACE if self.rev is None else self.commit[:7]


def resolve(rev: str | None, cwd: Path | None = None) -> Revision:
    """The commit that `rev` names (None: the workspace, on HEAD); an unknown one is an error."""
    commit = git("rev-parse", "--verify", "--quiet", f"{rev or 'HEAD'}^{{commit}}", cwd=cwd)
    if not commit:
        raise ReprolabError(f"git: unknown revision '{rev or 'HEAD'}' (a commit, tag or branch)")
    return Revision(rev and commit, commit)


def default_base(revision: Revision, ran_on: str | None, cwd: Path | None = None) -> str | None:
    """What a report compares with: for the workspace HEAD, as `dvc metrics diff` does; for a commit the
    parent of the commit its run started from (`ran_on`, which a results commit follows), None for a root."""
    if revision.rev is None:
        return revision.commit
    return git("rev-parse", "--verify", "--quiet", f"{ran_on or revision.commit}^", cwd=cwd)


def text_at(root: Path, revision: Revision, path: str) -> str | None:
    """The text of `path` in the workspace or at the commit, or None when it is not there."""
    if revision.rev is None:
        file = root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None
    return git("show", f"{revision.commit}:{path}", cwd=root)


def metric_changes(repo: Repo, revision: Revision, base: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """{metrics file: {metric: {"new", "old", "diff"}}}: every metric at `revision`, and its value at `base`."""
    from dvc.utils.diff import diff, format_dict

    if base is not None:
        return repo.metrics.diff(a_rev=base, b_rev=revision.rev or WORKSPACE, all=True).get("diff", {})
    shown = repo.metrics.show(revs=[revision.rev] if revision.rev else None, hide_workspace=False)
    return diff({}, format_dict(shown.get(revision.rev or WORKSPACE, {}).get("data", {})), with_unchanged=True)


def mlflow_runs(revision: Revision, experiment: str, root: Path) -> tuple[str, list[Run] | str]:
    """(tracking URI, the MLflow runs of the revision's latest pipeline run, oldest first; or why there are none).

    Runs carry the commit they ran on (`git.commit`); a results commit (the launch workflow's) follows
    that commit, so its parent is tried too. A commit's results come from a run on its clean checkout
    (`git.dirty` false); the workspace's from its latest run. `REPROLAB_PIPELINE_RUN_ID` picks one run.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from lib.experiments import runs_filter

    uri = store.tracking_uri() or store.local_store_uri(root)
    if store.tracking_uri() is None and not (root / store.LOCAL_STORE).is_file():
        return uri, f"no local MLflow store {store.LOCAL_STORE} in {root}"
    try:
        store.check_tracking_server(store.tracking_uri())
        client = mlflow.MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        parent = git("rev-parse", "--verify", "--quiet", f"{revision.commit}^", cwd=root)
        for commit in filter(None, (revision.commit, parent) if found else ()):
            tags = {"git.commit": commit, **({"git.dirty": "false"} if revision.rev else {})}
            query = runs_filter(tags, os.environ.get("REPROLAB_PIPELINE_RUN_ID"))
            runs = client.search_runs([found.experiment_id], query, max_results=1000, order_by=["start_time DESC"])
            if runs:
                latest = runs[0].data.tags.get("pipeline_run_id")
                return uri, [run for run in reversed(runs) if run.data.tags.get("pipeline_run_id") == latest]
    except (ReprolabError, MlflowException) as exc:
        return uri, str(exc).splitlines()[0]
    return uri, f"no runs of commit {revision.commit[:7]} in experiment '{experiment}'"


def plot_divs(repo: Repo, revision: Revision) -> tuple[list[str], list[str], list[str]]:
    """(charts, images, missing): every plot of dvc.yaml as DVC renders it, as HTML elements with everything
    inlined, and the names of the plots whose data is neither on disk nor in the DVC cache."""
    from dvc.render.match import match_defs_renderers

    data = repo.plots.show(revs=None if revision.rev is None else [revision.label])
    charts, images, missing = [], [], []
    for found in match_defs_renderers(data, templates_dir=repo.plots.templates_dir):
        renderer = found.renderer
        if not renderer.datapoints:
            missing.append(renderer.name)
        elif renderer.TYPE == "image":  # DVC writes `data:image;base64,`: give the browser the real type
            for point in renderer.datapoints:
                kind = mimetypes.guess_type(point["filename"])[0] or "image/png"
                point["src"] = point["src"].replace("data:image;", f"data:{kind};", 1)
            images.append(renderer.generate_html())
        else:
            charts.append(renderer.generate_html())
    return charts, images, missing


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _cell(value: Any, css: str = "") -> str:
    css = f"num {css}".strip() if isinstance(value, int | float) else css
    attribute = f' class="{css}"' if css else ""
    return f"<td{attribute}>{'–' if value is None else _number(value)}</td>"


def metrics_html(changes: Mapping[str, Mapping[str, Mapping[str, Any]]], base: str | None) -> str:
    """Every metric with its base value and change, a table per metrics file."""
    if not changes:
        return '<p class="note">No metrics.</p>'
    parts = []
    for path, metrics in sorted(changes.items()):
        rows = []
        for name, value in sorted(metrics.items()):
            change = value.get("diff")
            numeric = isinstance(change, int | float)
            shown = f"{change:+.6g}" if numeric else None
            css = "" if not numeric else "same" if change == 0 else "changed"  # a direction, not a verdict
            rows.append(
                [f"<td>{html.escape(name)}</td>", _cell(value.get("new")), _cell(value.get("old")), _cell(shown, css)]
            )
        header = ["metric", "value", f"at {base[:7]}" if base else "no base", "change"]
        parts.append(f"<div><h3>{html.escape(path)}</h3>{_table(header, rows)}</div>")
    return f'<div class="row">{"".join(parts)}</div>'


def params_html(changes: Mapping[str, Mapping[str, Mapping[str, Any]]], base: str | None) -> str:
    """The params whose values differ from the base's."""
    rows = [
        [f"<td>{html.escape(f'{path}: {name}')}</td>", _cell(value.get("new")), _cell(value.get("old"))]
        for path, params in sorted(changes.items())
        for name, value in sorted(params.items())
    ]
    if not rows:
        return f'<p class="note">None changed since {base[:7] if base else "(no base commit)"}.</p>'
    return _table(["param", "value", f"at {base[:7]}" if base else "no base"], rows)


def goals_html(goals_text: str | None, changes: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Every criterion of the goals file judged as `make goals` judges it, over the metrics in `changes`."""
    from pydantic import ValidationError

    from goals.criteria import Goals, GoalsError, judge

    if goals_text is None:
        return f'<p class="note">No {GOALS_FILE}.</p>'
    try:
        goals = Goals.model_validate(yaml.safe_load(goals_text))
        outcomes = judge(
            goals,
            {
                name: {key: value.get("new") for key, value in changes[model.metrics].items()}
                if model.metrics in changes
                else f"no {model.metrics} in this revision"
                for name, model in goals.models.items()
            },
        )
    except (GoalsError, ValidationError, yaml.YAMLError) as exc:
        return f'<p class="fail">{GOALS_FILE}: {html.escape(str(exc).splitlines()[0])}</p>'
    rows = [
        [
            f"<td>{html.escape(outcome.message)}</td>",
            f'<td class="{"pass" if outcome.passed else "fail"}">{"met" if outcome.passed else "NOT MET"}</td>',
        ]
        for outcome in outcomes
    ]
    return _table(["criterion", ""], rows)


def runs_html(uri: str, runs: list[Run] | str) -> str:
    """Links to the MLflow runs, or why there are none."""
    if isinstance(runs, str):
        return f'<p class="note">{html.escape(runs)} (tracking URI {html.escape(uri)}).</p>'
    local = not uri.startswith(("http://", "https://"))
    rows = []
    for run in runs:
        tags = run.data.tags
        link = f"{LOCAL_UI if local else uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        name = ("↳ " if "mlflow.parentRunId" in tags else "") + html.escape(run.info.run_name or run.info.run_id)
        rows.append(
            [
                f"<td>{html.escape(tags.get('dvc.stage', ''))}</td>",
                f'<td><a href="{html.escape(link)}">{name}</a></td>',
                f"<td>{html.escape(run.info.status)}</td>",
                f"<td>{_time(run.info.start_time)}</td>",
            ]
        )
    note = (
        f"<p class='note'>A local store: <code>mlflow ui --backend-store-uri {html.escape(uri)}</code> serves it.</p>"
    )
    return (note if local else "") + _table(["stage", "run", "status", "started"], rows)


def _time(milliseconds: int) -> str:
    return f"{datetime.fromtimestamp(milliseconds / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"


def facts(root: Path, revision: Revision, base: str | None, runs: list[Run] | str) -> list[tuple[str, str]]:
    """What ran, where and when: commit, tag, branch, the pipeline run's start, and the base compared with."""
    subject = git("log", "-1", "--format=%s", revision.commit, cwd=root) or ""
    branch = None if revision.rev else git("branch", "--show-current", cwd=root)
    started, ran_on, tags = "unknown (no MLflow runs found)", revision.commit, []
    if not isinstance(runs, str):
        tags += sorted({run.data.tags["git.tag"] for run in runs if "git.tag" in run.data.tags})
        branch = branch or runs[0].data.tags.get("git.branch")
        started = f"{_time(runs[0].info.start_time)}, pipeline run {runs[0].data.tags.get('pipeline_run_id')}"
        ran_on = runs[0].data.tags.get("git.commit", ran_on)
    for commit in dict.fromkeys((revision.commit, ran_on)):  # a launch tag names the commit the run started from
        tags += (git("tag", "--points-at", commit, cwd=root) or "").split()
    contains = git("branch", "--contains", revision.commit, "--format=%(refname:short)", cwd=root) or ""
    return [
        ("commit", f"{revision.commit} ({subject})" + (" + the workspace's files" if revision.rev is None else "")),
        ("tag", ", ".join(dict.fromkeys(tags)) or "none"),
        ("branch", branch or ", ".join(contains.split()) or "unknown"),
        ("ran", started + (f", on commit {ran_on}" if ran_on != revision.commit else "")),
        ("committed", git("log", "-1", "--format=%cI", revision.commit, cwd=root) or "unknown"),
        ("compared with", base or "nothing (no parent commit)"),
        ("report made", f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"),
    ]


def report(root: Path, rev: str | None = None, base: str | None = None) -> str:
    """The report of the workspace (`rev` None) or of commit `rev` in the DVC project at `root`, as HTML."""
    import vl_convert
    from dvc.repo import Repo

    revision = resolve(rev, root)
    params = yaml.safe_load(text_at(root, revision, "params.yaml") or "{}") or {}
    experiment = (params.get("tracking") or {}).get("experiment", DEFAULT_EXPERIMENT)
    uri, runs = mlflow_runs(revision, experiment, root)
    ran_on = None if isinstance(runs, str) else runs[0].data.tags.get("git.commit")
    base = resolve(base, root).commit if base else default_base(revision, ran_on, root)
    with Repo(str(root)) as repo:
        changes = metric_changes(repo, revision, base)
        param_changes = repo.params.diff(a_rev=base, b_rev=revision.rev or WORKSPACE).get("diff", {}) if base else {}
        charts, images, missing = plot_divs(repo, revision)
    what = f"the workspace on {revision.commit[:7]}" if revision.rev is None else revision.commit[:7]
    head = _table([], [[f"<th>{k}</th>", f"<td>{html.escape(v)}</td>"] for k, v in facts(root, revision, base, runs)])
    sections = [
        ("Metrics", metrics_html(changes, base)),
        ("Params changed", params_html(param_changes, base)),
        ("Goals", goals_html(text_at(root, revision, GOALS_FILE), changes)),
        (f"MLflow runs (experiment {experiment})", runs_html(uri, runs)),
        ("Charts", f'<div class="plots">{"".join(charts)}</div>'),
        ("Images", f'<div class="plots">{"".join(images)}</div>'),
    ]
    if missing:
        note = f"Neither on disk nor in the DVC cache (`dvc pull` fetches them): {', '.join(missing)}"
        sections.append(("Plots left out", f'<p class="fail">{html.escape(note)}.</p>'))
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    scripts = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run report: {html.escape(what)}</title>"
        f"<style>{STYLE}</style><script>{scripts}</script></head>"
        f"<body><h1>Run report: {html.escape(what)}</h1>{head}{body}</body></html>"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Write the report and print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a commit, tag or branch (default: the workspace)")
    parser.add_argument("--base", help="compare with this commit (default: HEAD, or the commit's parent)")
    parser.add_argument("--out", type=Path, help="the HTML file (default: dist/report-<commit|workspace>.html)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    page = report(root, args.rev, args.base)
    out = args.out or Path("dist") / f"report-{resolve(args.rev, root).label}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(out)


if __name__ == "__main__":
    from lib.cli import run

    raise SystemExit(run(main))
