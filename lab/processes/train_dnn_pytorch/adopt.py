"""Adopt tuned hyperparameters: write a best-params file's values into params.yaml's network section.

`python -m lab.processes.train_dnn_pytorch.adopt tuning/train_dnn_pytorch.yaml [--params params.yaml]`
edits the `key: value` lines of the `train_dnn_pytorch` section in place, so every comment, every other
key and every other section stay exactly as they were. A key the section does not list yet is added at
its end. The edited text is parsed and validated before it replaces the file, atomically.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib import cli
from lib.errors import ReprolabError

SECTION = "train_dnn_pytorch"
_KEY_LINE = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<value>[^#]*?)(?P<comment>\s+#.*)?$")


class AdoptError(ReprolabError):
    """The tuned values cannot be written into params.yaml."""


def yaml_value(value: Any) -> str:
    """`value` as one line of YAML that reads back as the same value (floats keep a dot: `1.0e-05`)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.removesuffix("\n...\n").strip()


def _section_bounds(lines: list[str], section: str, source: str) -> tuple[int, int]:
    """(first line after `section:`, one past its last indented line)."""
    starts = [i for i, line in enumerate(lines) if re.match(rf"^{re.escape(section)}:\s*(#.*)?$", line)]
    if not starts:
        raise AdoptError(f"{source}: no '{section}:' section written in block style")
    start = starts[0] + 1
    end = start
    for index in range(start, len(lines)):
        line = lines[index]
        if line.strip() == "" or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            break
        end = index + 1
    return start, end


def _value_end(lines: list[str], index: int, end: int, indent: str) -> int:
    """One past the last line of the value whose key is on line `index`: a block value's lines follow
    it, indented deeper (or, for a list, starting with `- `)."""
    follow = index + 1
    while follow < end and lines[follow].strip():
        stripped = lines[follow].lstrip()
        if len(lines[follow]) - len(stripped) <= len(indent) and not stripped.startswith("- "):
            break
        follow += 1
    return follow


def set_section_values(text: str, values: Mapping[str, Any], section: str = SECTION, source: str = "params") -> str:
    """`text` with each `key: value` line of `section` named in `values` set to the new value.

    Inline comments stay; a value spread over several lines (a block list) becomes one flow-style
    line; a key the section lacks is appended after its last key.
    """
    lines = text.splitlines(keepends=True)
    start, end = _section_bounds(lines, section, source)
    keys: dict[str, tuple[int, re.Match[str]]] = {}
    indent = None
    for index in range(start, end):
        match = _KEY_LINE.match(lines[index].rstrip("\r\n"))
        if match is not None and match["indent"] == (indent := indent or match["indent"]):
            keys[match["key"]] = (index, match)
    indent = indent or "  "
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    replace: dict[int, tuple[int, str]] = {}  # a key's first line -> (one past its value's last, new line)
    for key, value in values.items():
        if key in keys:
            index, match = keys[key]
            line = f"{indent}{key}: {yaml_value(value)}{match['comment'] or ''}{newline}"
            replace[index] = (_value_end(lines, index, end, indent), line)
    added = [f"{indent}{key}: {yaml_value(value)}{newline}" for key, value in values.items() if key not in keys]
    last = max((index for index, _ in keys.values()), default=None)
    insert_at = start if last is None else _value_end(lines, last, end, indent)
    out: list[str] = []
    index = 0
    while True:
        if index == insert_at:
            out.extend(added)
        if index >= len(lines):
            return "".join(out)
        if index in replace:
            index, line = replace[index]
            out.append(line)
        else:
            out.append(lines[index])
            index += 1


def adopt(text: str, tuned: Mapping[str, Any], source: str) -> str:
    """params.yaml `text` with the tuned file's params written into its section, validated.

    Args:
        text: the params file's content.
        tuned: the parsed best-params file (`section` and `params`).
        source: the params file's name, for error messages.
    """
    import yaml

    from lab.processes.train_dnn_pytorch.params import NetworkParams as DenseNetParams
    from lib.params import ParamsError, ParamsFile

    section = tuned.get("section", SECTION)
    values = tuned.get("params")
    if section != SECTION:
        raise AdoptError(f"section: the tuned values are for '{section}', adopt writes only '{SECTION}'")
    if not isinstance(values, Mapping) or not values:
        raise AdoptError("params: the tuned file holds no params mapping")
    unknown = [key for key in values if key not in DenseNetParams.model_fields]
    if unknown:
        raise AdoptError(f"params.{unknown[0]}: not a {SECTION} key, so it cannot be adopted")
    edited = set_section_values(text, values, SECTION, source)
    data = yaml.safe_load(edited)
    try:
        checked = ParamsFile(Path(source), data).section(SECTION, DenseNetParams)
    except ParamsError as exc:
        raise AdoptError(f"the adopted values are not valid: {exc}") from None
    wrong = [key for key, value in values.items() if getattr(checked, key) != value]
    if wrong:
        raise AdoptError(f"{source}: {SECTION}.{wrong[0]} could not be set by a line edit; set it by hand")
    before = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k != SECTION}
    if {k: v for k, v in data.items() if k != SECTION} != before:
        raise AdoptError(f"{source}: editing {SECTION} would change another section; set the values by hand")
    return edited


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory, keeping the file's mode."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """Read the tuned file and params.yaml, write the tuned values into the section, report the changes."""
    parser = cli.parser(__doc__)
    parser.add_argument("tuned", type=Path, help="best-params file written by tune_main")
    args = parser.parse_args(argv)

    import yaml

    try:
        tuned = yaml.safe_load(args.tuned.read_text(encoding="utf-8"))
        text = args.params.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        hint = " (run make tune first)" if Path(exc.filename) == args.tuned else ""
        raise AdoptError(f"{exc.filename}: file not found{hint}") from None
    except yaml.YAMLError:
        raise AdoptError(f"{args.tuned}: not valid YAML") from None
    if not isinstance(tuned, Mapping):
        raise AdoptError(f"{args.tuned}: not a best-params file (a mapping with 'section' and 'params')")
    old = (yaml.safe_load(text) or {}).get(SECTION) or {}
    edited = adopt(text, tuned, str(args.params))
    replace_atomically(args.params, edited)
    changes = [
        f"{k} {repr(old[k]) if k in old else '(default)'} -> {v!r}"
        for k, v in tuned["params"].items()
        if old.get(k) != v
    ]
    note = f" (trial {tuned.get('best_trial')}, {tuned.get('metric')} {tuned.get('best_value')})"
    print(f"adopt: {args.params} {SECTION}: " + ("; ".join(changes) or "already holds the tuned values") + note)


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
