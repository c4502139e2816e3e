"""The analysis notebooks are committed clean: valid, without outputs, with a parameters cell.

That they run is tested on a real pipeline history in tests/results_to_runtime_test.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.unittest

NOTEBOOKS = sorted(Path(__file__).parent.glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert [path.name for path in NOTEBOOKS] == ["compare_experiments.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_valid_and_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.id} holds outputs: strip them"
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell holds the parameters"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_imports_lib_without_path_tricks(path: Path) -> None:
    source = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    assert "sys.path" not in source and "os.chdir" not in source and "%cd" not in source
