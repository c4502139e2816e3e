"""`pytest goals`: judge the outputs once before any test, one test per criterion, and the goals table.

The session stops with one line when the outputs are not current (DVC's status: a stage failed, is out of
date, or lost an output), when the goals file is malformed, or when the outputs hold no test metrics.
The table of every criterion is printed after the tests, and appended to `$GITHUB_STEP_SUMMARY` when set.
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
    """Judge every criterion, or refuse in one line: outputs not current, bad goals file, no test split."""
    outputs = _outputs_dir(session.config)
    try:
        check_current(outputs)
        goals = criteria.read_goals(session.config.getoption("goals_file"))
        metrics = criteria.read_metrics(outputs, goals)
        session.config.stash[OUTCOMES] = criteria.judge(goals, metrics)
    except ReprolabError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "outcome" in metafunc.fixturenames:
        outcomes = metafunc.config.stash[OUTCOMES]
        metafunc.parametrize("outcome", outcomes, ids=[outcome.id for outcome in outcomes])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print every criterion with its value and goal; append the same table to the CI job summary."""
    outcomes = config.stash.get(OUTCOMES, [])
    if not outcomes:
        return
    terminalreporter.section("goals")
    for outcome in outcomes:
        terminalreporter.write_line(f"{'pass' if outcome.passed else 'FAIL'}  {outcome.message}")
    failed = sum(not outcome.passed for outcome in outcomes)
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
