"""dvc.yaml is complete: every project file a stage imports is in its deps, every output is declared."""

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from lib.paths import PROJ_ROOT

pytestmark = pytest.mark.unittest


def _module_file(module: str) -> Path | None:
    """The project file that defines `module`, or None for a third-party or standard module."""
    base = PROJ_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement in `path`, at any depth (lazy imports included)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def project_imports(entry_module: str) -> set[str]:
    """Repo-relative paths of the project files `entry_module` imports, transitively, itself included.

    Empty `__init__.py` files carry no code and are left out.
    """
    seen: set[Path] = set()
    pending = [_module_file(entry_module)]
    while pending:
        path = pending.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                pending.append(_module_file(".".join(parts[:depth])))
    return {
        p.relative_to(PROJ_ROOT).as_posix() for p in seen if not (p.name == "__init__.py" and not p.read_text().strip())
    }


def _stages() -> dict[str, dict]:
    return yaml.safe_load((PROJ_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _entry_module(cmd: str) -> str:
    words = shlex.split(cmd)
    return words[words.index("-m") + 1]


def _declared(stage: dict, kind: str) -> set[str]:
    return {next(iter(item)) if isinstance(item, dict) else item for item in stage.get(kind, [])}


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_imported_project_file_is_a_dependency(name: str) -> None:
    stage = _stages()[name]
    missing = project_imports(_entry_module(stage["cmd"])) - set(stage["deps"])
    assert not missing, f"stage {name}: imported but not in deps: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_path_on_the_command_line_is_declared(name: str) -> None:
    stage = _stages()[name]
    declared = set(stage["deps"]) | _declared(stage, "outs") | _declared(stage, "metrics") | _declared(stage, "plots")
    words = shlex.split(stage["cmd"])
    paths = [words[i + 1] for i, word in enumerate(words) if word.startswith("--") and word != "--params"]
    assert paths, "the command names no inputs or outputs"
    for path in paths:
        inside_declared = any(path.startswith(f"{d}/") for d in declared)
        holds_declared = any(d.startswith(f"{path}/") for d in declared)  # a folder of declared files
        assert path in declared or inside_declared or holds_declared, f"{name}: {path} undeclared"


@pytest.mark.parametrize("name", sorted(_stages()))
def test_params_sections_read_by_the_stage_are_declared(name: str) -> None:
    stage = _stages()[name]
    source = "\n".join((PROJ_ROOT / path).read_text() for path in project_imports(_entry_module(stage["cmd"])))
    read = set(re.findall(r"\.section\((?:STAGE|\"(\w+)\")", source))
    sections = {name if section == "" else section for section in read}
    if ".seed()" in source:
        sections.add("seed")
    assert sections <= set(stage["params"]), f"{name}: reads {sorted(sections)}, declares {stage['params']}"


def test_the_example_finds_imports_transitively() -> None:
    files = project_imports("lab.processes.train_dnn_pytorch.main")
    assert "lab/processes/train_dnn_pytorch/network.py" in files
    assert "lib/torch_data.py" in files  # imported by lib/training/loop.py, not by main.py
    assert "lib/errors.py" in files  # imported by lib/cli.py
    assert not any(f.startswith("lab/processes/prepare_data/") for f in files)
