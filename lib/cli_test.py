"""cli.py: the shared `--params` argument and the one-line error exit."""

from collections.abc import Sequence
from pathlib import Path

import pytest

from lib.cli import EXIT_USER_ERROR, parser, run
from lib.errors import ReprolabError
from lib.params import ParamsError

pytestmark = pytest.mark.unittest


def test_run_calls_main_with_argv_and_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    received: list[Sequence[str] | None] = []

    assert run(received.append, ["--params", "p.yaml"]) == 0

    assert received == [["--params", "p.yaml"]]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind", [ReprolabError, ParamsError])
def test_run_turns_a_reprolab_error_into_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], kind: type[ReprolabError]
) -> None:
    def main(argv: Sequence[str] | None) -> None:
        raise kind("seed: required key is missing")

    code = run(main, [])

    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR == 2
    assert captured.err == "error: seed: required key is missing\n"
    assert captured.out == ""


def test_run_lets_other_exceptions_propagate() -> None:
    def main(argv: Sequence[str] | None) -> None:
        raise ValueError("a bug, not a user error")

    with pytest.raises(ValueError, match="a bug, not a user error"):
        run(main)


def test_parser_takes_params_with_a_default() -> None:
    arguments = parser("a stage")

    assert arguments.parse_args([]).params == Path("params.yaml")
    assert arguments.parse_args(["--params", "other.yaml"]).params == Path("other.yaml")
    assert arguments.description == "a stage"
