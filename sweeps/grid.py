"""Sweep files: a grid of params.yaml values, checked against params.yaml and expanded into named points.

A sweep file is YAML:

    name: dnn-lr                  # optional: the experiments' name prefix (default: the file's stem)
    metric: dnn/test/roc_auc      # what ranks the points: <metrics file stem>/<metric name>
    order: max                    # optional: max (default) or min
    params:                       # params.yaml key (dotted) -> the values to try; the grid is the product
      train_dnn_pytorch.lr: [0.0003, 0.001, 0.003]
      train_dnn_pytorch.batch_size: [32, 64]

Each point of the grid becomes one `dvc exp run -S key=value ...` experiment named `<prefix>-<index>`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.errors import ReprolabError

SWEEP_KEYS = ("name", "metric", "order", "params")
# What a git ref component (and so a DVC experiment name) may hold, kept simple.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
# The suffix `make sweep-launch` adds to a tag: -<UTC date>-<UTC time>-<short commit>.
_LAUNCH_SUFFIX = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{7,40}$")
TAG_PREFIX = "sweep-"
MAX_POINTS = 256  # GitHub's limit on the jobs of one matrix
_NUMBER_HINT = " (YAML reads 1e-3 as text: write 1.0e-3)"


class SweepError(ReprolabError):
    """A sweep file that is missing, malformed, or names a key or value params.yaml does not have."""


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file."""

    source: str
    name: str
    metric: str
    maximize: bool
    grid: dict[str, list[Any]]


@dataclass(frozen=True)
class Point:
    """One point of the grid: its 1-based index, its experiment name and its params.yaml values."""

    index: int
    name: str
    params: dict[str, Any]

    def overrides(self) -> list[str]:
        """`key=value` in the grammar of `dvc exp run -S` (Hydra's override grammar)."""
        return [f"{key}={override_value(value)}" for key, value in self.params.items()]

    def label(self) -> str:
        """`lr=0.001 batch_size=32`: the values, each under the last part of its key."""
        return " ".join(f"{key.rsplit('.', 1)[-1]}={override_value(value)}" for key, value in self.params.items())


def override_value(value: Any) -> str:
    """`value` as Hydra's override grammar reads it back with the same type (`true`, `0.001`, `[32,16]`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{override_value(item)}" for key, item in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", text) and text.lower() not in {"true", "false", "null"}:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "text", list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


def _fits(current: Any, value: Any) -> bool:
    """Whether `value` may replace `current` (a number for a number, text for text, ...)."""
    if current is None or value is None:
        return True
    if isinstance(current, float) and not isinstance(value, bool):
        return isinstance(value, int | float)
    return _kind(current) == _kind(value) and (not isinstance(current, int) or isinstance(value, int))


def _lookup(params: Mapping[str, Any], key: str) -> Any:
    """The value at dotted `key` in `params`; KeyError when a part is missing."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def parse_sweep(data: Any, source: str, params: Mapping[str, Any], default_name: str) -> Sweep:
    """Validate a sweep file's content `data` against `params` (params.yaml's content).

    Args:
        data: the parsed YAML of the sweep file.
        source: the file's name, for error messages.
        params: the parsed params.yaml the experiments start from.
        default_name: the prefix when the file sets no `name` (its stem).
    """
    if not isinstance(data, Mapping):
        raise SweepError(f"{source}: the top level must be a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = [key for key in data if key not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{source}: {unknown[0]}: unknown key (a sweep file has {', '.join(SWEEP_KEYS)})")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".lock"):
        raise SweepError(f"{source}: name: use letters, digits, '.', '_' and '-', got {name!r}")
    metric = data.get("metric")
    if not isinstance(metric, str) or not re.fullmatch(r"[^/\s]+/\S+", metric):
        raise SweepError(f"{source}: metric: <metrics file stem>/<metric>, e.g. dnn/test/roc_auc, got {metric!r}")
    order = data.get("order", "max")
    if order not in ("max", "min"):
        raise SweepError(f"{source}: order: max or min, got {order!r}")
    grid = data.get("params")
    if not isinstance(grid, Mapping) or not grid:
        raise SweepError(f"{source}: params: a mapping of params.yaml keys to lists of values, got {grid!r}")
    for key, values in grid.items():
        try:
            current = _lookup(params, str(key))
        except KeyError:
            raise SweepError(f"{source}: params: {key}: unknown key (not in params.yaml)") from None
        if isinstance(current, Mapping):
            raise SweepError(f"{source}: params: {key}: a section of params.yaml: name one of its keys")
        if not isinstance(values, list) or not values:
            raise SweepError(f"{source}: params: {key}: a non-empty list of values, got {values!r}")
        for value in values:
            if not _fits(current, value):
                raise SweepError(
                    f"{source}: params: {key}: {value!r} is {_kind(value)}, params.yaml holds {_kind(current)} "
                    f"({current!r}){_NUMBER_HINT if re.fullmatch(r'[-+]?[0-9.]+[eE][-+]?[0-9]+', str(value)) else ''}"
                )
    sweep = Sweep(source, name, metric, order == "max", {str(key): list(values) for key, values in grid.items()})
    size = len(list(itertools.product(*sweep.grid.values())))
    if size > MAX_POINTS:
        raise SweepError(f"{source}: params: {size} points, more than {MAX_POINTS}")
    return sweep


def read_sweep(path: Path, params_file: Path) -> Sweep:
    """Read and validate the sweep file `path` against the params file `params_file`."""
    import yaml

    from lib.params import ParamsFile

    params = ParamsFile.read(params_file).data
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"{path}: sweep file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SweepError(f"{path}: not valid YAML") from None
    return parse_sweep(data, str(path), params, Path(path).stem)


def points(sweep: Sweep, prefix: str | None = None) -> list[Point]:
    """The grid in file order (the last key varies fastest), named `<prefix>-<index>` (default prefix: the name)."""
    keys = list(sweep.grid)
    return [
        Point(index, f"{prefix or sweep.name}-{index}", dict(zip(keys, values, strict=True)))
        for index, values in enumerate(itertools.product(*sweep.grid.values()), start=1)
    ]


def sweep_file_for_tag(tag: str, folder: Path) -> Path:
    """The sweep file a `sweep-<name>[-<date>-<time>-<commit>]` tag names: `folder`/<name>.yaml."""
    if not tag.startswith(TAG_PREFIX):
        raise SweepError(f"tag {tag}: sweep tags start with '{TAG_PREFIX}'")
    name = _LAUNCH_SUFFIX.sub("", tag.removeprefix(TAG_PREFIX))
    for suffix in (".yaml", ".yml"):
        if (Path(folder) / f"{name}{suffix}").is_file():
            return Path(folder) / f"{name}{suffix}"
    known = sorted(path.stem for path in Path(folder).glob("*.y*ml"))
    raise SweepError(f"tag {tag}: no sweep file {folder}/{name}.yaml (sweep files: {', '.join(known) or 'none'})")


def matrix(grid: Sequence[Point]) -> list[dict[str, Any]]:
    """The points as a GitHub Actions matrix list: index, experiment name and a label for the job's name."""
    return [{"index": point.index, "name": point.name, "label": point.label()} for point in grid]
