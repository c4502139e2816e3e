"""`pytest goals`: refuse outputs that are not current, judge them once, and print the goals table.

Stale outputs, a malformed goals file or outputs without test metrics stop the session with one line.
The table is appended to `$GITHUB_STEP_SUMMARY` when set (the launch workflow's job summary).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from goals import criteria
from lib.errors import ReprolabError
from lib.pipeline_state import check_current

OUTCOMES = pytest.StashKey[list[criteria.Outcome]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("goals", "acceptance criteria over the pipeline's outputs")
    group.addoption("--outputs-dir", type=Path, help="the project whose outputs to judge (default: the repository)")
    group.addoption("--goals-file", type=Path, default=criteria.GOALS_FILE, help="default: goals/goals.yaml")


def _outputs_dir(config: pytest.Config) -> Path:
    return (config.getoption("outputs_dir") or config.rootpath).resolve()


def pytest_sessionstart(session: pytest.Session) -> None:
    outputs = _outputs_dir(session.config)
    try:
        check_current(outputs)
        goals = criteria.read_goals(session.config.getoption("goals_file"))
        session.config.stash[OUTCOMES] = criteria.judge(goals, criteria.read_metrics(outputs, goals))
    except ReprolabError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "outcome" in metafunc.fixturenames:
        outcomes = metafunc.config.stash[OUTCOMES]
        metafunc.parametrize("outcome", outcomes, ids=[outcome.id for outcome in outcomes])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    outcomes = config.stash.get(OUTCOMES, [])
    if not outcomes:
        return
    terminalreporter.section("goals")
    for o in outcomes:
        terminalreporter.write_line(f"{'pass' if o.passed else 'FAIL'}  {o.message}")
    failed = sum(not o.passed for o in outcomes)
    table = [
        f"### Goals: {f'{failed} of {len(outcomes)} failed' if failed else 'all passed'}\n",
        f"Outputs judged: `{_outputs_dir(config)}`\n",
        "| | criterion | value | goal | result |\n|---|---|---|---|---|",
    ]
    for o in outcomes:
        value = "–" if o.value is None else f"{o.value:g}"
        table.append(f"| {'pass' if o.passed else '**FAIL**'} | `{o.id}` | {value} | {o.goal:g} | {o.message} |")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(os.environ["GITHUB_STEP_SUMMARY"]).open("a", encoding="utf-8") as file:
            file.write("\n".join(table) + "\n")
