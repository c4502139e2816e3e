"""The acceptance criteria in goals/goals.yaml, one test each, over the pipeline's current outputs.

Run with `make goals` (or `pytest goals --outputs-dir DIR --goals-file FILE`). The outcomes are judged
once in conftest.py; a failure reads like `test/roc_auc of the network is 0.91, below the goal 0.95`.
"""

from __future__ import annotations

import pytest

from goals.criteria import Outcome

pytestmark = pytest.mark.goals


def test_goal_is_met(outcome: Outcome) -> None:
    if not outcome.passed:
        pytest.fail(outcome.message, pytrace=False)
