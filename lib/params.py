"""Read params.yaml once and validate each stage's section into a typed object; unknown keys and loose types are
errors that name the key, so a typo in params.yaml is never a silently ignored value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lib.errors import ReprolabError


class ParamsError(ReprolabError):
    """params.yaml is missing, unreadable, or holds a bad value."""


class Section(BaseModel):
    """Base for a params section: strict, frozen, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


S = TypeVar("S", bound=BaseModel)
FIXED_MESSAGES = {"extra_forbidden": "unknown key", "missing": "required key is missing"}


def _describe(error: Mapping[str, Any], section: str) -> str:
    key = ".".join([section, *(str(part) for part in error["loc"])])
    if error["type"] in FIXED_MESSAGES:
        return f"{key}: {FIXED_MESSAGES[error['type']]}"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if not error["loc"]:  # a rule across keys: the input is the whole section, too long to repeat
        return f"{key}: {message}"
    return f"{key}: {message}, got {error['input']!r}"


@dataclass(frozen=True)
class ParamsFile:
    """The parsed top level of a params file."""

    path: Path
    data: Mapping[str, Any]

    @classmethod
    def read(cls, path: Path) -> ParamsFile:
        """Parse `path` as YAML; a missing file or a top level that is not a mapping is an error."""
        import yaml

        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ParamsError(f"{path}: params file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamsError(f"{path}: params file not readable ({type(exc).__name__})") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ParamsError(f"{path}: not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise ParamsError(f"{path}: the top level must be a mapping of sections")
        return cls(Path(path), data)

    def section(self, name: str, model: type[S]) -> S:
        """Validate section `name` against `model`; the error names the first bad key."""
        if name not in self.data:
            raise ParamsError(f"{self.path}: missing section '{name}'")
        raw = self.data[name]
        if not isinstance(raw, dict):
            raise ParamsError(f"{self.path}: {name}: must be a mapping, got {raw!r}")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            errors = exc.errors()
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ParamsError(f"{self.path}: {_describe(errors[0], name)}{more}") from None

    def seed(self) -> int:
        """The top-level `seed`: the one number every random generator derives from."""
        value = self.data.get("seed")
        if value is None:
            raise ParamsError(f"{self.path}: seed: required key is missing")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
            raise ParamsError(f"{self.path}: seed: must be an integer in [0, 2**32), got {value!r}")
        return value
