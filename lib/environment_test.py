import pytest

from lib.environment import env_number
from lib.errors import ReprolabError

pytestmark = pytest.mark.unittest


def test_an_unset_or_empty_variable_gives_the_default_parsed() -> None:
    assert env_number({}, "N", "3", int, "an integer") == 3
    assert env_number({"N": ""}, "N", "2.5", float, "a number") == 2.5


@pytest.mark.parametrize("text", ["two", "0"])
def test_a_value_that_does_not_parse_or_is_not_valid_is_one_line_naming_the_variable(text: str) -> None:
    with pytest.raises(ReprolabError) as raised:
        env_number({"N": text}, "N", "1", int, "a whole number of at least 1", lambda n: n >= 1)
    assert str(raised.value) == f"environment variable N: must be a whole number of at least 1, got {text!r}"
