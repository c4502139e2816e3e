"""Fixtures for the training machinery's tests: small seeded binary, multiclass and regression problems, split
like the stages' data (tests/data.py)."""

from __future__ import annotations

import pytest

from lib.datasets import Splits
from tests import data


@pytest.fixture
def splits() -> Splits:
    """A learnable binary problem (float64 `f0`..`f5`, int64 0/1 labels) split 60/20/20, stratified."""
    return data.binary_splits()


@pytest.fixture
def multiclass_splits() -> Splits:
    """A learnable three-class problem (`tests.data.MULTICLASS`'s codes, 300 rows), stratified."""
    return data.multiclass_splits()


@pytest.fixture
def regression_splits() -> Splits:
    """A learnable regression problem with a target far from 0 and 1 (around 500, spread about 100)."""
    return data.regression_splits(offset=500)
