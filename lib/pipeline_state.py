"""Whether a project's pipeline outputs are the ones its dvc.lock, params and data describe, by DVC's status."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import chdir
from pathlib import Path
from typing import Any

from lib.errors import ReprolabError


class StaleOutputs(ReprolabError):
    """A stage failed, is out of date, or its outputs are missing or were rewritten outside DVC."""


def lock_outputs(lock: Mapping[str, Any]) -> dict[str, str]:
    """Every output recorded in a parsed dvc.lock, as path -> md5 (`.dir` hashes for folders)."""
    return {out["path"]: out["md5"] for stage in (lock.get("stages") or {}).values() for out in stage.get("outs") or []}


def stale_stages(project: Path) -> dict[str, list[str]]:
    """Each stage that `dvc status` reports, with its changes as `<path> <state>` (`params.yaml train modified`)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        with chdir(project), Repo(".") as repo:  # DVC names stages relative to the working directory
            status = repo.status()
    except (NotDvcRepoError, FileNotFoundError):
        raise StaleOutputs(f"{project} is not a DVC project: no pipeline says what its outputs should be") from None
    stale: dict[str, list[str]] = {}
    for stage, changes in status.items():  # "changed command", or {"changed deps": {path: state or {param: state}}}
        stale[stage] = []
        for change in changes:
            if isinstance(change, str):
                stale[stage].append(change)
                continue
            for path, state in (item for group in change.values() for item in group.items()):
                if isinstance(state, dict):
                    state = ", ".join(f"{key} {value}" for key, value in state.items())
                stale[stage].append(f"{path} {state}")
    return stale


def check_current(project: Path) -> None:
    """Raise StaleOutputs, naming each stale stage and why, unless every output of `project` is current."""
    if stale := stale_stages(project):
        stages = "; ".join(
            f"stage {stage} ({', '.join(why[:2])}{f' and {len(why) - 2} more' if len(why) > 2 else ''})"
            for stage, why in stale.items()
        )
        raise StaleOutputs(
            f"the outputs are not the ones dvc.lock, params and data describe: {stages}: "
            "run `dvc repro` (a stage that failed must succeed), or `dvc pull` for missing outputs"
        )
