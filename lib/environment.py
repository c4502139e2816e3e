"""Numbers read from environment variables, a bad value being one error line that names the variable."""

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TypeVar

from lib.errors import ReprolabError

T = TypeVar("T")


def env_number(
    environ: Mapping[str, str],
    name: str,
    default: str,
    parse: Callable[[str], T],
    must: str,
    valid: Callable[[T], bool] = lambda _: True,
) -> T:
    """Environment variable `name` (`default` when unset or empty) read by `parse`; a value `parse` rejects or
    `valid` does not accept is one error line saying what it `must` be."""
    text = environ.get(name) or default
    with suppress(ValueError):
        if valid(value := parse(text)):
            return value
    raise ReprolabError(f"environment variable {name}: must be {must}, got {text!r}")
