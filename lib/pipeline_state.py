"""Whether a project's pipeline outputs are current: the ones its dvc.lock, params and data describe.

DVC's own status decides (`dvc status`): a stage that failed, is out of date (changed code, params or
data), or whose outputs are missing or were rewritten outside DVC, is not current.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import chdir
from pathlib import Path
from typing import Any

from lib.errors import ReprolabError


class StaleOutputs(ReprolabError):
    """The outputs on disk are not the ones the pipeline's dvc.lock, params and data describe."""


def _changes(changes: list[str | Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """DVC's status of one stage as `<path> <state>` lines: `params.yaml train modified`, `data deleted`."""
    found = []
    for change in changes:  # "changed command", or {"changed deps": {path: state or {param: state}}}
        if isinstance(change, str):
            found.append(change)
            continue
        for path, state in (item for paths in change.values() for item in paths.items()):
            if isinstance(state, Mapping):
                state = ", ".join(f"{key} {value}" for key, value in state.items())
            found.append(f"{path} {state}")
    return found


def stale_stages(project: Path) -> dict[str, list[str]]:
    """Each stage of `project` whose outputs are not current, with what DVC reports changed."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        with chdir(project), Repo(".") as repo:  # DVC names stages relative to the working directory
            status = repo.status()
    except (NotDvcRepoError, FileNotFoundError):
        raise StaleOutputs(f"{project} is not a DVC project: no pipeline says what its outputs should be") from None
    return {stage: _changes(changes) for stage, changes in status.items()}


def check_current(project: Path) -> None:
    """Raise StaleOutputs, naming each stale stage and why, unless every output of `project` is current."""
    stale = stale_stages(project)
    if stale:
        more = {stage: f" and {len(why) - 2} more" if len(why) > 2 else "" for stage, why in stale.items()}
        stages = "; ".join(f"stage {stage} ({', '.join(why[:2])}{more[stage]})" for stage, why in stale.items())
        raise StaleOutputs(
            f"the outputs are not the ones dvc.lock, params and data describe: {stages}: "
            "run `dvc repro` (a stage that failed must succeed), or `dvc pull` for missing outputs"
        )
