"""outputs.py: a stage's outputs are written all together or not at all."""

import json
import os
from pathlib import Path

import pytest

from lib.outputs import OutputError, check_writable, commit_outputs

pytestmark = pytest.mark.unittest


def _files(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones included) with its text, keyed by relative path."""
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in root.rglob("*") if p.is_file()}


def test_commit_writes_every_file_and_creates_parents(tmp_path: Path) -> None:
    with commit_outputs() as outputs:
        outputs.write_text(tmp_path / "a" / "b" / "model.txt", "weights\n")
        outputs.write_json(tmp_path / "metrics" / "scores.json", {"val/f1": 0.5})
        with outputs.path(tmp_path / "plots" / "raw.bin").open("w", encoding="utf-8") as handle:
            handle.write("raw")

    assert _files(tmp_path) == {
        "a/b/model.txt": "weights\n",
        "metrics/scores.json": '{\n  "val/f1": 0.5\n}\n',
        "plots/raw.bin": "raw",
    }


def test_nothing_is_final_until_the_block_ends(tmp_path: Path) -> None:
    final = tmp_path / "out.txt"

    with commit_outputs() as outputs:
        outputs.write_text(final, "new")
        assert not final.exists()

    assert final.read_text(encoding="utf-8") == "new"


def test_an_error_writes_nothing_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), commit_outputs() as outputs:
        outputs.write_text(tmp_path / "first.txt", "1")
        outputs.write_json(tmp_path / "sub" / "second.json", [2])
        outputs.path(tmp_path / "never_written.txt")
        raise RuntimeError("boom")

    assert _files(tmp_path) == {}


def test_an_error_keeps_the_previous_version(tmp_path: Path) -> None:
    kept = tmp_path / "metrics.json"
    kept.write_text("old\n", encoding="utf-8")

    with pytest.raises(KeyboardInterrupt), commit_outputs() as outputs:
        outputs.write_text(kept, "new\n")
        outputs.write_text(tmp_path / "other.txt", "new\n")
        raise KeyboardInterrupt

    assert _files(tmp_path) == {"metrics.json": "old\n"}


def test_success_replaces_the_previous_version(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    final.write_text("old\n", encoding="utf-8")

    with commit_outputs() as outputs:
        outputs.write_json(final, {"a": 1})

    assert _files(tmp_path) == {"metrics.json": '{\n  "a": 1\n}\n'}


def _written_json(tmp_path: Path, data: object) -> str:
    with commit_outputs() as outputs:
        outputs.write_json(tmp_path / "data.json", data)
    return (tmp_path / "data.json").read_text(encoding="utf-8")


def test_json_is_sorted_indented_and_ends_with_a_newline(tmp_path: Path) -> None:
    text = _written_json(tmp_path, {"b": 1, "a": {"d": [1, 2], "c": None}})

    assert text == '{\n  "a": {\n    "c": null,\n    "d": [\n      1,\n      2\n    ]\n  },\n  "b": 1\n}\n'
    assert json.loads(text) == {"a": {"c": None, "d": [1, 2]}, "b": 1}


def test_json_does_not_depend_on_insertion_order(tmp_path: Path) -> None:
    assert _written_json(tmp_path, {"x": 1, "y": {"p": 2, "q": 3}}) == _written_json(
        tmp_path, {"y": {"q": 3, "p": 2}, "x": 1}
    )


# --- check_writable ---------------------------------------------------------------------------------


def test_check_writable_accepts_existing_and_new_paths_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "old.pkl").write_text("old")

    check_writable([tmp_path / "models" / "old.pkl", tmp_path / "models", tmp_path / "new" / "deep" / "m.json"])

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["models", "models/old.pkl"]


def test_check_writable_names_a_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "models").write_text("a file where a folder should be")

    with pytest.raises(OutputError) as caught:
        check_writable([tmp_path / "metrics.json", tmp_path / "models" / "dnn.pt"])

    assert str(caught.value) == (
        f"{tmp_path}/models/dnn.pt: cannot be written: '{tmp_path}/models' is a file, not a folder"
    )


def test_check_writable_names_a_folder_that_refuses_a_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def refuse(*args: object, dir: Path, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    (tmp_path / "models").mkdir()
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)

    with pytest.raises(OutputError) as caught:
        check_writable([tmp_path / "models" / "dnn.pt"])

    assert str(caught.value) == (
        f"{tmp_path}/models/dnn.pt: cannot be written: '{tmp_path}/models' is not writable (Permission denied)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_names_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            check_writable([folder / "dnn.pt"])
    finally:
        folder.chmod(0o755)
