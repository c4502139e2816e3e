"""Fixtures shared by the stage modules' tests: small seeded binary, multiclass and regression data sets
(tests/data.py) and a params writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lib.datasets import Split, Splits
from lib.params import ParamsFile
from tests import data


@pytest.fixture
def table() -> Split:
    """A learnable binary problem: float64 features `f0`..`f5` and int64 0/1 labels, about half each."""
    return data.binary_table()


@pytest.fixture
def splits(table: Split) -> Splits:
    """The synthetic table split 60/20/20 (stratified) the way `lib.datasets.read_splits` returns it."""
    return data.split_frame(*table, stratify=True)


@pytest.fixture
def params_file(tmp_path: Path) -> Callable[[dict[str, Any]], ParamsFile]:
    """Write a mapping as `params.yaml` in tmp_path and read it back the way a stage does."""

    def write(data: dict[str, Any]) -> ParamsFile:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return ParamsFile.read(path)

    return write


@pytest.fixture
def multiclass_splits() -> Splits:
    """A learnable three-class problem (`tests.data.MULTICLASS`'s codes 0..2, 300 rows), stratified."""
    return data.multiclass_splits()


@pytest.fixture
def regression_splits() -> Splits:
    """A learnable regression problem (float64 targets around 100, 200 rows) split 60/20/20."""
    return data.regression_splits(offset=100)
