"""params.py: reading params.yaml and validating sections into typed objects, with one-line errors."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, ValidationError

from lib.errors import ReprolabError
from lib.params import ParamsError, ParamsFile, Section

pytestmark = pytest.mark.unittest


class TrainSection(Section):
    """A small section like a stage's: one constrained float, one required int, one defaulted str."""

    learning_rate: float = Field(gt=0)
    epochs: int
    name: str = "net"


def _params(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _section_error(data: dict[str, Any], name: str = "train") -> str:
    with pytest.raises(ParamsError) as caught:
        ParamsFile(Path("params.yaml"), data).section(name, TrainSection)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_read_parses_the_top_level_mapping(tmp_path: Path) -> None:
    path = _params(tmp_path, "seed: 7\ntrain:\n  learning_rate: 0.1\n  epochs: 3\n")

    params = ParamsFile.read(path)

    assert params.path == path
    assert params.data == {"seed": 7, "train": {"learning_rate": 0.1, "epochs": 3}}


def test_read_of_a_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ParamsError) as caught:
        ParamsFile.read(path)

    assert str(caught.value) == f"{path}: params file not found"


def test_read_of_a_directory_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as caught:
        ParamsFile.read(tmp_path)

    assert str(caught.value) == f"{tmp_path}: params file not readable (IsADirectoryError)"


def test_read_of_a_file_that_is_not_utf8_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seed: \xff\xfe\n")

    with pytest.raises(ParamsError) as caught:
        ParamsFile.read(path)

    assert str(caught.value) == f"{path}: params file not readable (UnicodeDecodeError)"


def test_read_of_invalid_yaml_gives_the_line(tmp_path: Path) -> None:
    path = _params(tmp_path, "seed: 1\ntrain: a: b\n")

    with pytest.raises(ParamsError) as caught:
        ParamsFile.read(path)

    assert str(caught.value) == f"{path}: not valid YAML (line 2)"


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", ""])
def test_read_rejects_a_top_level_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = _params(tmp_path, text)

    with pytest.raises(ParamsError) as caught:
        ParamsFile.read(path)

    assert str(caught.value) == f"{path}: the top level must be a mapping of sections"


def test_params_error_is_a_reprolab_error() -> None:
    assert issubclass(ParamsError, ReprolabError)


def test_section_validates_into_a_frozen_typed_object() -> None:
    params = ParamsFile(Path("params.yaml"), {"train": {"learning_rate": 0.5, "epochs": 4}})

    section = params.section("train", TrainSection)

    assert section == TrainSection(learning_rate=0.5, epochs=4, name="net")
    with pytest.raises(ValidationError, match="frozen"):
        section.epochs = 5  # type: ignore[misc]


def test_section_accepts_an_int_for_a_float() -> None:
    params = ParamsFile(Path("params.yaml"), {"train": {"learning_rate": 1, "epochs": 4}})

    assert params.section("train", TrainSection).learning_rate == 1.0


def test_section_names_an_unknown_key() -> None:
    message = _section_error({"train": {"learning_rate": 0.1, "epochs": 3, "epocs": 3}})

    assert "train.epocs: unknown key" in message
    assert message == "params.yaml: train.epocs: unknown key"


def test_section_rejects_a_string_for_a_float() -> None:
    message = _section_error({"train": {"learning_rate": "0.1", "epochs": 3}})

    assert message == "params.yaml: train.learning_rate: input should be a valid number, got '0.1'"


def test_section_rejects_a_float_for_an_int() -> None:
    message = _section_error({"train": {"learning_rate": 0.1, "epochs": 2.5}})

    assert message == "params.yaml: train.epochs: input should be a valid integer, got 2.5"


def test_section_rejects_a_value_out_of_range() -> None:
    message = _section_error({"train": {"learning_rate": -0.1, "epochs": 3}})

    assert message == "params.yaml: train.learning_rate: input should be greater than 0, got -0.1"


def test_section_names_a_missing_required_key() -> None:
    message = _section_error({"train": {"learning_rate": 0.1}})

    assert message == "params.yaml: train.epochs: required key is missing"


def test_section_counts_the_errors_after_the_first() -> None:
    message = _section_error({"train": {"learning_rate": "fast", "typo": 1}})

    assert message == ("params.yaml: train.learning_rate: input should be a valid number, got 'fast' (and 2 more)")


def test_section_names_a_missing_section() -> None:
    message = _section_error({"other": {}})

    assert message == "params.yaml: missing section 'train'"


@pytest.mark.parametrize(("raw", "shown"), [([1, 2], "[1, 2]"), (None, "None"), ("x", "'x'")])
def test_section_must_be_a_mapping(raw: object, shown: str) -> None:
    message = _section_error({"train": raw})

    assert message == f"params.yaml: train: must be a mapping, got {shown}"


def test_section_error_is_one_line_for_a_multiline_value() -> None:
    message = _section_error({"train": {"learning_rate": "a\nb", "epochs": 1}})

    assert message == "params.yaml: train.learning_rate: input should be a valid number, got 'a\\nb'"


@pytest.mark.parametrize("seed", [0, 42, 2**32 - 1])
def test_seed_returns_a_valid_seed(seed: int) -> None:
    assert ParamsFile(Path("params.yaml"), {"seed": seed}).seed() == seed


def test_seed_missing_is_an_error() -> None:
    with pytest.raises(ParamsError) as caught:
        ParamsFile(Path("params.yaml"), {"train": {}}).seed()

    assert str(caught.value) == "params.yaml: seed: required key is missing"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "True"), (-1, "-1"), (2**32, "4294967296"), (1.0, "1.0"), ("7", "'7'")],
)
def test_seed_must_be_an_integer_in_range(value: object, shown: str) -> None:
    with pytest.raises(ParamsError) as caught:
        ParamsFile(Path("params.yaml"), {"seed": value}).seed()

    assert str(caught.value) == f"params.yaml: seed: must be an integer in [0, 2**32), got {shown}"
