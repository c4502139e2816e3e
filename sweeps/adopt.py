"""Adopt tuned hyperparameters: write a best-params file's values into params.yaml's network section,
comments, key order and the other sections kept (a ruamel.yaml round trip, decision 0007).

    python -m sweeps.adopt tuning/train_dnn_pytorch.yaml [--params params.yaml]     # make adopt-tuned
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib import cli
from lib.errors import ReprolabError

SECTION = "train_dnn_pytorch"


class AdoptError(ReprolabError):
    """The tuned values cannot be written into params.yaml."""


def _round_trip() -> Any:
    """ruamel.yaml in round-trip mode, writing floats as PyYAML reads them back (`1.0e-05`, not `1e-05`)."""
    import yaml
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import SafeRepresenter

    def represent_float(representer: Any, value: float) -> Any:
        text = yaml.safe_dump(value).removesuffix("\n...\n").strip()
        return representer.represent_scalar("tag:yaml.org,2002:float", text)

    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 10_000
    round_trip.indent(mapping=2, sequence=4, offset=2)  # block lists indented under their key
    round_trip.representer.add_representer(float, represent_float)
    round_trip.representer.add_representer(type(None), SafeRepresenter.represent_none)  # `null`, not nothing
    return round_trip


def set_section_values(text: str, values: Mapping[str, Any], section: str = SECTION, source: str = "params") -> str:
    """`text` with the keys of `section` named in `values` set to the new values, comments kept; new keys
    go at the section's end, before the comments and blank lines that follow it."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    round_trip = _round_trip()
    data = round_trip.load(text)
    node = data.get(section) if isinstance(data, CommentedMap) else None
    if not isinstance(node, CommentedMap):
        raise AdoptError(f"{source}: no '{section}' section (a mapping)")
    last = next(reversed(node), None)
    for key, value in values.items():
        if isinstance(node.get(key), list) and isinstance(value, list):
            node[key][:] = value  # the list keeps its flow or block style
        else:
            if isinstance(value, list):
                value = CommentedSeq(value)
                value.fa.set_flow_style()
            node[key] = value
    token = node.ca.items.get(last, [None] * 3)[2] if last is not None else None
    if token is not None and (new_last := next(reversed(node))) != last:
        cut = token.value.find("\n") + 1  # the end of the old last key's line: what follows is between sections
        if token.value[cut:].strip():
            moved = copy.copy(token)
            moved.value, token.value = "\n" + token.value[cut:], token.value[:cut]
            node.ca.items[new_last] = [None, None, moved, None]
    out = io.StringIO()
    round_trip.dump(data, out)
    return out.getvalue()


def adopt(text: str, tuned: Mapping[str, Any], source: str) -> str:
    """params.yaml `text` (the file `source`) with the params of the parsed best-params file `tuned` written
    into its section, validated."""
    import yaml

    from lib.params import ParamsError, ParamsFile
    from sweeps.tune import network

    section, values = tuned.get("section", SECTION), tuned.get("params")
    if section != SECTION:
        raise AdoptError(f"section: the tuned values are for '{section}', adopt writes only '{SECTION}'")
    if not isinstance(values, Mapping) or not values:
        raise AdoptError("params: the tuned file holds no params mapping")
    params_model = network()[0]
    unknown = [key for key in values if key not in params_model.model_fields]
    if unknown:
        raise AdoptError(f"params.{unknown[0]}: not a {SECTION} key, so it cannot be adopted")
    edited = set_section_values(text, values, SECTION, source)
    try:
        ParamsFile(Path(source), yaml.safe_load(edited)).section(SECTION, params_model)
    except ParamsError as exc:
        raise AdoptError(f"the adopted values are not valid: {exc}") from None
    return edited


def main(argv: Sequence[str] | None = None) -> None:
    """Read the tuned file and params.yaml, write the tuned values into the section, report the changes."""
    parser = cli.parser(__doc__)
    parser.add_argument("tuned", type=Path, help="best-params file written by python -m sweeps.tune")
    args = parser.parse_args(argv)

    import yaml

    from lib.outputs import commit_outputs

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
    with commit_outputs() as outputs:  # through a temporary file, renamed into place
        outputs.write_text(args.params, adopt(text, tuned, str(args.params)))
    changes = [
        f"{k} {repr(old[k]) if k in old else '(default)'} -> {v!r}"
        for k, v in tuned["params"].items()
        if old.get(k) != v
    ]
    note = f" (trial {tuned.get('best_trial')}, {tuned.get('metric')} {tuned.get('best_value')})"
    print(f"adopt: {args.params} {SECTION}: " + ("; ".join(changes) or "already holds the tuned values") + note)


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
