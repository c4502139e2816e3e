"""examples.py: a worked example table per task, with string labels, a categorical column and empty cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.processes.prepare_data.examples import EXAMPLES, MISSING_FRACTION, main, with_gaps
from lab.processes.prepare_data.params import PrepareParams
from lab.processes.prepare_data.prepare import prepare
from lab.processes.prepare_data.tables import load_raw

pytestmark = pytest.mark.unittest

EXPECTED = {  # task: (rows, target, categorical column, classes or None)
    "binary": (569, "diagnosis", "radius_band", ("B", "M")),
    "multiclass": (150, "species", "sepal_length_band", ("setosa", "versicolor", "virginica")),
    "regression": (442, "progression", "sex", ()),
}


@pytest.mark.parametrize("task", sorted(EXAMPLES))
def test_each_example_is_a_table_a_user_would_bring(task: str) -> None:
    rows, target, categorical, _ = EXPECTED[task]

    example = EXAMPLES[task]()
    table = with_gaps(example)

    assert (len(table), example.target) == (rows, target)
    assert table[categorical].dropna().map(type).eq(str).all()
    features = table.drop(columns=[target])
    assert 0.5 * MISSING_FRACTION < features.isna().to_numpy().mean() < 1.5 * MISSING_FRACTION
    assert not table[target].isna().any()
    if task != "regression":
        assert table[target].map(type).eq(str).all()


@pytest.mark.parametrize("task", sorted(EXAMPLES))
def test_the_written_csv_prepares_as_its_task_with_its_classes(
    task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, target, categorical, classes = EXPECTED[task]
    out = tmp_path / "raw" / f"{task}.csv"

    main([task, str(out)])

    printed = capsys.readouterr().out
    assert f"-S prepare_data.source={out} -S prepare_data.target={target}" in printed
    params = PrepareParams(source=str(out), target=target)
    prepared = prepare(
        load_raw(params.source, target), params, seed=0, folds={"train_standard_classifiers.cv_folds": 5}
    )
    assert (prepared.schema.task, prepared.schema.classes) == (task, classes)
    assert any(name.startswith(f"{categorical}_") for name in prepared.splits["train"].columns)
    assert sum(len(frame) for frame in prepared.splits.values()) == rows
