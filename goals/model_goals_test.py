"""The acceptance criteria in goals/goals.yaml, one test each, over the pipeline's output files.

Run with `make goals` (or `pytest goals --outputs-dir DIR --goals-file FILE`). A failure reads like
`test/roc_auc of the network is 0.91, below the goal 0.95`.
"""

from __future__ import annotations

import pytest

from goals.criteria import GOALS_FILE, Outcome, criteria_ids, read_goals

pytestmark = pytest.mark.goals


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "criterion" in metafunc.fixturenames:
        ids = criteria_ids(read_goals(metafunc.config.getoption("goals_file", GOALS_FILE)))
        metafunc.parametrize("criterion", ids, ids=ids)


def test_goal_is_met(criterion: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[criterion]
    if not outcome.passed:
        pytest.fail(outcome.message, pytrace=False)
