"""`pytest goals`: options naming the outputs to judge and the goals file, and the goals table at the end.

The table is printed after the test results, and appended to the file named by `GITHUB_STEP_SUMMARY`
when that variable is set, so a GitHub Actions job shows it in its summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from goals.criteria import (
    GOALS_FILE,
    Goals,
    Outcome,
    evaluate,
    missing_test_split,
    read_goals,
    read_metrics,
    summary_markdown,
)

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("goals", "acceptance criteria over the pipeline's outputs")
    group.addoption(
        "--outputs-dir",
        type=Path,
        default=None,
        help="the directory holding the pipeline's metrics/ (default: the repository root)",
    )
    group.addoption("--goals-file", type=Path, default=GOALS_FILE, help="thresholds (default: goals/goals.yaml)")


def _outputs_dir(config: pytest.Config) -> Path:
    return (config.getoption("outputs_dir") or config.rootpath).resolve()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop with one line (a usage error) when the outputs hold no test metrics: nothing can be judged."""
    try:
        goals = read_goals(session.config.getoption("goals_file"))
    except Exception:  # the tests report a bad goals file
        return
    reason = missing_test_split(goals, read_metrics(_outputs_dir(session.config), goals))
    if reason is not None:
        raise pytest.UsageError(reason)


@pytest.fixture(scope="session")
def goals(pytestconfig: pytest.Config) -> Goals:
    """The validated goals file."""
    return read_goals(pytestconfig.getoption("goals_file"))


@pytest.fixture(scope="session")
def outcomes(pytestconfig: pytest.Config, goals: Goals) -> dict[str, Outcome]:
    """Every criterion judged against the outputs, by criterion id."""
    judged = evaluate(goals, read_metrics(_outputs_dir(pytestconfig), goals))
    return {outcome.id: outcome for outcome in judged}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print every criterion with its value and goal; append the same table to the CI job summary."""
    try:
        goals = read_goals(config.getoption("goals_file"))
    except Exception:  # the tests already report a bad goals file
        return
    outputs_dir = _outputs_dir(config)
    judged = evaluate(goals, read_metrics(outputs_dir, goals))
    terminalreporter.section("goals")
    for outcome in judged:
        terminalreporter.write_line(f"{'pass' if outcome.passed else 'FAIL'}  {outcome.message}")
    summary = os.environ.get(SUMMARY_ENV)
    if summary:
        with Path(summary).open("a", encoding="utf-8") as file:
            file.write(summary_markdown(judged, outputs_dir))
