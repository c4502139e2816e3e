"""Write a worked example table per task, as a user would bring it: a CSV with string labels, one categorical
column and some empty cells, made from a data set scikit-learn ships (so it works offline).

    python -m lab.processes.prepare_data.examples binary data/raw/cancer.csv       # breast cancer, "M"/"B"
    python -m lab.processes.prepare_data.examples multiclass data/raw/iris.csv     # three iris species
    python -m lab.processes.prepare_data.examples regression data/raw/diabetes.csv # disease progression

It prints the params.yaml lines that point prepare_data at the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

MISSING_FRACTION = 0.03  # of the feature cells, emptied at places drawn from a fixed seed


class Example(NamedTuple):
    """One worked example: its table and the name of its target column."""

    table: pd.DataFrame
    target: str


def _bands(values: pd.Series, names: Sequence[str]) -> pd.Series:
    """A numeric column cut into equal-count bands with names: a categorical column that keeps the signal."""
    return pd.qcut(values, len(names), labels=list(names)).astype(object)


def binary() -> Example:
    """Breast cancer as it is usually published: diagnosis "M" (malignant) or "B" (benign)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "radius_band", _bands(frame.pop("mean radius"), ["small", "medium", "large"]))
    diagnosis = np.where(frame.pop("target") == 0, "M", "B")  # scikit-learn's 0 is malignant
    return Example(frame.assign(diagnosis=diagnosis), "diagnosis")


def multiclass() -> Example:
    """Iris: three species by name, the sepal length given as a band."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame
    frame.insert(0, "sepal_length_band", _bands(frame.pop("sepal length (cm)"), ["short", "medium", "long"]))
    species = np.asarray(data.target_names)[frame.pop("target").to_numpy()]
    return Example(frame.assign(species=species), "species")


def regression() -> Example:
    """Diabetes: disease progression after a year from ten baseline values, sex written as a letter."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = np.where(frame["sex"] == 1, "a", "b").astype(object)  # the data set does not say which is which
    return Example(frame.rename(columns={"target": "progression"}), "progression")


EXAMPLES = {"binary": binary, "multiclass": multiclass, "regression": regression}


def with_gaps(example: Example) -> pd.DataFrame:
    """The example's table with `MISSING_FRACTION` of its feature cells emptied (never the target)."""
    rng = np.random.default_rng(0)
    table = example.table.copy()
    features = [name for name in table.columns if name != example.target]
    table[features] = table[features].mask(rng.random((len(table), len(features))) < MISSING_FRACTION)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    """Write the example table for a task as CSV and print the params that use it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=sorted(EXAMPLES))
    parser.add_argument("out", type=Path, help="the CSV file to write")
    args = parser.parse_args(argv)
    example = EXAMPLES[args.task]()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with_gaps(example).to_csv(args.out, index=False)
    print(f"wrote {args.out}: {len(example.table)} rows, target '{example.target}'")
    print(f"use it: dvc exp run -S prepare_data.source={args.out} -S prepare_data.target={example.target}")


if __name__ == "__main__":
    main()
